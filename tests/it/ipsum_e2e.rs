//! IPsum through the runtime: scheduled runs against the fake OpenCTI and a wiremock feed.

use crate::common::*;
use opencti_connectors::config::ConnectorSettings;
use opencti_connectors::connectors::Hosted;
use serde_json::Value;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ipsum(feed_url: &str, extra: &[(&str, &str)]) -> (ConnectorSettings, Hosted) {
    build_connector(
        "ipsum",
        &[
            ("CONNECTOR_IPSUM_API_BASE_URL", feed_url),
            ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1S"),
        ],
        extra,
    )
}

fn stored_state(fake: &FakeOpencti, id: &str) -> Value {
    let text = fake
        .state
        .lock()
        .unwrap()
        .states
        .get(id)
        .cloned()
        .flatten()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn imports_then_skips_an_unchanged_feed_by_etag() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/levels/8.txt"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/levels/8.txt"))
        .and(header("authorization", "Bearer gh-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_string(fixture("ipsum", "levels/8.txt")),
        )
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(
        &fake,
        ipsum(
            &format!("{}/levels/8.txt", server.uri()),
            &[
                ("CONNECTOR_IPSUM_API_KEY", "gh-token"),
                ("CONNECTOR_IPSUM_TLP_LEVEL", "green"),
            ],
        ),
    )
    .start()
    .await;
    let id = running.id().to_string();
    running.works(2).await;
    running.stop().await;

    assert_eq!(
        fake.calls("registerConnector")[0].variables["input"]["type"],
        "EXTERNAL_IMPORT"
    );
    // The download and the 304 are counted like every upstream call (the families are
    // process-wide, so any registry shows them).
    let metrics = opencti_connectors::metrics::Metrics::default().render();
    for class in ["2xx", "3xx"] {
        let series = format!(
            r#"opencti_connectors_upstream_calls_total{{connector="ipsum",status="{class}"}}"#
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    assert_eq!(
        fake.calls("workAdd")[0].variables["friendlyName"],
        "Connector IPSum"
    );
    let pushes = fake.calls("stixBundlePush");
    assert_eq!(pushes.len(), 1, "the second run sent nothing");
    let objects = pushed_objects(&pushes[0]);
    assert_eq!(objects.len(), 23 * 3 + 2);
    assert_eq!(
        objects.iter().filter(|o| o["type"] == "indicator").count(),
        23
    );
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["type"] == "relationship")
            .count(),
        23
    );
    assert!(
        objects
            .iter()
            .any(|o| o["id"] == "identity--4178f14f-6c2a-52d0-8e67-f111c9ad7560")
    );
    assert!(
        objects
            .iter()
            .filter(|o| o["type"] == "ipv4-addr")
            .all(|o| o["x_opencti_score"] == 60 && o["object_marking_refs"][0] == GREEN)
    );
    assert_eq!(
        pushes[0].variables["work_id"],
        fake.calls("workEdit.toProcessed")[0].variables["id"]
    );
    let processed = fake.calls("workEdit.toProcessed");
    let first = processed[0].variables["message"].as_str().unwrap();
    assert!(
        first.starts_with("IPsum connector successfully run, storing last_run as "),
        "{first}"
    );
    assert!(
        first.ends_with(
            ": 23 IPs imported (71 bundles sent), 0 lines skipped (0 private, 0 not IPs)"
        ),
        "{first}"
    );
    assert!(
        processed[1].variables["message"]
            .as_str()
            .unwrap()
            .ends_with("the feed has not changed (HTTP 304), nothing sent")
    );
    let state = stored_state(&fake, &id);
    assert_eq!(state["etag"], "\"v1\"");
    assert!(state["last_run"].as_str().unwrap().len() == 19);
    assert!(state["feed_sha256"].is_string());
}

