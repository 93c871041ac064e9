//! LastInfoSec through the runtime, the API faked by wiremock.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use opencti_connectors::config::ConnectorSettings;
use opencti_connectors::connectors::Hosted;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "lis-secret-key";

fn lastinfosec(base: &str, extra: &[(&str, &str)]) -> (ConnectorSettings, Hosted) {
    build_connector(
        "lastinfosec",
        &[
            ("CONFIG_LIS_APIKEY_CTI", KEY),
            ("LASTINFOSEC_API_BASE_URL", base),
        ],
        extra,
    )
}

/// Registers an observable in the fake and returns a manual message for it.
fn observable(
    fake: &FakeOpencti,
    work: &str,
    entity: Value,
    value: &str,
    tlp: Option<&str>,
) -> Vec<u8> {
    let id = entity["id"].as_str().unwrap().to_string();
    let markings = match tlp {
        Some(t) => json!([{"definition_type": "TLP", "definition": t}]),
        None => json!([]),
    };
    let internal = format!("internal-{work}");
    add_entity(fake, &id, &internal, "X", markings, Some(value));
    manual_message(work, &entity)
}

fn domain(value: &str) -> Value {
    json!({"id": opencti_connectors::stix::ids::value_observable_id("domain-name", value), "type": "domain-name", "spec_version": "2.1", "value": value})
}

