//! The registry: loading, validation and building of the whole configuration, every key.
use std::collections::HashMap;

use super::*;
use crate::config::{IsoDuration, Kind, Mode};

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
        // A number: the upper end of its range (`numbers_outside_their_range_…` tries both).
        let upper = match key.kind {
            Kind::Int(r) => r.max.to_string(),
            Kind::Float(r) => r.max.to_string(),
            Kind::Duration(r) => IsoDuration(r.max).to_string(),
            _ => String::new(),
        };
        let sample = match key.kind {
            Kind::Bool => "true",
            // The retry budget must fit twice under the default consumer timeout.
            Kind::Duration(_) if key.path == "daemon.max_retry_duration" => "PT12M",
            Kind::Int(_) | Kind::Float(_) | Kind::Duration(_) => upper.as_str(),
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
    assert!(
        err.contains("ipsum.connector.duration_period (env IPSUM_CONNECTOR_DURATION_PERIOD): `P5Y` is out of range; allowed: PT1S to P365D"),
        "{err}"
    );
    assert!(
        err.contains("daemon.ping_interval (env DAEMON_PING_INTERVAL): `PT0.1S` is out of range; allowed: PT1S to PT5M"),
        "{err}"
    );
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
        err.contains("ipinfo.rate_limit (env IPINFO_RATE_LIMIT): `-2` is out of range; allowed: 0, or 0.001 to 10000"),
        "{err}"
    );
}