#[tokio::test]
async fn counts_drive_scores_and_an_unchanged_body_is_not_resent() {
    let server = MockServer::start().await;
    let body = "# IPsum\n# IP\tcount\n8.8.4.4\t9\n1.0.0.1\t1\n10.0.0.1\t3\nnot-an-ip\t2\n2001:4860:4860:0:0:0:0:8888\t5\n";
    Mock::given(path("/ipsum.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .expect(2)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let processed = Scenario::new(&fake, ipsum(&format!("{}/ipsum.txt", server.uri()), &[]))
        .works(2)
        .await;
    let pushes = fake.calls("stixBundlePush");
    assert_eq!(pushes.len(), 1);
    let objects = pushed_objects(&pushes[0]);
    let score = |v: &str| {
        objects.iter().find(|o| o["value"] == v).unwrap()["x_opencti_score"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (
            score("8.8.4.4"),
            score("1.0.0.1"),
            score("2001:4860:4860::8888")
        ),
        (100, 20, 60)
    );
    assert!(
        processed[0].message.as_str().unwrap().ends_with(
            ": 3 IPs imported (11 bundles sent), 2 lines skipped (1 private, 1 not IPs)"
        )
    );
    assert!(
        processed[1]
            .message
            .as_str()
            .unwrap()
            .ends_with("the feed is unchanged since the last run, nothing sent")
    );
}

#[tokio::test]
async fn a_failed_download_fails_the_work() {
    let server = MockServer::start().await;
    Mock::given(path("/levels/5.txt"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let processed = Scenario::new(&fake, ipsum(&format!("{}/levels/5.txt", server.uri()), &[]))
        .works(1)
        .await
        .remove(0);
    assert!(processed.in_error);
    assert_eq!(
        processed.message,
        "IPsum feed download failed: HTTP 502 Bad Gateway"
    );
    assert_eq!(fake.count("stixBundlePush"), 0);
    assert_eq!(
        fake.calls("pingConnector").pop().unwrap().variables["state"],
        "null",
        "no state on failure"
    );
}

#[tokio::test]
async fn amqp_mode_publishes_every_object_on_the_push_queue() {
    let server = MockServer::start().await;
    Mock::given(path("/levels/5.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ipsum", "levels/5.txt")))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(
        &fake,
        ipsum(
            &format!("{}/levels/5.txt", server.uri()),
            &[
                ("IPSUM_CONNECTOR_QUEUE_PROTOCOL", "amqp"),
                ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1H"),
            ],
        ),
    )
    .start()
    .await;
    let id = running.id().to_string();
    running.works(1).await;
    running.stop().await;
    // 1,413 IPs in chunks of 2,000 IPs: one chunk of 3 objects an IP plus author and marking.
    let expected = 1_413 * 3 + 2;
    let expectations: u64 = fake
        .calls("workEdit.addExpectations")
        .iter()
        .map(|c| c.variables["expectations"].as_u64().unwrap())
        .sum();
    assert_eq!(expectations, expected as u64);
    assert_eq!(
        fake.queue_len(&FakeOpencti::push_queue(&id)).await as usize,
        expected
    );
}

#[tokio::test]
async fn a_feed_that_expands_past_max_ips_stops_with_a_clear_message() {
    // 300 public /16 lines: a few KB that expand to almost 20 million addresses.
    let body: String = (1..=300)
        .map(|i| format!("{}.{}.0.0/16\n", 1 + i / 250, i % 250))
        .collect();
    let server = MockServer::start().await;
    Mock::given(path("/huge.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(
        &fake,
        ipsum(
            &format!("{}/huge.txt", server.uri()),
            &[
                ("IPSUM_MAX_IPS", "5000"),
                ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1H"),
            ],
        ),
    )
    .start()
    .await;
    let id = running.id().to_string();
    running.works(1).await;
    running.stop().await;
    let processed = &fake.calls("workEdit.toProcessed")[0].variables;
    assert_eq!(processed["inError"], true);
    assert_eq!(
        processed["message"],
        "IPsum stopped after 5000 IPs (15006 bundles sent): the feed holds more than ipsum.max_ips (5000) addresses"
    );
    let pushed: usize = fake
        .calls("stixBundlePush")
        .iter()
        .map(|c| pushed_objects(c).len())
        .sum();
    assert_eq!(
        pushed,
        5000 * 3 + 3 * 2,
        "three chunks, author and marking in each"
    );
    assert_eq!(
        fake.state.lock().unwrap().states[&id].as_deref(),
        Some("null"),
        "the feed is not taken as imported"
    );
}

#[tokio::test]
async fn a_feed_larger_than_max_feed_bytes_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/big.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string("8.8.8.8\n".repeat(200)))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let connector = ipsum(
        &format!("{}/big.txt", server.uri()),
        &[
            ("IPSUM_MAX_FEED_BYTES", "1024"),
            ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1H"),
        ],
    );
    let processed = Scenario::new(&fake, connector).works(1).await.remove(0);
    assert!(processed.in_error);
    assert_eq!(
        processed.message,
        "IPsum feed is larger than 1024 bytes (ipsum.max_feed_bytes)"
    );
    assert_eq!(fake.count("stixBundlePush"), 0);
}

#[tokio::test]
async fn a_stored_etag_that_is_no_header_value_is_not_sent() {
    let server = MockServer::start().await;
    Mock::given(path("/levels/8.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ipsum", "levels/8.txt")))
        .expect(1)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let scenario = Scenario::new(
        &fake,
        ipsum(
            &format!("{}/levels/8.txt", server.uri()),
            &[("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1H")],
        ),
    );
    fake.state.lock().unwrap().states.insert(
        scenario.id(),
        Some(r#"{"etag": "bad\nvalue", "last_run": "2026-01-01 00:00:00"}"#.into()),
    );
    let running = scenario.start().await;
    running.works(1).await;
    running.stop().await;
    let processed = &fake.calls("workEdit.toProcessed")[0].variables;
    assert_eq!(processed["inError"], false, "{processed}");
    assert!(fake.count("stixBundlePush") >= 1);
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("if-none-match").is_none());
}

#[tokio::test]
async fn an_unroutable_amqp_publish_fails_the_run_and_keeps_the_state() {
    let server = MockServer::start().await;
    Mock::given(path("/levels/8.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ipsum", "levels/8.txt")))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    fake.state.lock().unwrap().unbound_push = true;
    let running = Scenario::new(
        &fake,
        ipsum(
            &format!("{}/levels/8.txt", server.uri()),
            &[
                ("IPSUM_CONNECTOR_QUEUE_PROTOCOL", "amqp"),
                ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1H"),
            ],
        ),
    )
    .start()
    .await;
    let id = running.id().to_string();
    running.works(1).await;
    running.stop().await;
    let processed = &fake.calls("workEdit.toProcessed")[0].variables;
    assert_eq!(processed["inError"], true, "{processed}");
    assert!(
        processed["message"]
            .as_str()
            .unwrap()
            .contains("could route a message to no queue"),
        "{processed}"
    );
    assert_eq!(
        fake.state.lock().unwrap().states[&id].as_deref(),
        Some("null"),
        "no new state after a publish that was not routed"
    );
}
