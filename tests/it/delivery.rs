//! Delivery across faults, at process level with the compiled daemon, the real broker and the
//! fake OpenCTI: an OpenCTI outage longer than the retry budget, and a message that kills the
//! process. Run one at a time with the `faults` group (`.config/nextest.toml`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::fake_opencti::Outage;
use crate::common::*;
use serde_json::{Value, json};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The environment of a daemon running IPinfo (connector `id`) against `opencti`.
fn ipinfo_env(opencti: &str, id: &str, upstream: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OPENCTI_URL", opencti.to_string()),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN.into()),
        ("IPINFO_ENABLED", "true".into()),
        ("IPINFO_CONNECTOR_ID", id.to_string()),
        ("IPINFO_TOKEN", "ipinfo-secret-token".into()),
        ("IPINFO_API_BASE_URL", upstream.to_string()),
        ("IPINFO_CONNECTOR_CONCURRENCY", "4".into()),
        ("IPINFO_CACHE_TTL", "PT0S".into()),
        ("DAEMON_PING_INTERVAL", "PT1S".into()),
        ("LOG_LEVEL", "info".into()),
    ]
}

/// Each work's `toProcessed` calls, in order.
fn outcomes(fake: &FakeOpencti) -> HashMap<String, Vec<Value>> {
    let mut works: HashMap<String, Vec<Value>> = HashMap::new();
    for call in fake.calls("workEdit.toProcessed") {
        let id = call.variables["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        works.entry(id).or_default().push(call.variables);
    }
    works
}

/// An IPinfo answering every address after `delay`.
async fn ipinfo(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/[0-9.]+/json$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(
                    fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
                    "application/json",
                )
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opencti_outage_longer_than_the_retry_budget_loses_nothing_and_answers_the_playbook_once()
 {
    const WORKS: usize = 6;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let upstream = ipinfo(Duration::ZERO).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut env = ipinfo_env(&fake.url, &id, &upstream.uri());
    // A budget far shorter than the outage; held calls time out after 2 s.
    env.push(("DAEMON_MAX_RETRY_DURATION", "PT2S".into()));
    env.push(("OPENCTI_REQUEST_TIMEOUT", "PT2S".into()));
    let daemon = Daemon::spawn(&env);
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    let health = format!("http://127.0.0.1:{}/healthz", daemon.port);
    for _ in 0..100 {
        if reqwest::get(&health).await.unwrap().status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The platform restarts behind its ingress: 503 on every call, `about` included.
    fake.state.lock().unwrap().outage = Some(Outage::Unavailable);
    for i in 0..WORKS {
        fake.publish_listen(&id, &manual_message(&format!("work_{i}"), &ip_stix(GREEN)))
            .await;
    }
    fake.publish_listen(&id, &playbook_message(vec![ip_stix(GREEN)]))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let answer = reqwest::get(&health).await.unwrap();
    assert_eq!(answer.status(), 503);
    let text = answer.text().await.unwrap();
    assert!(text.contains("opencti: unavailable since"), "{text}");
    // Then it accepts connections and answers nothing.
    fake.state.lock().unwrap().outage = Some(Outage::Hold);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        outcomes(&fake).is_empty(),
        "nothing is recorded while the platform is down"
    );
    assert_eq!(fake.count("playbookStepExecution"), 0);

    fake.state.lock().unwrap().outage = None;
    fake.wait_for_long(
        "every work and the playbook step",
        Duration::from_secs(60),
        |s| {
            let works: std::collections::HashSet<&str> = s
                .calls
                .iter()
                .filter(|c| c.field == "workEdit.toProcessed")
                .filter_map(|c| c.variables["id"].as_str())
                .collect();
            works.len() == WORKS && s.count("playbookStepExecution") >= 1
        },
    )
    .await;
    // Settled: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let works = outcomes(&fake);
    for i in 0..WORKS {
        let work = format!("work_{i}");
        let done = &works[&work];
        assert!(
            done.iter().all(|d| d["inError"] == false),
            "{work} ended with its bundle, never as a failure: {done:?}"
        );
        assert!(
            fake.calls("stixBundlePush")
                .iter()
                .any(|c| c.variables["work_id"] == work.as_str()),
            "{work}'s bundle was pushed"
        );
    }
    assert_eq!(
        fake.count("playbookStepExecution"),
        1,
        "the playbook step is answered once"
    );
    let answer = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(answer["bundle"].as_str().unwrap()).unwrap();
    assert!(
        bundle["objects"].as_array().unwrap().len() > 1,
        "answered with the enrichment, not the bundle unchanged"
    );
    assert_eq!(reqwest::get(&health).await.unwrap().status(), 200);
    let _ = daemon.terminate().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}

/// An IPinfo whose answer to `poison` kills the daemon process (as an out-of-memory kill
/// would), and which answers every other address after a delay.
struct Killer {
    poison: String,
    pid: Arc<Mutex<Option<u32>>>,
}

impl Respond for Killer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path() == format!("/{}/json", self.poison) {
            if let Some(pid) = self.pid.lock().unwrap().take() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            return ResponseTemplate::new(500);
        }
        ResponseTemplate::new(200)
            .set_body_raw(
                fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
                "application/json",
            )
            .set_delay(Duration::from_millis(400))
    }
}

