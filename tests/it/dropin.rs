//! `run --as <connector>` through the binary, with the official compose files' environment
//! blocks verbatim (`tests/fixtures/migrate/official`), URLs aside: each refuses its
//! placeholders by name, loads once they are filled in, and IPinfo and IPsum run against the
//! fake OpenCTI, registering as the official containers do.

use std::process::{Command, Output};

use crate::common::daemon::{BIN, Daemon, free_port};
use crate::common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The official images whose compose files are fixtures here (`tests/fixtures/migrate/
/// official`), named explicitly as each needs its file: (image, `--as`).
const OFFICIAL: [(&str, &str); 5] = [
    ("ipinfo", "ipinfo"),
    ("ipsum", "ipsum"),
    ("riskiq-passive-total", "riskiq"),
    ("lastinfosec-enrichment", "lastinfosec"),
    ("ivre", "ivre"),
];

const CONNECTOR_ID: &str = "6e9a1f3c-2b4d-4c8e-9f0a-1b2c3d4e5f60";
/// The id the official IPsum image registers with when `CONNECTOR_ID` is unset.
const IPSUM_DEFAULT_ID: &str = "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37";

/// The `environment:` block of the official compose file `name`, verbatim, in its order.
fn official_environment(name: &str) -> Vec<(String, String)> {
    let path = format!(
        "{}/tests/fixtures/migrate/official/{name}.docker-compose.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let service = compose["services"]
        .as_mapping()
        .unwrap()
        .values()
        .next()
        .unwrap();
    service["environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|item| {
            let (k, v) = item.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The block with its URLs pointed at the test's servers (`OPENCTI_URL`, and the upstream's
/// base URL, which the official files leave to the image), and, with `fill`, each
/// `ChangeMe` replaced by what an operator enters.
fn environment(name: &str, opencti: &str, upstream: &str, fill: bool) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = official_environment(name)
        .into_iter()
        .map(|(k, v)| {
            let v = match (k.as_str(), v.as_str()) {
                ("OPENCTI_URL", _) => opencti.to_string(),
                (_, "ChangeMe") if fill => filled(&k),
                _ => v,
            };
            (k, v)
        })
        .collect();
    let base = match name {
        "ipinfo" => "IPINFO_API_BASE_URL",
        "ipsum" => "CONNECTOR_IPSUM_API_BASE_URL",
        "riskiq-passive-total" => "RISKIQ_API_BASE_URL",
        "lastinfosec-enrichment" => "LASTINFOSEC_API_BASE_URL",
        _ => "IVRE_DB_URL",
    };
    env.push((base.to_string(), upstream.to_string()));
    env
}

/// What an operator puts in place of `ChangeMe` for `name`.
fn filled(name: &str) -> String {
    match name {
        "OPENCTI_TOKEN" => fake_opencti::TOKEN.to_string(),
        "CONNECTOR_ID" => CONNECTOR_ID.to_string(),
        "RISKIQ_MAX_TLP" => "TLP:AMBER".to_string(),
        "RISKIQ_IMPORT_LAST_SEEN_TIME_WINDOW" => "P30D".to_string(),
        other => format!("secret-{}", other.to_ascii_lowercase()),
    }
}

/// `opencti-connectors <args>` with exactly `env` (nothing inherited), in a scratch directory.
fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let dir = crate::common::scratch_dir("occ-dropin");
    let out = Command::new(BIN)
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
    out
}

#[test]
fn each_official_environment_names_its_placeholders_then_loads_once_they_are_filled() {
    for (name, section) in OFFICIAL {
        let args = ["check-config", "--as", section];
        let verbatim = environment(name, "http://opencti:8080", "http://upstream:8080/", false);
        let out = run(&args, &verbatim);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let placeholders: Vec<&str> = verbatim
            .iter()
            .filter(|(_, v)| v == "ChangeMe")
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(!placeholders.is_empty(), "{name}");
        for variable in &placeholders {
            assert!(
                err.contains(&format!(
                    "(env {variable}): `ChangeMe` is the official file's placeholder"
                )),
                "{name}: {variable} in {err}"
            );
        }

        let env = environment(name, "http://opencti:8080", "http://upstream:8080/", true);
        let out = run(&args, &env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let spec = opencti_connectors::registry::specs()
            .into_iter()
            .find(|s| s.section == section)
            .unwrap();
        assert_eq!(
            spec.official.map(|o| o.image),
            Some(name),
            "{section}'s image"
        );
        let value = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let id = value("CONNECTOR_ID").unwrap_or(IPSUM_DEFAULT_ID);
        let connector_name = value("CONNECTOR_NAME").unwrap_or("IPsum");
        let kind = if section == "ipsum" {
            "EXTERNAL_IMPORT"
        } else {
            "INTERNAL_ENRICHMENT"
        };
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0],
            format!("{section}: {connector_name} ({kind}, id {id})"),
            "{name}"
        );
        assert!(
            lines.contains(
                &format!("drop-in for opencti/connector-{name} (--as {section})").as_str()
            ),
            "{stdout}"
        );
        assert_eq!(
            lines.last().copied(),
            Some("configuration OK (1 connector(s) enabled)")
        );
        for (variable, v) in &env {
            if v.starts_with("secret-") {
                assert!(!stdout.contains(v.as_str()), "{variable} printed");
            }
        }
    }
}

