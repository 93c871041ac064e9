//! `check-config --online` through the binary: one line per check against the fake OpenCTI,
//! the real broker and faked upstreams, exit 1 when a check fails, no secret printed.

use std::process::{Command, Output};

use crate::common::daemon::{BIN, free_port};
use crate::common::*;
use opencti_connectors::connectors::Hosted;
use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const IPINFO_SECRET: &str = "ipinfo-secret-for-check";

async fn check_online(env: &[(&str, String)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["check-config", "--online"])
        .current_dir(std::env::temp_dir())
        .env_remove("CONFIG_FILE");
    for (k, v) in env {
        command.env(k, v);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// IPinfo answering `status` for 8.8.8.8 and an IPsum feed answering 200.
async fn upstreams(ipinfo_status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(ipinfo_status).set_body_raw(
            fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/levels/5.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ipsum", "levels/5.txt")))
        .mount(&server)
        .await;
    server
}

fn env(fake: &FakeOpencti, upstream: &MockServer, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OPENCTI_URL", fake.url.clone()),
        ("OPENCTI_TOKEN", token.into()),
        ("IPINFO_ENABLED", "true".into()),
        ("IPINFO_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("IPINFO_TOKEN", IPINFO_SECRET.into()),
        ("IPINFO_API_BASE_URL", upstream.uri()),
        ("IPSUM_ENABLED", "true".into()),
        ("IPSUM_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        (
            "IPSUM_API_BASE_URL",
            format!("{}/levels/5.txt", upstream.uri()),
        ),
    ]
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn every_dependency_gets_one_line_and_all_pass() {
    let fake = FakeOpencti::start().await;
    let upstream = upstreams(200).await;
    let out = check_online(&env(&fake, &upstream, fake_opencti::TOKEN)).await;
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "ok    opencti: ",
        "answers (OpenCTI 6.8.10, spoken as 6.x); token accepted (user connector-user)",
        "ok    ipinfo: registration: registered as IPInfo (INTERNAL_ENRICHMENT",
        "ok    ipsum: registration: registered as IPsum (EXTERNAL_IMPORT",
        "ok    rabbitmq: amqp://guest@127.0.0.1:5672/",
        "ok    ipinfo: upstream: token accepted",
        "ok    ipsum: upstream: feed answers (HTTP 200",
        "ok    ipsum: import lock: free: this replica would take it",
        "online checks OK (7 check(s))",
    ] {
        assert!(text.contains(line), "`{line}` in\n{text}");
    }
    assert_eq!(
        text.matches("rabbitmq").count(),
        1,
        "one broker, checked once"
    );
    assert_eq!(fake.count("registerConnector"), 2);
    assert!(!text.contains(IPINFO_SECRET) && !text.contains(fake_opencti::TOKEN));
}

#[tokio::test]
async fn a_7x_platform_is_reported_with_the_dialect_spoken_and_registers_in_it() {
    let fake = FakeOpencti::start_as(fake_opencti::VERSION_7).await;
    let upstream = upstreams(200).await;
    let out = check_online(&env(&fake, &upstream, fake_opencti::TOKEN)).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("answers (OpenCTI 7.261026.0, spoken as 7.x)"),
        "{text}"
    );
    let slugs: Vec<Value> = fake
        .calls("registerConnector")
        .iter()
        .map(|c| c.variables["input"]["slug"].clone())
        .collect();
    assert_eq!(slugs, [json!("ipinfo"), json!("ipsum")]);
    assert!(fake.state.lock().unwrap().invalid.is_empty());
}

#[tokio::test]
async fn an_unparseable_version_is_reported_as_spoken_as_6x() {
    let fake = FakeOpencti::start_as("nightly").await;
    let upstream = upstreams(200).await;
    let out = check_online(&env(&fake, &upstream, fake_opencti::TOKEN)).await;
    let text = stdout(&out);
    assert!(
        text.contains("(OpenCTI nightly: version not understood, spoken as 6.x)"),
        "{text}"
    );
    let input = &fake.calls("registerConnector")[0].variables["input"];
    assert!(input.get("slug").is_none(), "{input}");
}

#[tokio::test]
async fn a_refused_key_an_unreachable_broker_and_a_bad_token_each_fail_their_line() {
    let fake = FakeOpencti::start().await;
    let upstream = upstreams(403).await;
    let mut e = env(&fake, &upstream, fake_opencti::TOKEN);
    e.push(("MQ_PORT", free_port().to_string()));
    let out = check_online(&e).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for line in [
        "ok    opencti: ",
        "ok    ipinfo: registration",
        "FAIL  rabbitmq: amqp://guest@127.0.0.1:",
        "FAIL  ipinfo: upstream: Invalid API Token, Error 403",
        "ok    ipsum: upstream",
        "FAIL  ipsum: import lock: amqp://guest@127.0.0.1:",
        "3 of 7 online check(s) failed",
    ] {
        assert!(text.contains(line), "`{line}` in\n{text}");
    }
    assert!(!text.contains(IPINFO_SECRET));

    // A wrong OpenCTI token: nothing is registered, and the upstreams are still checked.
    let upstream = upstreams(200).await;
    let registered = fake.count("registerConnector");
    let out = check_online(&env(&fake, &upstream, "wrong-opencti-token")).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  opencti: ") && text.contains("logged in"),
        "{text}"
    );
    assert!(text.contains("ok    ipinfo: upstream"), "{text}");
    assert!(
        !text.contains("registration") && !text.contains("rabbitmq"),
        "{text}"
    );
    assert_eq!(fake.count("registerConnector"), registered);
    assert!(!text.contains("wrong-opencti-token"));
}

async fn upstream_check(hosted: Hosted) -> Result<String, String> {
    match hosted {
        Hosted::Enrichment(c) => c.check_upstream().await.map_err(|e| e.to_string()),
        Hosted::Import(c) => c.check_upstream().await.map_err(|e| e.to_string()),
    }
}

#[tokio::test]
async fn each_connector_checks_its_key_with_one_cheap_call() {
    use wiremock::matchers::{basic_auth, body_json, method, query_param};
    let server = MockServer::start().await;
    // RiskIQ: the free quota call, never a search.
    Mock::given(method("GET"))
        .and(path("/pt/v2/account/quota"))
        .and(basic_auth("analyst@example.com", "riskiq-key"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture_json("riskiq", "account_quota.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    // LastInfoSec: one lookup of example.com; 422 is "not found", an accepted key.
    Mock::given(method("POST"))
        .and(path("/v2/stix21/search/"))
        .and(query_param("api_key", "lis-key"))
        .and(body_json(serde_json::json!({"value": "example.com"})))
        .respond_with(ResponseTemplate::new(422))
        .expect(1)
        .mount(&server)
        .await;
    // IVRE: ipdata, then each list route's count.
    Mock::given(path("/cgi/ipdata/8.8.8.8"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("ivre", "ipdata_8.8.8.8.json"), "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    for (route, count) in [("passive", "12\n"), ("scans", "3\n")] {
        Mock::given(path(format!("/cgi/{route}/count")))
            .respond_with(ResponseTemplate::new(200).set_body_raw(count, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
    }
    let base = server.uri();
    let (_, riskiq) = build_connector(
        "riskiq",
        &[
            ("RISKIQ_USERNAME", "analyst@example.com"),
            ("RISKIQ_API_KEY", "riskiq-key"),
            ("RISKIQ_API_BASE_URL", &format!("{base}/pt")),
        ],
        &[],
    );
    assert_eq!(
        upstream_check(riskiq).await.unwrap(),
        "credentials accepted; 1234 of 2000 searches used (next reset 2021-01-02 00:00:00)"
    );
    let (_, lis) = build_connector(
        "lastinfosec",
        &[
            ("CONFIG_LIS_APIKEY_CTI", "lis-key"),
            ("LASTINFOSEC_API_BASE_URL", &format!("{base}/v2")),
        ],
        &[],
    );
    assert_eq!(
        upstream_check(lis).await.unwrap(),
        "API key accepted (example.com: not found)"
    );
    let (_, ivre) = build_connector("ivre", &[("IVRE_DB_URL", &format!("{base}/cgi"))], &[]);
    assert_eq!(
        upstream_check(ivre).await.unwrap(),
        "data: 8.8.8.8 known, passive: 12 records, scans: 3 records"
    );

    // A refused key is the connector's own wording, without the key.
    let refused = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401))
        .mount(&refused)
        .await;
    let (_, lis) = build_connector(
        "lastinfosec",
        &[
            ("CONFIG_LIS_APIKEY_CTI", "lis-key"),
            ("LASTINFOSEC_API_BASE_URL", &refused.uri()),
        ],
        &[],
    );
    let error = upstream_check(lis).await.unwrap_err();
    assert!(
        error.contains("refused the API key") && !error.contains("lis-key"),
        "{error}"
    );
}

#[tokio::test]
async fn an_import_lock_held_by_a_running_replica_is_reported_as_such() {
    let fake = FakeOpencti::start().await;
    let upstream = upstreams(200).await;
    let env = env(&fake, &upstream, fake_opencti::TOKEN);
    let id = &env
        .iter()
        .find(|(k, _)| *k == "IPSUM_CONNECTOR_ID")
        .unwrap()
        .1;
    // A running replica: the owner of the lock queue.
    let replica = fake_opencti::broker().await;
    let channel = replica.create_channel().await.unwrap();
    let queue = opencti_connectors::runtime::lock::queue_name(id);
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let text = stdout(&check_online(&env).await);
    assert!(
        text.contains(
            "ok    ipsum: import lock: held by a running replica: this one would stand by"
        ),
        "{text}"
    );
    assert!(text.contains("online checks OK (7 check(s))"), "{text}");
    let _ = replica.close(200, "test done".into()).await;
}

#[tokio::test]
async fn ivre_with_maxmind_files_reports_the_databases_and_their_build_dates() {
    let fake = FakeOpencti::start().await;
    let dir = format!("{}/tests/fixtures/ivre/mmdb", env!("CARGO_MANIFEST_DIR"));
    let env = vec![
        ("OPENCTI_URL", fake.url.clone()),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN.to_string()),
        ("IVRE_ENABLED", "true".into()),
        ("IVRE_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("IVRE_DB_URL_DATA", format!("maxmind://{dir}")),
        ("IVRE_USE_PASSIVE", "false".into()),
        ("IVRE_USE_SCANS", "false".into()),
    ];
    let out = check_online(&env).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = format!(
        "ok    ivre: upstream: data: maxmind://{dir}: GeoLite2-ASN built 2025-07-02, \
         GeoLite2-Country built 2025-07-01, GeoLite2-City built 2025-07-01; 8.8.8.8 known"
    );
    assert!(text.lines().any(|l| l == line), "`{line}` in\n{text}");
}
