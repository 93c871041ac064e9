//! Process-level faults, with the compiled daemon, the real broker and the fake OpenCTI: a
//! SIGKILL with requests in flight, broker connections closed under load, OpenCTI down at
//! start-up, OpenCTI failing every push, and a hostile upstream bundle. Each is bounded in
//! time, and they run one at a time (`.config/nextest.toml`, group `faults`).

use std::collections::HashMap;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::proxy::Proxy;
use crate::common::*;
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An IPinfo upstream answering 8.8.8.8 after `delay`.
async fn slow_ipinfo(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    answer_ipinfo(&server, delay).await;
    server
}

/// Makes `server` answer 8.8.8.8 after `delay`.
async fn answer_ipinfo(server: &MockServer, delay: Duration) {
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(
                    fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
                    "application/json",
                )
                .set_delay(delay),
        )
        .mount(server)
        .await;
}

/// The environment of a daemon running IPinfo (connector `id`) against `opencti`.
fn ipinfo_env(
    opencti: &str,
    id: &str,
    upstream: &str,
    concurrency: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("OPENCTI_URL", opencti.to_string()),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN.into()),
        ("IPINFO_ENABLED", "true".into()),
        ("IPINFO_CONNECTOR_ID", id.to_string()),
        ("IPINFO_TOKEN", "ipinfo-secret-token".into()),
        ("IPINFO_API_BASE_URL", upstream.to_string()),
        ("IPINFO_CONNECTOR_CONCURRENCY", concurrency.to_string()),
        // Every request must reach the slow upstream: no cached answers.
        ("IPINFO_CACHE_TTL", "PT0S".into()),
        ("DAEMON_PING_INTERVAL", "PT1S".into()),
        ("LOG_LEVEL", "warn".into()),
    ]
}