/// Every connector enabled, with the values each requires.
fn every_connector_env() -> Vec<(&'static str, &'static str)> {
    let mut e = ipinfo_env();
    e.extend([
        ("IPSUM_ENABLED", "true"),
        ("IPSUM_CONNECTOR_ID", "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"),
        ("RISKIQ_ENABLED", "true"),
        (
            "RISKIQ_CONNECTOR_ID",
            "5d1f6a0e-8c3b-4f2a-9e7d-2b4c6d8e0f12",
        ),
        ("RISKIQ_USERNAME", "u"),
        ("RISKIQ_API_KEY", "k"),
        ("LASTINFOSEC_ENABLED", "true"),
        (
            "LASTINFOSEC_CONNECTOR_ID",
            "7c4e2a10-3b5d-4e6f-8a9b-0c1d2e3f4a5b",
        ),
        ("CONFIG_LIS_APIKEY_CTI", "k"),
        ("IVRE_ENABLED", "true"),
        ("IVRE_CONNECTOR_ID", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
        ("IVRE_DB_URL", "http://ivre/cgi"),
    ]);
    e
}

#[test]
fn numbers_outside_their_range_are_refused_naming_the_key_its_variable_and_the_range() {
    let mut numbers = 0;
    for key in all_keys() {
        // The ends of the range and the default are accepted; just past either end is not.
        let (mut inside, outside) = match key.kind {
            Kind::Int(r) => (
                vec![r.min.to_string(), r.max.to_string()],
                vec![(r.min - 1).to_string(), (r.max + 1).to_string()],
            ),
            Kind::Float(r) => {
                let mut inside = vec![r.min.to_string(), r.max.to_string()];
                if r.or_zero {
                    inside.push("0".into());
                }
                (
                    inside,
                    vec![
                        (r.min / 2.0).to_string(),
                        (r.max * 2.0).to_string(),
                        "-1".into(),
                    ],
                )
            }
            Kind::Duration(r) => {
                let mut outside =
                    vec![IsoDuration(r.max + std::time::Duration::from_secs(1)).to_string()];
                if !r.min.is_zero() {
                    outside
                        .push(IsoDuration(r.min - std::time::Duration::from_millis(1)).to_string());
                }
                (
                    vec![
                        IsoDuration(r.min).to_string(),
                        IsoDuration(r.max).to_string(),
                    ],
                    outside,
                )
            }
            _ => continue,
        };
        numbers += 1;
        if !key.default.is_empty() {
            inside.push(key.default.clone());
        }
        let range = key.kind.range().unwrap();
        // The retry budget must fit twice under the consumer timeout: the other of the two
        // takes room for the ends of each.
        let partner = match key.path.as_str() {
            "mq.consumer_timeout" => Some(("DAEMON_MAX_RETRY_DURATION", "PT10S")),
            "daemon.max_retry_duration" => Some(("MQ_CONSUMER_TIMEOUT", "P30D")),
            _ => None,
        };
        for value in &inside {
            let mut e = every_connector_env();
            e.extend(partner);
            e.push((&key.env[0], value));
            let loaded = Config::from_sources(None, &env(&e))
                .and_then(|c| build_all(&c).map(|built| built.len()));
            assert_eq!(
                loaded.ok(),
                Some(5),
                "{} = {value} is within {range}",
                key.path
            );
        }
        for value in &outside {
            let mut e = every_connector_env();
            e.push((&key.env[0], value));
            let err = Config::from_sources(None, &env(&e))
                .unwrap_err()
                .to_string();
            let want = format!(
                "{} (env {}): `{value}` is out of range; allowed: {range}",
                key.path, key.env[0]
            );
            assert!(err.contains(&want), "{want}\nmissing from: {err}");
        }
    }
    assert!(numbers >= 30, "{numbers} numeric keys");
}

#[test]
fn numbers_in_the_file_are_checked_and_empty_keys_take_their_default() {
    for (yaml, want) in [
        (
            "ipinfo:\n  rate_limit: 1e-20\n",
            "ipinfo.rate_limit (env IPINFO_RATE_LIMIT): `1e-20` is out of range; allowed: 0, or 0.001 to 10000",
        ),
        (
            "ipinfo:\n  rate_limit: .nan\n",
            "ipinfo.rate_limit (env IPINFO_RATE_LIMIT): `.nan` is out of range",
        ),
        (
            "ipinfo:\n  cache:\n    ttl: P400D\n",
            "ipinfo.cache.ttl (env IPINFO_CACHE_TTL): `P400D` is out of range; allowed: PT0S to P365D",
        ),
        (
            "ipinfo:\n  cache:\n    capacity: 18446744073709551615\n",
            "ipinfo.cache.capacity (env IPINFO_CACHE_CAPACITY): `18446744073709551615` is out of range",
        ),
        (
            "ipsum:\n  api_key: k\n  default_x_opencti_score: '101'\n",
            "ipsum.default_x_opencti_score (env IPSUM_DEFAULT_X_OPENCTI_SCORE or CONNECTOR_IPSUM_DEFAULT_X_OPENCTI_SCORE): `101` is out of range; allowed: 0 to 100",
        ),
        (
            "daemon:\n  ping_interval: 0\n",
            "daemon.ping_interval (env DAEMON_PING_INTERVAL): `0` is out of range; allowed: PT1S to PT5M",
        ),
    ] {
        let err = Config::from_sources(Some(yaml), &env(&ipinfo_env()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want}\nmissing from: {err}");
    }
    let yaml =
        "log:\n  level:\nipinfo:\n  rate_limit:\n  cache:\n    ttl:\n  request_timeout: 45\n";
    let c = Config::from_sources(Some(yaml), &env(&ipinfo_env())).unwrap();
    assert_eq!(c.log.level, "info");
    assert_eq!(c.ipinfo.rate_limit, 0.0);
    assert_eq!(c.ipinfo.cache.ttl.0.as_secs(), 86400);
    assert_eq!(
        c.ipinfo.request_timeout.0.as_secs(),
        45,
        "a number of seconds"
    );
}

#[test]
fn a_partly_set_cache_keeps_its_connector_s_other_defaults() {
    let mut e = ipinfo_env();
    e.push(("IPINFO_CACHE_CAPACITY", "5000"));
    e.push(("IVRE_CACHE_MAX_BYTES", "1024"));
    let c =
        Config::from_sources(Some("lastinfosec:\n  cache:\n    capacity: 7\n"), &env(&e)).unwrap();
    assert_eq!(c.ipinfo.cache.capacity, 5000);
    assert_eq!(
        c.ipinfo.cache.ttl.0.as_secs(),
        86400,
        "IPinfo's TTL, not the cache's zero"
    );
    assert_eq!(c.ipinfo.cache.max_bytes, crate::cache::DEFAULT_MAX_BYTES);
    assert_eq!(c.ivre.cache.ttl.0.as_secs(), 3600);
    assert_eq!(c.ivre.cache.capacity, 10_000);
    assert_eq!(
        c.lastinfosec.cache.ttl.0.as_secs(),
        0,
        "LastInfoSec caches nothing by default"
    );
    assert_eq!(c.lastinfosec.cache.capacity, 7);
}

#[test]
fn riskiq_sends_nothing_above_tlp_amber_unless_told() {
    use crate::stix::Tlp;
    let riskiq = |yaml: Option<&str>, extra: &[(&'static str, &'static str)]| {
        let mut e = vec![
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "secret-token"),
            ("RISKIQ_ENABLED", "true"),
            (
                "RISKIQ_CONNECTOR_ID",
                "5d1f6a0e-8c3b-4f2a-9e7d-2b4c6d8e0f12",
            ),
            ("RISKIQ_USERNAME", "u"),
            ("RISKIQ_API_KEY", "k"),
        ];
        e.extend_from_slice(extra);
        let config = Config::from_sources(yaml, &env(&e)).unwrap();
        match build_all(&config).unwrap().remove(0).1 {
            crate::connectors::Hosted::Enrichment(c) => c.max_tlp(),
            crate::connectors::Hosted::Import(_) => panic!("riskiq enriches"),
        }
    };
    assert_eq!(riskiq(None, &[]), Some(Tlp::Amber));
    // The sample used to leave it empty for "no restriction": empty is now the default.
    assert_eq!(riskiq(Some("riskiq:\n  max_tlp:\n"), &[]), Some(Tlp::Amber));
    assert_eq!(
        riskiq(None, &[("RISKIQ_MAX_TLP", "TLP:RED")]),
        Some(Tlp::Red)
    );
    assert_eq!(
        riskiq(Some("riskiq:\n  max_tlp: TLP:GREEN\n"), &[]),
        Some(Tlp::Green)
    );
}