#[test]
fn riskiq_s_stricter_default_and_what_the_daemon_does_not_read_are_noted() {
    let mut env = environment(
        "riskiq-passive-total",
        "http://opencti:8080",
        "http://upstream:8080/",
        true,
    );
    env.retain(|(k, _)| k != "RISKIQ_MAX_TLP");
    env.push(("CONNECTOR_RUN_AND_TERMINATE".into(), "true".into()));
    let out = run(&["check-config", "--as", "riskiq"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("note: RISKIQ_MAX_TLP is not set, so the daemon's default riskiq.max_tlp: TLP:AMBER applies"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("note: not read (the daemon has no equivalent): CONNECTOR_RUN_AND_TERMINATE"),
        "{stdout}"
    );
}

#[test]
fn as_applies_to_run_and_check_config_only() {
    let out = run(&["config-table", "--as", "ipinfo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--as applies to run and check-config"));
    // The variable an image for one connector sets leaves the other commands alone.
    let env = [("OPENCTI_CONNECTORS_AS".to_string(), "ipinfo".to_string())];
    assert!(run(&["config-table"], &env).status.success());
    let out = run(&["check-config", "--as", "shodan"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // A connector added later comes after these (scripts/new-connector appends it).
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "`shodan` is not a connector; expected one of: ipinfo, ipsum, riskiq, lastinfosec, ivre"
    ));
}

#[tokio::test]
async fn run_as_ipinfo_registers_and_enriches_with_the_official_environment() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let upstream = MockServer::start().await;
    let body =
        std::fs::read_to_string(shared("fixtures/ipinfo/ipv4_asn_privacy_8.8.8.8.json")).unwrap();
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let port = free_port();
    let mut env = environment("ipinfo", &fake.url, &upstream.uri(), true);
    // The file's `error` would leave nothing to look at: pycti's level name for the process.
    for (k, v) in &mut env {
        if k == "CONNECTOR_LOG_LEVEL" {
            *v = "info".into();
        }
    }
    env.extend([
        // Not the daemon's DAEMON_LISTEN: pycti's metrics port says where it listens.
        ("DAEMON_LISTEN".to_string(), String::new()),
        ("CONNECTOR_METRICS_PORT".to_string(), port.to_string()),
    ]);
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let daemon = Daemon::spawn_with(&["run", "--as", "ipinfo"], &env);
    fake.wait_for("the registration", |s| s.count("registerConnector") == 1)
        .await;
    let input = fake.calls("registerConnector")[0].variables["input"].clone();
    assert_eq!(input["id"], CONNECTOR_ID);
    assert_eq!(input["name"], "IpInfo");
    assert_eq!(input["type"], "INTERNAL_ENRICHMENT");
    assert_eq!(
        input["scope"],
        serde_json::json!(["IPv4-Addr", "IPv6-Addr"])
    );
    assert_eq!(input["auto"], true);

    fake.publish_listen(
        CONNECTOR_ID,
        &manual_message("work_dropin", &ip_stix(GREEN)),
    )
    .await;
    fake.wait_for("the enrichment", |s| {
        s.calls.iter().any(|c| c.closes_work("work_dropin"))
    })
    .await;
    assert_eq!(
        fake.processed("work_dropin")["message"],
        "Sent 9 stix bundle(s) for worker import"
    );

    // The image's health check finds the port by CONNECTOR_METRICS_PORT alone.
    let healthy = Command::new(BIN)
        .arg("healthcheck")
        .env_clear()
        .env("CONNECTOR_METRICS_PORT", port.to_string())
        .status()
        .unwrap();
    assert!(healthy.success(), "/healthz on 127.0.0.1:{port}");

    let output = daemon.terminate().await;
    assert!(
        output.status.success(),
        "exit 0 on SIGTERM: {:?}",
        output.status
    );
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("Connector registered."), "{logs}");
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs, as pycti's by default: {logs}"
    );
    for (variable, value) in &env {
        if value.starts_with("secret-") || value == fake_opencti::TOKEN {
            assert!(
                !logs.contains(value.as_str()),
                "{variable} reached the logs"
            );
        }
    }
}