/// How often each work was processed, and how many of those failed.
fn processed(state: &fake_opencti::FakeState) -> (HashMap<String, usize>, usize) {
    let mut works = HashMap::new();
    let mut failed = 0;
    for call in state
        .calls
        .iter()
        .filter(|c| c.field == "workEdit.toProcessed")
    {
        *works
            .entry(
                call.variables["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_insert(0) += 1;
        if call.variables["inError"] == true {
            failed += 1;
        }
    }
    (works, failed)
}

async fn publish_works(fake: &FakeOpencti, id: &str, n: usize) {
    for i in 0..n {
        fake.publish_listen(id, &manual_message(&format!("work_{i}"), &ip_stix(GREEN)))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_with_100_requests_in_flight_loses_none_after_a_restart() {
    const WORKS: usize = 150;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let upstream = slow_ipinfo(Duration::from_millis(800)).await;
    let id = uuid::Uuid::new_v4().to_string();
    let env = ipinfo_env(&fake.url, &id, &upstream.uri(), 128);
    let mut first = Daemon::spawn(&env);
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    publish_works(&fake, &id, WORKS).await;
    for _ in 0..200 {
        if upstream.received_requests().await.unwrap().len() >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        upstream.received_requests().await.unwrap().len() >= 100,
        "100 in flight"
    );
    first.kill();
    // The 128 redelivered requests may have been in flight when the process died: each runs
    // alone (the poison-message rule), so the upstream answers at once from now on.
    upstream.reset().await;
    answer_ipinfo(&upstream, Duration::ZERO).await;

    let second = Daemon::spawn(&env);
    fake.wait_for("every work processed", |s| processed(s).0.len() == WORKS)
        .await;
    let (works, failed) = processed(&fake.state.lock().unwrap());
    let duplicates: usize = works.values().map(|n| n - 1).sum();
    eprintln!("{WORKS} works, {duplicates} processed twice (redelivered after the kill)");
    assert_eq!(failed, 0);
    assert!((0..WORKS).all(|i| works.contains_key(&format!("work_{i}"))));
    let _ = second.terminate().await;
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        0,
        "every message acked"
    );
}

/// The pids (`<rabbit@…>`) of the broker connections whose name holds `needle`.
fn broker_connections(needle: &str) -> Vec<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--no-table-headers",
            "-q",
        ])
        .output()
        .expect("rabbitmqctl (the broker's own CLI) is on this machine");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_connections_closed_under_load_lose_nothing() {
    const WORKS: usize = 100;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let upstream = slow_ipinfo(Duration::from_millis(100)).await;
    let id = uuid::Uuid::new_v4().to_string();
    let daemon = Daemon::spawn(&ipinfo_env(&fake.url, &id, &upstream.uri(), 16));
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    publish_works(&fake, &id, WORKS).await;
    fake.wait_for("some progress", |s| processed(s).0.len() >= 20)
        .await;
    let pids = broker_connections(&id);
    assert!(
        !pids.is_empty(),
        "the daemon's connection is named after its connector id"
    );
    for pid in &pids {
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "fault test"])
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    }
    fake.wait_for("every work processed", |s| processed(s).0.len() == WORKS)
        .await;
    let (works, failed) = processed(&fake.state.lock().unwrap());
    assert_eq!(failed, 0);
    assert_eq!(works.len(), WORKS);
    // Reconnected (after the backoff) and every message acked, redeliveries included.
    let health = format!("http://127.0.0.1:{}/healthz", daemon.port);
    let mut healthy = false;
    for _ in 0..200 {
        let queued = fake.queue_len(&FakeOpencti::listen_queue(&id)).await;
        healthy = reqwest::get(&health).await.unwrap().status().as_u16() == 200;
        if healthy && queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy, "consuming again");
    let _ = daemon.terminate().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencti_down_at_start_up_then_up() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let proxy = Proxy::start(&fake.url).await;
    proxy.down();
    let upstream = slow_ipinfo(Duration::ZERO).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut daemon = Daemon::spawn(&ipinfo_env(&proxy.url, &id, &upstream.uri(), 4));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(daemon.running(), "it waits for OpenCTI instead of exiting");
    assert_eq!(fake.count("registerConnector"), 0);
    let health = format!("http://127.0.0.1:{}/healthz", daemon.port);
    assert_eq!(reqwest::get(&health).await.unwrap().status().as_u16(), 503);

    proxy.up().await;
    fake.wait_for("registration once OpenCTI is up", |s| {
        s.count("registerConnector") == 1
    })
    .await;
    fake.publish_listen(&id, &manual_message("work_late", &ip_stix(GREEN)))
        .await;
    fake.wait_for("the work", |s| s.count("workEdit.toProcessed") == 1)
        .await;
    assert_eq!(fake.processed("work_late")["inError"], false);
    let _ = daemon.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencti_failing_every_push_fails_the_work_after_max_retry_duration() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    fake.state.lock().unwrap().fail_pushes = usize::MAX;
    let upstream = slow_ipinfo(Duration::ZERO).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut env = ipinfo_env(&fake.url, &id, &upstream.uri(), 4);
    env.push(("DAEMON_MAX_RETRY_DURATION", "PT1S".into()));
    let daemon = Daemon::spawn(&env);
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    fake.publish_listen(&id, &manual_message("work_5xx", &ip_stix(GREEN)))
        .await;
    fake.wait_for("the failed work", |s| s.count("workEdit.toProcessed") == 1)
        .await;
    let done = fake.processed("work_5xx");
    assert_eq!(done["inError"], true);
    assert!(
        done["message"].as_str().unwrap().contains("HTTP 503"),
        "{done}"
    );
    let _ = daemon.terminate().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50k_deep_upstream_reference_chain_does_not_crash_the_daemon() {
    // LastInfoSec answers a bundle whose 50,000 notes each reference the next: the recursive
    // splitter overflowed the worker stack here and aborted the whole process.
    const DEPTH: usize = 50_000;
    let ids: Vec<String> = (0..DEPTH)
        .map(|_| format!("note--{}", uuid::Uuid::new_v4()))
        .collect();
    let objects: Vec<serde_json::Value> = (0..DEPTH)
        .map(|i| {
            let next: Vec<&str> = ids.get(i + 1).map(String::as_str).into_iter().collect();
            json!({"type": "note", "id": ids[i], "spec_version": "2.1", "content": "x", "object_refs": next})
        })
        .collect();
    let body = json!({"message": [{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects}]});
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/stix21/search/?$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&upstream)
        .await;
    let fake = FakeOpencti::start().await;
    let domain = json!({"id": "domain-name--d8f80844-a558-554c-97ba-13937278c048", "type": "domain-name", "spec_version": "2.1", "value": "www.furth.com.ar"});
    add_entity(
        &fake,
        domain["id"].as_str().unwrap(),
        "d-1",
        "Domain-Name",
        json!([]),
        Some("www.furth.com.ar"),
    );
    let id = uuid::Uuid::new_v4().to_string();
    let mut daemon = Daemon::spawn(&[
        ("OPENCTI_URL", fake.url.clone()),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN.into()),
        ("LASTINFOSEC_ENABLED", "true".into()),
        ("LASTINFOSEC_CONNECTOR_ID", id.clone()),
        ("LASTINFOSEC_API_KEY_CTI", "lis-key".into()),
        ("LASTINFOSEC_API_BASE_URL", format!("{}/v2", upstream.uri())),
        ("LOG_LEVEL", "warn".into()),
    ]);
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    fake.publish_listen(&id, &manual_message("work_deep", &domain))
        .await;
    // 50,000 objects through a debug build: allow for a loaded machine.
    fake.wait_for_long("the work", Duration::from_secs(60), |s| {
        s.count("workEdit.toProcessed") == 1
    })
    .await;
    assert!(daemon.running(), "the process survived");
    assert_eq!(fake.processed("work_deep")["inError"], false);
    let pushed: usize = fake
        .calls("stixBundlePush")
        .iter()
        .map(|c| pushed_objects(c).len())
        .sum();
    assert!(pushed > DEPTH, "every note was sent ({pushed})");
    let _ = daemon.terminate().await;
}
