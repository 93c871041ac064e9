//! The one-shot commands through the binary, with no OpenCTI and no broker: `enrich` against
//! a faked IPinfo and `import ipsum` from a feed file, their bundles and exit codes.

use std::process::{Command, Output};

use crate::common::daemon::BIN;
use crate::common::*;
use serde_json::Value;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs the binary with only `env` (no OpenCTI settings, no config file).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = crate::common::scratch_dir("occ");
    let mut command = Command::new(BIN);
    command.current_dir(&dir).env_clear().args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    out
}

async fn ipinfo(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(
            fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    server
}

/// The bundle `enrich ipinfo IPv4-Addr 8.8.8.8 --tlp TLP:GREEN` prints with `env`, and its
/// ids sorted.
fn enrich_8888(env: &[(&str, &str)]) -> (Value, Vec<String>) {
    let args = [
        "enrich",
        "ipinfo",
        "IPv4-Addr",
        "8.8.8.8",
        "--tlp",
        "TLP:GREEN",
    ];
    let out = run(&args, env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle: Value = serde_json::from_slice(&out.stdout).expect("a JSON bundle on stdout");
    let mut ids: Vec<String> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    (bundle, ids)
}

#[tokio::test]
async fn enrich_prints_the_bundle_the_daemon_would_send() {
    let server = ipinfo(200).await;
    let base = server.uri();
    let env = [
        ("IPINFO_TOKEN", "t"),
        ("IPINFO_API_BASE_URL", base.as_str()),
    ];
    let (bundle, ids) = enrich_8888(&env);
    assert_eq!(bundle["type"], "bundle");
    // The daemon's mapping of the same answer for the same entity, split as it sends it.
    let mut entity =
        serde_json::json!({"id": IP_ID, "type": "ipv4-addr", "spec_version": "2.1", "value": IP});
    entity["object_marking_refs"] = serde_json::json!([GREEN]);
    let mut request = request_for(entity);
    request
        .stix_objects
        .push(opencti_connectors::stix::Tlp::Green.export_object("t"));
    let mapped = opencti_connectors::connectors::ipinfo::map_response(
        &request,
        &fixture_json("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
        true,
        "t",
    );
    let daemon = opencti_connectors::opencti::split::split(mapped.objects, false);
    let mut expected: Vec<String> = daemon
        .iter()
        .map(|s| s.object["id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "the same objects and ids as the daemon");
    assert!(ids.iter().any(|i| i == IP_ID) && ids.iter().any(|i| i == GREEN));
}

#[tokio::test]
async fn ipinfo_core_plan_is_asked_at_lookup_and_gives_the_legacy_ids() {
    let server = MockServer::start().await;
    Mock::given(path("/lookup/8.8.8.8"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            constructed("ipinfo", "core_8.8.8.8.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let legacy = ipinfo(200).await;
    let (core_base, legacy_base) = (server.uri(), legacy.uri());
    let (_, core) = enrich_8888(&[
        ("IPINFO_TOKEN", "t"),
        ("IPINFO_API", "lookup"),
        ("IPINFO_API_BASE_URL", core_base.as_str()),
    ]);
    let (_, legacy) = enrich_8888(&[
        ("IPINFO_TOKEN", "t"),
        ("IPINFO_API_BASE_URL", legacy_base.as_str()),
    ]);
    assert_eq!(core, legacy);
    assert!(core.iter().any(|id| id.starts_with("location--")));
    let lite = run(
        &["enrich", "ipinfo", "IPv4-Addr", "8.8.8.8"],
        &[("IPINFO_TOKEN", "t"), ("IPINFO_API", "premium")],
    );
    assert_eq!(
        lite.status.code(),
        Some(2),
        "an unknown plan is a configuration error"
    );
    let stderr = String::from_utf8_lossy(&lite.stderr);
    assert!(
        stderr.contains("ipinfo.api") && stderr.contains("lookup"),
        "{stderr}"
    );
}

#[tokio::test]
async fn enrich_exit_codes_tell_configuration_from_upstream_failures() {
    let server = ipinfo(503).await;
    let base = server.uri();
    let env = [
        ("IPINFO_TOKEN", "t"),
        ("IPINFO_API_BASE_URL", base.as_str()),
    ];
    let failed = run(&["enrich", "ipinfo", "IPv4-Addr", "8.8.8.8"], &env);
    assert_eq!(failed.status.code(), Some(1), "an upstream failure");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("503"));
    assert!(failed.stdout.is_empty());
    let red = run(
        &[
            "enrich",
            "ipinfo",
            "IPv4-Addr",
            "8.8.8.8",
            "--tlp",
            "TLP:RED",
        ],
        &env,
    );
    assert_eq!(red.status.code(), Some(2), "above the connector's max TLP");
    assert!(String::from_utf8_lossy(&red.stderr).contains("MAX TLP"));
    let no_token = run(&["enrich", "ipinfo", "IPv4-Addr", "8.8.8.8"], &[]);
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("ipinfo.token"));
    let bad_type = run(&["enrich", "ipinfo", "Planet", "Mars"], &env);
    assert_eq!(bad_type.status.code(), Some(2));
    let not_enricher = run(&["enrich", "ipsum", "IPv4-Addr", "8.8.8.8"], &env);
    assert_eq!(not_enricher.status.code(), Some(2));
}

#[tokio::test]
async fn import_writes_one_run_s_bundle_from_a_feed_file() {
    let feed = shared("fixtures/ipsum/levels/8.txt");
    let dir = crate::common::scratch_dir("occ-out");
    let output = dir.join("bundle.json");
    let out = run(
        &[
            "import",
            "ipsum",
            "--feed",
            &feed,
            "--output",
            output.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Piped: no progress bar and no terminal colours, only the log lines.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("objects built") && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let objects = bundle["objects"].as_array().unwrap();
    let ips = opencti_connectors::connectors::ipsum::parse(&fixture("ipsum", "levels/8.txt"))
        .ips
        .len();
    assert_eq!(
        objects.len(),
        ips * 3 + 2,
        "observable, indicator, based-on per IP; author; marking"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["id"] == "identity--4178f14f-6c2a-52d0-8e67-f111c9ad7560")
    );
    let missing = run(&["import", "ipsum", "--feed", "/nonexistent/feed.txt"], &[]);
    assert_ne!(missing.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}
