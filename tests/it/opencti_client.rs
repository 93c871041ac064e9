//! The GraphQL client's error handling against a scripted server.

use opencti_connectors::config::Secret;
use opencti_connectors::opencti::{OpenctiClient, OpenctiError};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn client_answering(status: u16, body: serde_json::Value) -> (MockServer, OpenctiClient) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(header("authorization", "Bearer tok"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    let client =
        OpenctiClient::new(&format!("{}/", server.uri()), Secret::new("tok"), true).unwrap();
    (server, client)
}

#[tokio::test]
async fn errors_in_a_200_answer_are_errors() {
    let (_s, client) = client_answering(200, json!({"data": {"about": null}, "errors": [{"message": "You must be logged in to do this.", "name": "AUTH_REQUIRED"}]})).await;
    let err = client.health_check().await.unwrap_err();
    assert!(
        matches!(&err, OpenctiError::GraphQl { name, .. } if name == "AUTH_REQUIRED"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "OpenCTI error AUTH_REQUIRED: You must be logged in to do this."
    );
}

#[tokio::test]
async fn extension_codes_name_errors_without_a_top_level_name() {
    let (_s, client) = client_answering(
        200,
        json!({"errors": [{"message": "locked", "extensions": {"code": "LOCK_ERROR"}}]}),
    )
    .await;
    let err = client.work_to_processed("w", "m", false).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn server_errors_are_transient_and_validation_errors_are_not() {
    let (_s, client) = client_answering(503, json!({"errors": []})).await;
    assert!(client.health_check().await.unwrap_err().is_transient());
    let (_s, client) =
        client_answering(400, json!({"errors": [{"message": "Unknown argument"}]})).await;
    let err = client.health_check().await.unwrap_err();
    assert!(matches!(err, OpenctiError::Http { status: 400, .. }) && !err.is_transient());
}

#[tokio::test]
async fn an_unreachable_platform_is_transient_and_says_so_without_the_token() {
    let client = OpenctiClient::new("http://127.0.0.1:9", Secret::new("tok-secret"), true).unwrap();
    let err = client.health_check().await.unwrap_err();
    assert!(err.is_transient());
    assert!(err.to_string().starts_with("OpenCTI is unreachable"));
    assert!(!err.to_string().contains("tok-secret"));
}

#[tokio::test]
async fn the_endpoint_is_url_plus_graphql_and_answers_decode() {
    let (_s, client) =
        client_answering(200, json!({"data": {"about": {"version": "6.8.10"}}})).await;
    assert_eq!(client.health_check().await.unwrap(), "6.8.10");
}

#[tokio::test]
async fn a_request_that_cannot_be_built_is_not_transient() {
    // A draft id with a control character is no header value: retrying cannot help.
    let client = OpenctiClient::new("http://127.0.0.1:9", Secret::new("tok"), true)
        .unwrap()
        .in_draft(Some("draft\nid"));
    let err = client.health_check().await.unwrap_err();
    assert!(matches!(err, OpenctiError::Request(_)), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused() {
    let (_s, client) = client_answering(
        200,
        json!({"data": {"about": {"version": "x".repeat(1000)}}}),
    )
    .await;
    let err = client
        .with_max_answer(512)
        .health_check()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenctiError::Decode(m) if m.contains("larger than 512 bytes")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}
