//! The __name__ connector's unit tests: the pure mapping, then the connector as the daemon
//! builds it (from the environment, through the registry) against a fake __Title__.

use std::collections::HashMap;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::connectors::Hosted;
use crate::registry::{Config, build_all};

const ENTITY_ID: &str = "ipv4-addr--8b12a0da-27b6-5220-852e-d812ea771990";
const MARKING: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";

fn entity() -> Value {
    json!({"type": "ipv4-addr", "id": ENTITY_ID, "value": "1.2.3.4", "labels": ["seen"]})
}

fn request() -> EnrichmentRequest {
    EnrichmentRequest {
        entity_id: ENTITY_ID.into(),
        entity_type: Some("IPv4-Addr".into()),
        observable_value: Some("1.2.3.4".into()),
        stix_entity: entity(),
        stix_objects: vec![entity(), json!({"type": "marking-definition", "id": MARKING})],
        ..Default::default()
    }
}

/// The connector as the daemon builds it, asking `server`.
fn connector(server: &MockServer) -> std::sync::Arc<dyn EnrichmentConnector> {
    let mut env: HashMap<String, String> = SPEC.enabling_env().into_iter().collect();
    env.insert("OPENCTI_URL".into(), "http://opencti.test:8080".into());
    env.insert("OPENCTI_TOKEN".into(), "opencti-token".into());
    env.insert("__NAME___API_BASE_URL".into(), server.uri());
    let config = Config::from_sources(None, &env).unwrap();
    let built = build_all(&config).unwrap();
    match built.into_iter().find(|(s, _)| s.key == "__name__") {
        Some((_, Hosted::Enrichment(connector))) => connector,
        _ => panic!("__name__ did not build as an enrichment connector"),
    }
}

fn key() -> String {
    SPEC.keys
        .iter()
        .find(|k| k.key == "api_key")
        .map(|k| k.sample.to_string())
        .unwrap()
}

#[test]
fn the_entity_gets_the_score_the_tags_and_the_description() {
    let found = Found {
        score: Some(80),
        tags: vec!["scanner".into(), " seen ".into(), String::new()],
        description: Some("Known scanner".into()),
    };
    let objects = enriched(&request().stix_objects, ENTITY_ID, &found);
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["x_opencti_score"], 80);
    assert_eq!(objects[0]["labels"], json!(["seen", "scanner"]));
    assert_eq!(objects[0]["x_opencti_description"], "Known scanner");
    assert_eq!(objects[1], request().stix_objects[1], "other objects go as they came");
}

#[test]
fn scores_are_clamped_and_a_description_is_never_replaced() {
    let mut objects = request().stix_objects;
    objects[0]["x_opencti_description"] = "by an analyst".into();
    let found = Found {
        score: Some(250),
        description: Some("upstream".into()),
        ..Found::default()
    };
    let out = enriched(&objects, ENTITY_ID, &found);
    assert_eq!(out[0]["x_opencti_score"], 100);
    assert_eq!(out[0]["x_opencti_description"], "by an analyst");
    let none = enriched(&objects, ENTITY_ID, &Found::default());
    assert_eq!(none, objects, "an empty answer changes nothing");
}

#[tokio::test]
async fn a_found_value_enriches_the_entity_through_the_registry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/lookup/1.2.3.4"))
        .and(header("X-API-Key", key().as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"score": 75, "tags": ["tor"]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let connector = connector(&server);
    let Outcome::Bundle { objects, message } = connector.enrich(&request()).await.unwrap() else {
        panic!("expected a bundle");
    };
    assert_eq!(objects[0]["x_opencti_score"], 75);
    assert_eq!(objects[0]["labels"], json!(["seen", "tor"]));
    assert_eq!(message(1), "Sent 1 stix bundle(s) for worker import");
    // The second lookup of the same value is answered by the cache (`expect(1)`).
    connector.enrich(&request()).await.unwrap();
}

#[tokio::test]
async fn not_found_finishes_the_work_and_failures_never_show_the_key() {
    let server = MockServer::start().await;
    for (value, status) in [("1.2.3.4", 404), ("5.6.7.8", 401), ("9.9.9.9", 503)] {
        Mock::given(path(format!("/lookup/{value}")))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
    }
    let connector = connector(&server);
    let ask = |value: &str| {
        let mut request = request();
        request.observable_value = Some(value.into());
        request
    };
    match connector.enrich(&ask("1.2.3.4")).await.unwrap() {
        Outcome::Done(message) => assert_eq!(message, "1.2.3.4 not found in __Title__"),
        other => panic!("expected Done, got {other:?}"),
    }
    let refused = connector.enrich(&ask("5.6.7.8")).await.unwrap_err();
    assert!(matches!(refused, ConnectorError::Misconfigured(_)), "{refused:?}");
    assert!(refused.to_string().contains("check __name__.api_key"), "{refused}");
    assert!(!refused.to_string().contains(&key()), "{refused}");
    let down = connector.enrich(&ask("9.9.9.9")).await.unwrap_err();
    assert!(down.is_retryable(), "{down:?}");
}
