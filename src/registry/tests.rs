//! The registry: loading, validation and building of the whole configuration, every key.
use std::collections::HashMap;

use super::*;
use crate::config::{Kind, Mode};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const ID: &str = "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60";

fn ipinfo_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "secret-token"),
        ("IPINFO_ENABLED", "true"),
        ("IPINFO_CONNECTOR_ID", ID),
        ("IPINFO_TOKEN", "ipinfo-token"),
    ]
}

#[test]
fn environment_alone_configures_the_daemon() {
    let c = Config::from_sources(None, &env(&ipinfo_env())).unwrap();
    assert!(c.ipinfo.enabled);
    assert_eq!(c.opencti.url.as_deref(), Some("http://opencti:8080"));
    assert_eq!(c.ipinfo.token.as_ref().unwrap().expose(), "ipinfo-token");
    assert_eq!(c.ipinfo.max_tlp.0, crate::stix::Tlp::Amber);
    let (settings, _) = build_all(&c).unwrap().remove(0);
    assert_eq!(settings.id.to_string(), ID);
    assert_eq!(settings.name, "IPInfo");
    assert_eq!(settings.scope, vec!["IPv4-Addr", "IPv6-Addr"]);
    assert_eq!(
        settings.mode,
        Mode::Enrichment {
            auto: true,
            auto_update: false,
            playbook_compatible: true,
            concurrency: 32
        }
    );
}