#[tokio::test]
async fn run_as_ipsum_imports_under_the_official_default_id() {
    let fake = FakeOpencti::start().await;
    let feed = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/levels/8.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ipsum", "levels/8.txt")))
        .mount(&feed)
        .await;
    let env = environment(
        "ipsum",
        &fake.url,
        &format!("{}/levels/8.txt", feed.uri()),
        true,
    );
    assert!(
        !env.iter().any(|(k, _)| k == "CONNECTOR_ID"),
        "the official file leaves the id to the image"
    );
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let daemon = Daemon::spawn_with(&["run", "--as", "ipsum"], &env);
    fake.wait_for("the registration", |s| s.count("registerConnector") == 1)
        .await;
    let input = fake.calls("registerConnector")[0].variables["input"].clone();
    assert_eq!(input["id"], IPSUM_DEFAULT_ID);
    assert_eq!(input["name"], "IPsum");
    assert_eq!(input["type"], "EXTERNAL_IMPORT");
    fake.wait_for("the import", |s| s.count("workEdit.toProcessed") == 1)
        .await;
    let processed = fake.calls("workEdit.toProcessed");
    let message = processed[0].variables["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("IPsum connector successfully run"),
        "{message}"
    );
    assert!(fake.count("stixBundlePush") >= 1, "the bundles were pushed");
    let output = daemon.terminate().await;
    assert!(
        output.status.success(),
        "exit 0 on SIGTERM: {:?}",
        output.status
    );
    // No CONNECTOR_LOG_LEVEL: pycti's `error`, so a run that went well says nothing.
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        !logs.contains("INFO") && !logs.contains("Connector registered."),
        "{logs}"
    );
}

/// `deploy/xtm-composer/opencti-connectors-catalog.json`.
fn shipped_catalog() -> serde_json::Value {
    let path = format!(
        "{}/deploy/xtm-composer/opencti-connectors-catalog.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_shipped_catalog_is_what_the_catalog_command_prints() {
    let out = run(&["catalog"], &[]);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed,
        shipped_catalog(),
        "the catalog command's defaults are the shipped file's (scripts/regenerate writes it)"
    );
    let moved = run(
        &[
            "catalog",
            "--image",
            "registry.example/occ",
            "--version",
            "0.1.0",
        ],
        &[],
    );
    let moved: serde_json::Value = serde_json::from_slice(&moved.stdout).unwrap();
    assert_eq!(
        moved["contracts"][0]["container_image"],
        "registry.example/occ-ipinfo"
    );
    assert_eq!(moved["contracts"][0]["container_version"], "0.1.0");
}

