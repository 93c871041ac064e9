//! The registry: loading, validation and building of the whole configuration, every key.
use std::collections::HashMap;

use super::*;
use crate::config::{IsoDuration, Kind, Mode};

mod keys;
mod ranges;
mod sections;

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

/// Every connector of the registry enabled, with the values each requires, plus `extra`
/// (later pairs win).
fn every_connector_env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut e: HashMap<String, String> =
        crate::fixtures::every_connector_env().into_iter().collect();
    e.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    e
}
