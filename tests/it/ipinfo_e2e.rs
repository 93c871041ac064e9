//! IPinfo through the whole runtime: real RabbitMQ, fake OpenCTI, IPinfo faked by wiremock
//! serving `shared/fixtures/ipinfo`.

use std::time::Duration;

use crate::common::*;
use opencti_connectors::config::ConnectorSettings;
use opencti_connectors::connectors::Hosted;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Builds the IPinfo connector from environment-style config, as the daemon does.
fn ipinfo_connector(base_url: &str, extra: &[(&str, &str)]) -> (ConnectorSettings, Hosted) {
    build_connector(
        "ipinfo",
        &[
            ("IPINFO_TOKEN", "ipinfo-secret-token"),
            ("IPINFO_API_BASE_URL", base_url),
            // These tests count upstream calls; the cache has tests of its own.
            ("IPINFO_CACHE_TTL", "PT0S"),
        ],
        extra,
    )
}

async fn ipinfo_mock(expect: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/8.8.8.8/json"))
        .and(header("authorization", "Bearer ipinfo-secret-token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
            "application/json",
        ))
        .expect(expect)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn manual_and_auto_enrichments_push_the_reference_objects() {
    let upstream = ipinfo_mock(2).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, ipinfo_connector(&upstream.uri(), &[]))
        .start()
        .await;

    running
        .publish(&manual_message("work_manual", &ip_stix(GREEN)))
        .await;
    running
        .publish(&listen_message("work_auto", &ip_stix(GREEN), "auto"))
        .await;
    running.works(2).await;
    for call in fake.calls("workEdit.toProcessed") {
        assert_eq!(
            call.variables["message"],
            "Sent 9 stix bundle(s) for worker import"
        );
        assert_eq!(call.variables["inError"], false);
    }
    let reg = &fake.calls("registerConnector")[0].variables["input"];
    assert_eq!(reg["name"], "IPInfo");
    assert_eq!(reg["scope"], json!(["IPv4-Addr", "IPv6-Addr"]));
    assert_eq!(reg["auto"], true);
    let objects = pushed_objects(&fake.calls("stixBundlePush")[0]);
    let mut ids: Vec<&str> = objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![
        IP_ID,
        GREEN,
        "autonomous-system--7afc7bdf-d070-5add-90ff-f93503b1654d",
        "relationship--d4ed1b59-ab87-50ff-a04a-8656941c31ae",
        "location--be4ee2db-ecdd-5acf-a5e1-ce03ef2ec91d",
        "location--06a06706-93d3-51d6-bb72-afc15293af72",
        "relationship--c62a3db0-37bb-547b-aa9b-8e329710b910",
        "relationship--89c95550-8f46-5828-af99-f42dfe1fba9a",
        "relationship--89b17481-bd2e-5d34-a534-ec6e68f979ff",
    ];
    want.sort();
    assert_eq!(ids, want);
    let entity = objects.iter().find(|o| o["id"] == IP_ID).unwrap();
    assert_eq!(entity["labels"], json!(["hosting"]));
    running.stop().await;
    // wiremock verifies `.expect(2)` (with the Bearer header) on drop.
}

#[tokio::test]
async fn playbook_step_returns_the_enriched_bundle() {
    let upstream = ipinfo_mock(1).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, ipinfo_connector(&upstream.uri(), &[]))
        .start()
        .await;
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("the playbook answer", |s| {
        s.count("playbookStepExecution") == 1
    })
    .await;
    let call = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(call["bundle"].as_str().unwrap()).unwrap();
    let objects = bundle["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 8, "the entity plus 7 new objects");
    assert_eq!(objects[0]["id"], IP_ID);
    assert_eq!(objects[0]["labels"], json!(["hosting"]));
    assert_eq!(
        fake.count("workEdit.toReceived")
            + fake.count("workEdit.toProcessed")
            + fake.count("stixBundlePush"),
        0
    );
    running.stop().await;
}

#[tokio::test]
async fn tlp_above_max_sends_nothing_to_ipinfo() {
    let upstream = ipinfo_mock(0).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:RED", RED);
    let running = Scenario::new(
        &fake,
        ipinfo_connector(&upstream.uri(), &[("IPINFO_MAX_TLP", "TLP:AMBER")]),
    )
    .start()
    .await;
    let processed = running
        .send(&manual_message("work_red", &ip_stix(RED)))
        .await;
    assert_eq!(
        processed.message,
        "Do not send any data, TLP of the observable is greater than MAX TLP"
    );
    assert!(processed.in_error);
    running.stop().await;
}