/// An IPv4 observable of `value`, known to the fake.
fn address(fake: &FakeOpencti, value: &str) -> Value {
    let id = format!(
        "ipv4-addr--{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, value.as_bytes())
    );
    add_entity(
        fake,
        &id,
        &uuid::Uuid::new_v4().to_string(),
        "IPv4-Addr",
        json!([{"id": "m-1", "standard_id": GREEN, "definition_type": "TLP", "definition": "TLP:GREEN", "x_opencti_order": 1}]),
        Some(value),
    );
    json!({"id": id, "spec_version": "2.1", "type": "ipv4-addr", "value": value, "object_marking_refs": [GREEN]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_crashes_the_process_at_most_twice_and_its_neighbours_are_processed() {
    let fake = FakeOpencti::start().await;
    let pid = Arc::new(Mutex::new(None));
    let upstream = MockServer::start().await;
    Mock::given(path_regex("^/[0-9.]+/json$"))
        .respond_with(Killer {
            poison: "9.9.9.66".into(),
            pid: pid.clone(),
        })
        .mount(&upstream)
        .await;
    let id = uuid::Uuid::new_v4().to_string();
    let env = ipinfo_env(&fake.url, &id, &upstream.uri());
    let mut daemon = Daemon::spawn(&env);
    *pid.lock().unwrap() = Some(daemon.pid());
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    // Four in flight at once (the concurrency): the poison one among three good ones.
    let values = [
        "9.9.9.1", "9.9.9.2", "9.9.9.66", "9.9.9.3", "9.9.9.4", "9.9.9.5",
    ];
    for (i, value) in values.iter().enumerate() {
        let entity = address(&fake, value);
        fake.publish_listen(&id, &manual_message(&format!("work_{i}"), &entity))
            .await;
    }

    let mut crashes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let works = outcomes(&fake);
        if works.len() == values.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every work ended after {crashes} crash(es): {works:?}\n{}",
            daemon.logs()
        );
        if !daemon.running() {
            crashes += 1;
            assert!(
                crashes <= 2,
                "the poison message was processed a third time"
            );
            daemon = Daemon::spawn(&env);
            *pid.lock().unwrap() = Some(daemon.pid());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(crashes, 2, "one crash beside the neighbours, one alone");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let works = outcomes(&fake);
    let poison = &works["work_2"];
    assert_eq!(poison.len(), 1, "{poison:?}");
    assert_eq!(poison[0]["inError"], true);
    assert!(
        poison[0]["message"]
            .as_str()
            .unwrap()
            .contains("crashed the connector twice"),
        "{poison:?}"
    );
    for (i, value) in values.iter().enumerate().filter(|(i, _)| *i != 2) {
        let done = &works[&format!("work_{i}")];
        assert!(
            done.iter().all(|d| d["inError"] == false),
            "{value}, in flight beside the poison one, is processed normally: {done:?}"
        );
    }
    let _ = daemon.terminate().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}
