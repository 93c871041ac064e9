//! The `opencti-connectors` binary: environment-only config, registration and pings against
//! the fake OpenCTI, health and metrics, an enrichment, clean exit on SIGTERM, startup errors.

use std::process::Command;

use crate::common::*;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::daemon::{BIN, Daemon};

#[tokio::test]
async fn daemon_registers_pings_enriches_and_stops_cleanly() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let upstream = MockServer::start().await;
    let body =
        std::fs::read_to_string(shared("fixtures/ipinfo/ipv4_asn_privacy_8.8.8.8.json")).unwrap();
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&upstream)
        .await;
    let id = uuid::Uuid::new_v4().to_string();
    let daemon = Daemon::spawn(&[
        ("OPENCTI_URL", fake.url.clone()),
        ("OPENCTI_TOKEN", crate::common::fake_opencti::TOKEN.into()),
        ("IPINFO_ENABLED", "true".into()),
        ("IPINFO_CONNECTOR_ID", id.clone()),
        ("IPINFO_TOKEN", "ipinfo-secret-token".into()),
        ("IPINFO_API_BASE_URL", upstream.uri()),
        ("DAEMON_PING_INTERVAL", "PT1S".into()),
        ("LOG_LEVEL", "debug".into()),
        ("LOG_FORMAT", "json".into()),
    ]);
    let port = daemon.port;
    fake.wait_for("registration and two pings", |s| {
        s.count("registerConnector") == 1 && s.count("pingConnector") >= 2
    })
    .await;
    assert_eq!(
        fake.calls("registerConnector")[0].variables["input"]["id"],
        id.as_str()
    );
    assert!(fake.count("about") >= 1, "the version check ran");

    let health = format!("http://127.0.0.1:{port}/healthz");
    let status = Command::new(BIN)
        .args(["healthcheck", "--url", &health])
        .status()
        .unwrap();
    assert!(status.success(), "healthcheck subcommand reports healthy");

    fake.publish_listen(&id, &manual_message("work_d", &ip_stix(GREEN)))
        .await;
    fake.wait_for("the enrichment", |s| s.count("workEdit.toProcessed") == 1)
        .await;
    assert_eq!(
        fake.calls("workEdit.toProcessed")[0].variables["message"],
        "Sent 9 stix bundle(s) for worker import"
    );
    // The request is settled (acked, in flight no more) a moment after its work is closed.
    let mut metrics = String::new();
    for _ in 0..40 {
        metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(r#"opencti_connectors_requests_in_flight{connector="ipinfo"} 0"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        metrics.contains(
            r#"opencti_connectors_events_total{connector="ipinfo",event="enrichments_succeeded"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"opencti_connectors_up{connector="ipinfo"} 1"#),
        "{metrics}"
    );
    for series in [
        r#"opencti_connectors_upstream_calls_total{connector="ipinfo",status="2xx"} 1"#,
        r#"opencti_connectors_cache_lookups_total{connector="ipinfo",result="miss"} 1"#,
        r#"opencti_connectors_upstream_latency_seconds_count{connector="ipinfo"} 1"#,
        r#"opencti_connectors_upstream_in_flight{connector="ipinfo"} 0"#,
        r#"opencti_connectors_requests_in_flight{connector="ipinfo"} 0"#,
        // pycti's names.
        r#"opencti_connectors_bundles_sent_total{connector="ipinfo"} 9"#,
        r#"opencti_connectors_records_sent_total{connector="ipinfo"} 9"#,
        r#"opencti_connectors_runs_total{connector="ipinfo"} 1"#,
        r#"opencti_connectors_state{connector="ipinfo",state="idle"} 1"#,
        r#"opencti_connectors_state{connector="ipinfo",state="running"} 0"#,
        r#"opencti_connectors_ping_api_total{connector="ipinfo"} "#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }

    let output = daemon.terminate().await;
    assert!(
        output.status.success(),
        "exit 0 on SIGTERM: {:?}",
        output.status
    );
    let logs = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("Connector registered."), "{logs}");
    assert!(
        logs.lines()
            .filter(|l| l.starts_with('{'))
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs"
    );
    for secret in ["ipinfo-secret-token", crate::common::fake_opencti::TOKEN] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[test]
fn bad_config_fails_at_startup_naming_the_key() {
    let out = Command::new(BIN)
        .arg("check-config")
        .current_dir(std::env::temp_dir())
        .env_remove("CONFIG_FILE")
        .env("OPENCTI_URL", "http://opencti:8080")
        .env("OPENCTI_TOKEN", "very-secret")
        .env("IPINFO_ENABLED", "true")
        .env("IPINFO_CONNECTOR_ID", "not-a-uuid")
        .env("IPINFO_TOKEN", "also-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ipinfo.connector.id") && err.contains("UUID"),
        "{err}"
    );
    assert!(!err.contains("very-secret") && !err.contains("also-secret"));
}

#[test]
fn a_named_config_file_that_is_missing_is_an_error() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/config.yml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.yml"));
}

#[test]
fn the_sample_config_checks_once_secrets_are_set() {
    let sample = format!("{}/config.yml.sample", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(BIN)
        .args(["--config", &sample, "check-config"])
        .env("OPENCTI_TOKEN", "x")
        .env("IPINFO_ENABLED", "true")
        .env("IPINFO_TOKEN", "x")
        .env(
            "IPINFO_CONNECTOR_ID",
            "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ipinfo: IPInfo (INTERNAL_ENRICHMENT"));
}

#[tokio::test]
async fn healthz_reports_the_connectors_that_are_not_up() {
    use std::sync::Arc;
    let metrics = Arc::new(opencti_connectors::metrics::Metrics::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let addr = opencti_connectors::health::serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        vec!["ipinfo", "ipsum"],
        stop.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{addr}/healthz");
    metrics.set_up("ipinfo", true);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.text().await.unwrap(), "not ready: ipsum\n");
    assert!(
        opencti_connectors::health::probe(&url).await.is_err(),
        "the healthcheck subcommand fails too"
    );
    metrics.set_up("ipsum", true);
    assert_eq!(reqwest::get(&url).await.unwrap().status().as_u16(), 200);
    assert!(opencti_connectors::health::probe(&url).await.is_ok());
    // A replica standing by for the import lock is ready; the body says which one holds it.
    metrics.set_import_lock("ipsum", false);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "ok\nipsum: standby, waiting for the import lock\n"
    );
    metrics.set_import_lock("ipsum", true);
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert_eq!(body, "ok\nipsum: import lock held\n");
    assert!(
        metrics
            .render()
            .contains("opencti_connectors_import_lock_held{connector=\"ipsum\"} 1")
    );
    stop.cancel();
}