#[tokio::test]
async fn upstream_errors_end_in_clear_work_messages_without_the_token() {
    let upstream = MockServer::start().await;
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(
            fixture("ipinfo", "error_403_wrong_token.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/1.1.1.1/json"))
        .respond_with(ResponseTemplate::new(429).set_body_raw(
            fixture("ipinfo", "error_429_legacy_text_plain.txt"),
            "text/html",
        ))
        .expect(3)
        .mount(&upstream)
        .await;
    Mock::given(path("/9.9.9.9/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ipinfo", "bogon_198.51.100.1_ipinfo-node.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&upstream)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(&fake, ipinfo_connector(&upstream.uri(), &[]))
        .start()
        .await;
    for (n, ip) in ["8.8.8.8", "1.1.1.1", "9.9.9.9", "10.1.2.3"]
        .iter()
        .enumerate()
    {
        let ip_id = opencti_connectors::stix::ids::value_observable_id("ipv4-addr", ip);
        add_entity(
            &fake,
            &ip_id,
            &format!("i{n}"),
            "IPv4-Addr",
            json!([]),
            None,
        );
        let entity = json!({"id": ip_id, "type": "ipv4-addr", "spec_version": "2.1", "value": ip});
        running
            .publish(&manual_message(&format!("work_{ip}"), &entity))
            .await;
    }
    running.works(4).await;
    assert_eq!(
        fake.processed("work_8.8.8.8")["message"],
        "Invalid API Token, Error 403. Reason: Forbidden"
    );
    assert_eq!(fake.processed("work_8.8.8.8")["inError"], true);
    assert!(
        fake.processed("work_1.1.1.1")["message"]
            .as_str()
            .unwrap()
            .starts_with("IpInfo Rate limit exceeded, Error 429")
    );
    assert_eq!(
        fake.processed("work_9.9.9.9")["message"],
        "9.9.9.9 is not routable (IPinfo answered bogon)"
    );
    assert_eq!(fake.processed("work_9.9.9.9")["inError"], false);
    assert_eq!(
        fake.processed("work_10.1.2.3")["message"],
        "10.1.2.3 is not routable (private): nothing to look up"
    );
    for call in fake.all_calls() {
        assert!(
            !call.variables.to_string().contains("ipinfo-secret-token"),
            "the token leaked into {}",
            call.field
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn every_error_fixture_maps_to_a_clear_connector_error() {
    use opencti_connectors::connectors::ConnectorError;
    let upstream = MockServer::start().await;
    let cases: &[(&str, u16, &str, &str)] = &[
        (
            "1.0.0.1",
            403,
            "error_403_wrong_token.json",
            "application/json",
        ),
        (
            "1.0.0.2",
            403,
            "error_403_no_token_google_frontend.html",
            "text/html",
        ),
        ("1.0.0.3", 429, "error_429_token.json", "application/json"),
        (
            "1.0.0.4",
            429,
            "error_429_unauthenticated.json",
            "application/json",
        ),
        (
            "1.0.0.5",
            429,
            "error_429_legacy_text_plain.txt",
            "text/html",
        ),
        // Errors that come back with HTTP 200 and a status in the body.
        (
            "1.0.0.6",
            200,
            "error_403_wrong_token.json",
            "application/json",
        ),
        (
            "1.0.0.7",
            200,
            "error_403_no_token_google_frontend.html",
            "text/html",
        ),
    ];
    for (ip, status, file, mime) in cases {
        Mock::given(path(format!("/{ip}/json")))
            .respond_with(
                ResponseTemplate::new(*status).set_body_raw(fixture("ipinfo", file), mime),
            )
            .mount(&upstream)
            .await;
    }
    let (_, hosted) = ipinfo_connector(&upstream.uri(), &[]);
    let Hosted::Enrichment(connector) = hosted else {
        unreachable!("ipinfo is an enrichment connector")
    };
    let request = |ip: &str| {
        let id = opencti_connectors::stix::ids::value_observable_id("ipv4-addr", ip);
        request_for(json!({"id": id, "type": "ipv4-addr", "value": ip}))
    };
    let err = |ip: &str| {
        let c = connector.clone();
        let r = request(ip);
        async move { c.enrich(&r).await.unwrap_err() }
    };
    assert_eq!(
        err("1.0.0.1").await,
        ConnectorError::Misconfigured("Invalid API Token, Error 403. Reason: Forbidden".into())
    );
    assert_eq!(
        err("1.0.0.2").await,
        ConnectorError::Misconfigured("Invalid API Token, Error 403. Reason: Forbidden".into())
    );
    for ip in ["1.0.0.3", "1.0.0.4", "1.0.0.5"] {
        assert!(
            matches!(err(ip).await, ConnectorError::Retryable { message: m, .. } if m.starts_with("IpInfo Rate limit exceeded, Error 429. Reason: Too Many Requests")),
            "{ip}"
        );
    }
    assert_eq!(
        err("1.0.0.6").await,
        ConnectorError::Misconfigured("Invalid API Token, Error 403. Reason: Forbidden".into())
    );
    assert_eq!(
        err("1.0.0.7").await,
        ConnectorError::Rejected("Invalid JSON in response.".into())
    );
    // IPv6 in the path.
    Mock::given(path("/2607:fb91:2a0:80af:11ad:f056:42f2:b8c2/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("ipinfo", "ipv6_2607-fb91.json"), "application/json"),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let v6 = "2607:fb91:2a0:80af:11ad:f056:42f2:b8c2";
    let mut req = request(v6);
    req.stix_entity = json!({"type": "ipv6-addr", "value": v6});
    assert!(matches!(
        connector.enrich(&req).await.unwrap(),
        opencti_connectors::connectors::Outcome::Bundle { .. }
    ));
}

#[tokio::test]
async fn every_call_names_the_daemon_in_its_user_agent() {
    let server = ipinfo_mock(1).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, ipinfo_connector(&server.uri(), &[]))
        .start()
        .await;
    running
        .send(&manual_message("work_ua", &ip_stix(GREEN)))
        .await;
    running.stop().await;
    let expected = format!("opencti-connectors/{}", env!("CARGO_PKG_VERSION"));
    let upstream: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(upstream, vec![expected.clone()], "IPinfo");
    let platform: Vec<String> = fake
        .state
        .lock()
        .unwrap()
        .user_agents
        .iter()
        .cloned()
        .collect();
    assert_eq!(platform, vec![expected], "OpenCTI");
}

#[tokio::test]
async fn a_cached_answer_makes_no_second_call_and_the_same_bundle() {
    let server = ipinfo_mock(1).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    // The default cache (P1D).
    let running = Scenario::new(
        &fake,
        ipinfo_connector(&server.uri(), &[("IPINFO_CACHE_TTL", "P1D")]),
    )
    .start()
    .await;
    running
        .send(&manual_message("work_c1", &ip_stix(GREEN)))
        .await;
    running
        .send(&listen_message("work_c2", &ip_stix(GREEN), "auto"))
        .await;
    // A playbook step for the same IP: from the cache too.
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("the step", |s| s.count("playbookStepExecution") == 1)
        .await;
    running.stop().await;
    let pushes = fake.calls("stixBundlePush");
    let ids = |call: &crate::common::fake_opencti::Call| {
        let mut ids: Vec<String> = pushed_objects(call)
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&pushes[0]),
        ids(&pushes[1]),
        "the same bundle from the cache"
    );
    // `ipinfo_mock(1)` fails on drop if IPinfo was called more than once.
}

/// Answers 429 with `Retry-After: 2` once, then the fixture; records when each call came.
struct RefusingOnce {
    calls: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl wiremock::Respond for RefusingOnce {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().unwrap();
        calls.push(std::time::Instant::now());
        if calls.len() == 1 {
            ResponseTemplate::new(429).insert_header("Retry-After", "2")
        } else {
            ResponseTemplate::new(200).set_body_raw(
                fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
                "application/json",
            )
        }
    }
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_every_request_of_the_connector() {
    let server = MockServer::start().await;
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path("/8.8.8.8/json"))
        .respond_with(RefusingOnce {
            calls: calls.clone(),
        })
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, ipinfo_connector(&server.uri(), &[]))
        .start()
        .await;
    running
        .publish(&manual_message("work_r1", &ip_stix(GREEN)))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while calls.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "IPinfo never called"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another request while the pause is on: it waits too, although it was never refused.
    running
        .publish(&manual_message("work_r2", &ip_stix(GREEN)))
        .await;
    running.works(2).await;
    running.stop().await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        3,
        "the refused request retried, and the other one"
    );
    for later in &calls[1..] {
        let waited = later.duration_since(calls[0]);
        assert!(
            waited >= Duration::from_millis(1900),
            "a call {waited:?} after the 429"
        );
    }
}

/// An observable marked TLP:RED in OpenCTI whose playbook copy carries TLP:GREEN: the most
/// restrictive marking decides, so nothing reaches IPinfo (`max_tlp` TLP:AMBER), and the
/// step is answered with its bundle unchanged.
#[tokio::test]
async fn a_playbook_copy_cannot_lower_the_platform_s_tlp() {
    let upstream = ipinfo_mock(0).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:RED", RED);
    let running = Scenario::new(
        &fake,
        ipinfo_connector(&upstream.uri(), &[("IPINFO_MAX_TLP", "TLP:AMBER")]),
    )
    .start()
    .await;
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("the playbook answer", |s| {
        s.count("playbookStepExecution") == 1
    })
    .await;
    let call = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(call["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(bundle["objects"], json!([ip_stix(GREEN)]), "unchanged");
    running.stop().await;
    // `ipinfo_mock(0)`: wiremock fails the test on drop if IPinfo was called.
}

/// A request whose `stix_entity` is another object than the entity it names is refused
/// before any upstream call: the daemon does not guess which one to look up.
#[tokio::test]
async fn a_request_carrying_another_entity_is_refused() {
    let upstream = ipinfo_mock(0).await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, ipinfo_connector(&upstream.uri(), &[]))
        .start()
        .await;
    let other = json!({"id": "ipv4-addr--00000000-0000-5000-8000-000000000001", "spec_version": "2.1",
                       "type": "ipv4-addr", "value": "1.2.3.4", "object_marking_refs": [GREEN]});
    let mut message: Value = serde_json::from_slice(&manual_message("work_other", &other)).unwrap();
    message["event"]["entity_id"] = json!(IP_ID);
    running.send(message.to_string().as_bytes()).await;
    let processed = fake.processed("work_other");
    assert_eq!(processed["inError"], true);
    assert_eq!(
        processed["message"],
        opencti_connectors::runtime::enrichment::gate::mismatch_message(
            IP_ID,
            other["id"].as_str().unwrap()
        )
    );
    running.stop().await;
}