/// A value the integration manager's form would hold for a property: its default (a list
/// as the comma-separated text the platform passes), or, for a required one, what an
/// operator enters.
fn form_value(name: &str, property: &serde_json::Value) -> Option<String> {
    match &property["default"] {
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(","),
        ),
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null if property["format"] == "uri" => {
            Some("http://upstream.example/".into())
        }
        serde_json::Value::Null if property["type"] == "string" => {
            Some(format!("secret-{}", name.to_ascii_lowercase()))
        }
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[test]
fn each_catalog_contract_starts_as_the_integration_manager_starts_it() {
    let catalog = shipped_catalog();
    assert_ne!(catalog["id"], "filigran-catalog-id");
    let contracts = catalog["contracts"].as_array().unwrap();
    let specs = opencti_connectors::registry::specs();
    assert_eq!(contracts.len(), specs.len());
    for (contract, spec) in contracts.iter().zip(specs) {
        let section = spec.section;
        assert_eq!(
            contract["container_image"],
            format!("opencti-connectors-{section}")
        );
        assert_eq!(contract["container_type"], spec.kind.connector_type());
        assert_eq!(contract["manager_supported"], true);
        // The slug must not shadow the official contract's in OpenCTI's lookups.
        assert_eq!(contract["slug"], format!("opencti-connectors-{section}"));
        let schema = &contract["config_schema"];
        let properties = schema["properties"].as_object().unwrap();
        // The platform sets these itself (and drops them from any contract).
        for platform in [
            "OPENCTI_URL",
            "OPENCTI_TOKEN",
            "CONNECTOR_ID",
            "CONNECTOR_NAME",
            "CONNECTOR_TYPE",
        ] {
            assert!(!properties.contains_key(platform), "{section}: {platform}");
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        for name in &required {
            assert!(
                properties.contains_key(*name),
                "{section}: required {name} is offered"
            );
        }
        // What xtm-composer puts in the container: the form's values, the platform's own
        // variables, and the image's OPENCTI_CONNECTORS_AS.
        let instance_id = uuid::Uuid::new_v4().to_string();
        let mut env: Vec<(String, String)> = properties
            .iter()
            .filter_map(|(name, property)| {
                let wanted = required.contains(&name.as_str()) || !property["default"].is_null();
                wanted
                    .then(|| form_value(name, property).map(|v| (name.clone(), v)))
                    .flatten()
            })
            .collect();
        env.extend([
            ("OPENCTI_URL".to_string(), "http://opencti:8080".to_string()),
            ("OPENCTI_TOKEN".to_string(), fake_opencti::TOKEN.to_string()),
            ("CONNECTOR_ID".to_string(), instance_id.clone()),
            ("CONNECTOR_NAME".to_string(), format!("my-{section}")),
            (
                "CONNECTOR_TYPE".to_string(),
                spec.kind.connector_type().to_string(),
            ),
            ("OPENCTI_CONFIG_HASH".to_string(), "c0ffee".to_string()),
            (
                opencti_connectors::dropin::AS_ENV.to_string(),
                section.to_string(),
            ),
        ]);
        let out = run(&["check-config"], &env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{section}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with(&format!(
                "{section}: my-{section} ({}, id {instance_id})",
                spec.kind.connector_type()
            )),
            "{stdout}"
        );
        assert!(
            !stdout.contains("note: not read"),
            "every variable is read: {stdout}"
        );
        // And without a required value, it does not start.
        for name in &required {
            let without: Vec<(String, String)> =
                env.iter().filter(|(k, _)| k != name).cloned().collect();
            assert_eq!(
                run(&["check-config"], &without).status.code(),
                Some(2),
                "{section}: {name}"
            );
        }
    }
}