#[test]
fn environment_overrides_yaml() {
    let yaml = format!(
        "opencti:\n  url: http://yaml:8080\n  token: yaml-token\nipinfo:\n  enabled: yes\n  token: t\n  use_asn_name: 'no'\n  connector:\n    id: {ID}\n    auto: false\n"
    );
    let c = Config::from_sources(
        Some(&yaml),
        &env(&[
            ("OPENCTI_URL", "http://env:8080"),
            ("IPINFO_CONNECTOR_AUTO", "TRUE"),
        ]),
    )
    .unwrap();
    assert_eq!(c.opencti.url.as_deref(), Some("http://env:8080"));
    assert!(c.ipinfo.enabled);
    assert!(!c.ipinfo.use_asn_name);
    assert_eq!(c.ipinfo.connector.auto, Some(true));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = Config::from_sources(Some("ipinfo:\n  tokn: x\n"), &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokn"), "{err}");
    let err = Config::from_sources(Some("ipinfo:\n  connector:\n    idd: x\n"), &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("idd") && err.contains("ipinfo.connector"),
        "{err}"
    );
    let err = Config::from_sources(Some("nonsense: 1\n"), &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn invalid_values_say_what_is_allowed() {
    let mut e = ipinfo_env();
    e.push(("IPINFO_MAX_TLP", "AMBER"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.max_tlp") && err.contains("TLP:AMBER+STRICT"),
        "{err}"
    );

    let mut e = ipinfo_env();
    e.retain(|(k, _)| *k != "IPINFO_CONNECTOR_ID");
    e.push(("IPINFO_CONNECTOR_ID", "ipinfo--43cf861c"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.connector.id") && err.contains("UUID"),
        "{err}"
    );

    let mut e = ipinfo_env();
    e.push(("IPINFO_REQUEST_TIMEOUT", "soon"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.request_timeout") && err.contains("ISO-8601"),
        "{err}"
    );

    let mut e = env(&ipinfo_env());
    e.insert("IPINFO_ENABLED".into(), "maybe".into());
    let err = Config::from_sources(None, &e).unwrap_err().to_string();
    assert!(
        err.contains("IPINFO_ENABLED") && err.contains("boolean"),
        "{err}"
    );

    let mut e = ipinfo_env();
    e.retain(|(k, _)| *k != "OPENCTI_URL");
    e.push(("OPENCTI_URL", "opencti:8080"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("opencti.url") && err.contains("http(s) URL"),
        "{err}"
    );
}

#[test]
fn enabled_connector_requires_its_secrets_and_id() {
    let err = Config::from_sources(None, &env(&[("IPINFO_ENABLED", "true")]))
        .unwrap_err()
        .to_string();
    for needle in [
        "opencti.url",
        "opencti.token",
        "ipinfo.token",
        "ipinfo.connector.id",
    ] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}

#[test]
fn secrets_never_reach_debug_output() {
    let c = Config::from_sources(None, &env(&ipinfo_env())).unwrap();
    let dump = format!("{c:?}");
    assert!(
        !dump.contains("secret-token") && !dump.contains("ipinfo-token"),
        "{dump}"
    );
}

#[test]
fn every_key_in_the_table_is_read_by_the_loader() {
    // Setting each key through each of its environment names must be accepted: the overlay
    // writes the value at the key's path, so an unknown-field error here would mean the table
    // names a key the config structs do not have.
    for key in all_keys() {
        let sample = match key.kind {
            Kind::Bool => "true",
            Kind::Int => "3",
            Kind::Float => "2.5",
            // The consumer timeout must leave room for twice the default retry budget.
            Kind::Duration if key.path == "mq.consumer_timeout" => "PT1H",
            Kind::Duration => "PT5M",
            Kind::Tlp => "TLP:GREEN",
            Kind::Uuid => ID,
            Kind::Url => "http://example.test:1234",
            Kind::Scope => "IPv4-Addr",
            Kind::Str | Kind::Secret => match key.path.as_str() {
                "log.format" => "json",
                "log.level" => "debug",
                "daemon.listen" => "127.0.0.1:0",
                p if p.ends_with("queue_protocol") => "amqp",
                p if p.ends_with("log_level") => "debug",
                "ipsum.tlp_level" => "amber",
                "lastinfosec.endpoint" => "hash_host",
                "ivre.scans_route" => "view",
                "ipinfo.api" => "lookup",
                p if p.starts_with("ivre.db_url") => "http://ivre.test/cgi",
                _ => "value",
            },
        };
        for name in &key.env {
            let mut pairs = ipinfo_env();
            pairs.push(("IPSUM_CONNECTOR_ID", "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"));
            pairs.push((
                "RISKIQ_CONNECTOR_ID",
                "5d1f6a0e-8c3b-4f2a-9e7d-2b4c6d8e0f12",
            ));
            pairs.push(("RISKIQ_USERNAME", "u"));
            pairs.push(("RISKIQ_API_KEY", "k"));
            pairs.push((
                "LASTINFOSEC_CONNECTOR_ID",
                "7c4e2a10-3b5d-4e6f-8a9b-0c1d2e3f4a5b",
            ));
            pairs.push(("CONFIG_LIS_APIKEY_CTI", "k"));
            pairs.push(("IVRE_CONNECTOR_ID", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"));
            pairs.push(("IVRE_DB_URL", "http://ivre/cgi"));
            pairs.push((name.as_str(), sample));
            let result = Config::from_sources(None, &env(&pairs));
            assert!(
                result.is_ok(),
                "{} via {name}: {:?}",
                key.path,
                result.err()
            );
        }
    }
}

#[test]
fn sample_config_parses_and_lists_every_key() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yml.sample")).unwrap();
    for key in all_keys() {
        assert!(
            loader::has_path(&text, &key.path).unwrap(),
            "config.yml.sample lacks {}",
            key.path
        );
    }
    // The sample's placeholders are valid once the required values are filled in.
    Config::from_sources(Some(&text), &env(&ipinfo_env())).unwrap();
}

#[test]
fn a_connector_log_level_applies_inside_its_spans_only() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let mut pairs = ipinfo_env();
    pairs.push(("LOG_LEVEL", "warn"));
    pairs.push(("IPINFO_CONNECTOR_LOG_LEVEL", "debug"));
    let config = Config::from_sources(None, &env(&pairs)).unwrap();
    assert_eq!(
        config.log_filter(),
        "warn,reqwest=info,hyper=info,hyper_util=info,h2=info,rustls=info,lapin=info,amq_protocol=info,lapin::channel=off,[{connector=ipinfo}]=debug"
    );
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(config.log_filter()).unwrap())
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("enrichment", connector = "ipinfo")
            .in_scope(|| tracing::debug!("inside-ipinfo"));
        tracing::info_span!("enrichment", connector = "riskiq")
            .in_scope(|| tracing::debug!("inside-riskiq"));
        tracing::debug!("outside");
        tracing::warn!("warned");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("inside-ipinfo"), "{out}");
    assert!(
        !out.contains("inside-riskiq") && !out.contains("outside"),
        "{out}"
    );
    assert!(out.contains("warned"));
}

#[test]
fn every_section_field_is_named_as_its_spec() {
    // The YAML section, the env prefix and the error prefix all come from the spec's name;
    // the Config field must be spelt the same for the file's section to reach it.
    for spec in specs() {
        let yaml = format!("{}:\n  enabled: false\n", spec.section);
        assert!(
            Config::from_sources(Some(&yaml), &HashMap::new()).is_ok(),
            "no Config field named {}",
            spec.section
        );
    }
    let names: Vec<&str> = specs().iter().map(|s| s.section).collect();
    assert_eq!(names, ["ipinfo", "ipsum", "riskiq", "lastinfosec", "ivre"]);
}

#[test]
fn section_errors_name_the_key_and_every_env_name() {
    let mut e = ipinfo_env();
    e.push(("LASTINFOSEC_ENABLED", "true"));
    e.push((
        "LASTINFOSEC_CONNECTOR_ID",
        "7c4e2a10-3b5d-4e6f-8a9b-0c1d2e3f4a5b",
    ));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lastinfosec.api_key_cti (env LASTINFOSEC_API_KEY_CTI or CONFIG_LIS_APIKEY_CTI): required when lastinfosec.enabled is true"),
        "{err}"
    );
}

#[test]
fn absurd_periods_and_ping_intervals_are_rejected_at_start_up() {
    let mut e = ipinfo_env();
    e.push(("IPSUM_ENABLED", "true"));
    e.push(("IPSUM_CONNECTOR_ID", "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"));
    e.push(("IPSUM_CONNECTOR_DURATION_PERIOD", "P5Y"));
    e.push(("DAEMON_PING_INTERVAL", "PT0.1S"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ipsum.connector.duration_period"), "{err}");
    assert!(err.contains("longer than a year"), "{err}");
    assert!(err.contains("daemon.ping_interval"), "{err}");
    let mut e = ipinfo_env();
    e.push(("IPINFO_REQUEST_TIMEOUT", "P999999999999Y"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.request_timeout") && err.contains("too long"),
        "{err}"
    );
}

#[test]
fn rate_limits_are_requests_a_second_and_never_negative() {
    let mut e = ipinfo_env();
    e.push(("IPINFO_RATE_LIMIT", "0.5"));
    let c = Config::from_sources(None, &env(&e)).unwrap();
    assert_eq!(c.ipinfo.rate_limit, 0.5);
    assert_eq!(c.riskiq.rate_limit, 0.0, "no limit unless configured");

    let mut e = ipinfo_env();
    e.push(("IPINFO_RATE_LIMIT", "-2"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.rate_limit") && err.contains("requests a second"),
        "{err}"
    );
}