#[tokio::test]
async fn search_mode_imports_the_bundle_with_the_external_reference() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .and(query_param("api_key", KEY))
        .and(query_param("platform", "opencti"))
        .and(body_json(json!({"value": "example.net"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json(
            "lastinfosec",
            "stix21_search_domain_found_constructed.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .and(body_json(json!({"value": "unknown.example"})))
        .respond_with(ResponseTemplate::new(422).set_body_json(fixture_json(
            "lastinfosec",
            "error_422_not_found_constructed.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(&fake, lastinfosec(&format!("{}/v2", server.uri()), &[]))
        .start()
        .await;
    running
        .publish(&observable(
            &fake,
            "work_found",
            domain("example.net"),
            "example.net",
            None,
        ))
        .await;
    running
        .publish(&observable(
            &fake,
            "work_nf",
            domain("unknown.example"),
            "unknown.example",
            None,
        ))
        .await;
    running.works(2).await;
    assert_eq!(
        fake.processed("work_found")["message"],
        "Sent 6 stix bundle(s) for worker import"
    );
    assert_eq!(
        fake.processed("work_nf")["message"],
        "unknown.example not found..."
    );
    assert_eq!(fake.processed("work_nf")["inError"], false);
    let objects = pushed_objects(&fake.calls("stixBundlePush")[0]);
    assert_eq!(objects.len(), 6);
    let entity = objects
        .iter()
        .find(|o| o["value"] == "example.net")
        .unwrap();
    assert_eq!(
        entity["x_opencti_external_references"][0]["source_name"],
        "Last Info Sec"
    );
    let upstream = fixture_json("lastinfosec", "stix21_search_domain_found_constructed.json");
    for o in upstream["message"][0]["objects"].as_array().unwrap() {
        let sent = objects
            .iter()
            .find(|s| s["id"] == o["id"])
            .expect("upstream object sent");
        assert_eq!(sent, o, "objects are kept as the API gives them");
    }
    running.stop().await;
}

#[tokio::test]
async fn hash_host_mode_hits_the_right_endpoints() {
    let server = MockServer::start().await;
    let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    Mock::given(method("GET"))
        .and(path(format!("/v2/stix21/search_hash/{sha256}")))
        .and(query_param("api_key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json(
            "lastinfosec",
            "stix21_search_hash_found_constructed.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/stix21/search_host/example.net"))
        .respond_with(ResponseTemplate::new(422))
        .expect(2)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(
        &fake,
        lastinfosec(
            &format!("{}/v2", server.uri()),
            &[("LASTINFOSEC_ENDPOINT", "hash_host")],
        ),
    )
    .start()
    .await;
    let file = json!({"id": "file--5b2b6e8e-9e3c-5e5c-9d1d-7a3c8e9f0a1b", "type": "file", "spec_version": "2.1",
                      "hashes": {"MD5": "d41d8cd98f00b204e9800998ecf8427e", "SHA-256": sha256}});
    running
        .publish(&observable(&fake, "work_file", file, sha256, None))
        .await;
    let url = json!({"id": "url--5b2b6e8e-9e3c-5e5c-9d1d-7a3c8e9f0a1c", "type": "url", "spec_version": "2.1", "value": "https://example.net/path?q=1"});
    running
        .publish(&observable(
            &fake,
            "work_url",
            url,
            "https://example.net/path?q=1",
            None,
        ))
        .await;
    let host = json!({"id": "hostname--5b2b6e8e-9e3c-5e5c-9d1d-7a3c8e9f0a1d", "type": "hostname", "spec_version": "2.1", "value": "example.net"});
    running
        .publish(&observable(&fake, "work_host", host, "example.net", None))
        .await;
    running.works(3).await;
    assert_eq!(
        fake.processed("work_file")["message"],
        "Sent 9 stix bundle(s) for worker import"
    );
    assert_eq!(
        fake.processed("work_url")["message"],
        "https://example.net/path?q=1 not found..."
    );
    assert_eq!(
        fake.processed("work_host")["message"],
        "example.net not found..."
    );
    running.stop().await;
}

#[tokio::test]
async fn the_proxy_setting_reaches_the_http_client() {
    let proxy = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .respond_with(ResponseTemplate::new(422))
        .expect(1)
        .mount(&proxy)
        .await;
    let fake = FakeOpencti::start().await;
    // The API host does not exist: only the proxy can answer.
    let running = Scenario::new(
        &fake,
        lastinfosec(
            "http://lastinfosec.invalid/v2",
            &[("PROXY_HTTP", &proxy.uri())],
        ),
    )
    .start()
    .await;
    let outcome = running
        .send(&observable(
            &fake,
            "work_p",
            domain("example.net"),
            "example.net",
            None,
        ))
        .await;
    assert_eq!(outcome.message, "example.net not found...");
    let seen = proxy.received_requests().await.unwrap();
    assert_eq!(
        seen[0].url.host_str(),
        Some("lastinfosec.invalid"),
        "the proxy got the absolute URL"
    );
    running.stop().await;
}

#[tokio::test]
async fn tlp_gate_playbook_and_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .and(body_json(json!({"value": "example.net"})))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture_json("lastinfosec", "error_401_constructed.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .and(body_json(json!({"value": "8.8.8.8"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json(
            "lastinfosec",
            "stix21_search_hash_found_constructed.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, lastinfosec(&format!("{}/v2", server.uri()), &[]))
        .start()
        .await;
    running
        .publish(&observable(
            &fake,
            "work_red",
            domain("secret.example"),
            "secret.example",
            Some("TLP:RED"),
        ))
        .await;
    running
        .publish(&observable(
            &fake,
            "work_401",
            domain("example.net"),
            "example.net",
            None,
        ))
        .await;
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("all three", |s| {
        s.count("workEdit.toProcessed") == 2 && s.count("playbookStepExecution") == 1
    })
    .await;
    assert_eq!(
        fake.processed("work_red")["message"],
        "Do not send any data, TLP of the observable is greater than MAX TLP"
    );
    let creds = fake.processed("work_401")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        creds.starts_with("401 Client Error: Unauthorized for url: ")
            && creds.contains("api_key=**redacted**"),
        "{creds}"
    );
    let step = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(step["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(
        bundle["objects"].as_array().unwrap().len(),
        1 + 8,
        "the playbook gets the entity and the upstream bundle"
    );
    for call in fake.all_calls() {
        assert!(
            !call.variables.to_string().contains(KEY),
            "the API key leaked into {}",
            call.field
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn the_reference_reaches_an_observable_that_already_has_one_and_no_upstream_copy_replaces_it()
{
    let ext = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";
    let mut entity = domain("example.net");
    entity["extensions"] = json!({ext: {"id": "internal-x", "type": "Domain-Name",
        "external_references": [{"source_name": "VirusTotal", "url": "https://www.virustotal.com/gui/domain/example.net"}]}});
    // The upstream bundle also carries its own copy of the enriched domain.
    let mut answer = fixture_json("lastinfosec", "stix21_search_domain_found_constructed.json");
    answer["message"][0]["objects"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "domain-name", "spec_version": "2.1", "id": entity["id"], "value": "example.net", "x_upstream_copy": true}));
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let running = Scenario::new(&fake, lastinfosec(&format!("{}/v2", server.uri()), &[]))
        .start()
        .await;
    let message = observable(&fake, "work_ref", entity.clone(), "example.net", None);
    // The platform's export is the observable with its reference.
    fake.state
        .lock()
        .unwrap()
        .stix
        .insert(entity["id"].as_str().unwrap().into(), entity.clone());
    running.send(&message).await;
    running.stop().await;
    let objects = pushed_objects(&fake.calls("stixBundlePush")[0]);
    let pushed: Vec<&Value> = objects.iter().filter(|o| o["id"] == entity["id"]).collect();
    assert_eq!(pushed.len(), 1);
    assert!(
        pushed[0].get("x_upstream_copy").is_none(),
        "the platform's entity, not the copy"
    );
    let refs = pushed[0]["extensions"][ext]["external_references"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = refs
        .iter()
        .map(|r| r["source_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VirusTotal", "Last Info Sec"]);
}

/// A LastInfoSec answering `n` small indicators for every lookup.
async fn answering_indicators(n: usize) -> MockServer {
    let objects: Vec<Value> = (0..n)
        .map(|i| json!({"type": "indicator", "spec_version": "2.1", "id": format!("indicator--{}", uuid::Uuid::new_v4()),
                        "pattern": format!("[domain-name:value = 'd{i}.example']"), "pattern_type": "stix"}))
        .collect();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message": [{"type": "bundle", "objects": objects}]})),
        )
        .mount(&server)
        .await;
    server
}

/// An answer whose reservation (its size, read, parsed lean and sent) is more than the whole
/// memory budget fails its work, naming the setting, and the message is acked.
#[tokio::test]
async fn an_answer_larger_than_the_memory_budget_allows_fails_its_work_naming_the_setting() {
    // About 10 MB: three times that is past a 16 MiB budget.
    let server = answering_indicators(80_000).await;
    let fake = FakeOpencti::start().await;
    let mut platform = platform(&fake);
    Arc::get_mut(&mut platform).unwrap().memory =
        opencti_connectors::memory::MemoryBudget::new(16 * 1024 * 1024);
    let scenario =
        Scenario::new(&fake, lastinfosec(&format!("{}/v2", server.uri()), &[])).on(platform);
    let id = scenario.id();
    let message = observable(
        &fake,
        "work_big",
        domain("big.example"),
        "big.example",
        None,
    );
    let done = scenario.run_once(&message).await;
    assert!(done.in_error);
    let text = done.message.as_str().unwrap();
    assert!(
        text.contains("daemon.memory_budget") && text.contains("16 MiB"),
        "{text}"
    );
    assert_eq!(fake.count("stixBundlePush"), 0);
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}

/// While the memory budget is full, a request waits for room until its retry budget ends,
/// then is given back; once there is room, it is processed.
#[tokio::test]
async fn a_request_waits_for_the_memory_budget_then_is_given_back_and_done_later() {
    let server = answering_indicators(2_000).await;
    let fake = FakeOpencti::start().await;
    let mut platform = platform(&fake);
    let budget = opencti_connectors::memory::MemoryBudget::new(16 * 1024 * 1024);
    {
        let platform = Arc::get_mut(&mut platform).unwrap();
        platform.memory = budget.clone();
        platform.max_retry = Duration::from_millis(500);
    }
    let metrics = platform.metrics.clone();
    // Another request holds all of it.
    let hog = budget.ledger(
        tokio::time::Instant::now() + Duration::from_secs(600),
        tokio_util::sync::CancellationToken::new(),
    );
    hog.charge(16 * 1024 * 1024).await.unwrap();
    let running = Scenario::new(&fake, lastinfosec(&format!("{}/v2", server.uri()), &[]))
        .on(platform)
        .start()
        .await;
    let message = observable(
        &fake,
        "work_wait",
        domain("wait.example"),
        "wait.example",
        None,
    );
    running.publish(&message).await;
    let given_back = r#"event="messages_given_back"}"#;
    for _ in 0..100 {
        if metrics.render().contains(given_back) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.render().contains(given_back),
        "given back while the budget is full"
    );
    assert_eq!(
        fake.count("workEdit.toProcessed"),
        0,
        "nothing failed for it"
    );
    drop(hog);
    let outcomes = running.works(1).await;
    assert!(!work(&outcomes, "work_wait").in_error);
    running.stop().await;
}
