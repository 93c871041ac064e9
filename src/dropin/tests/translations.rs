//! pycti's settings translated: logging, the metrics listener, the connector type, default ids, placeholders, stricter defaults, the healthcheck's port.

use super::*;

#[test]
fn pycti_s_logging_defaults_and_names_apply() {
    let without: Vec<_> = ipinfo_env()
        .into_iter()
        .filter(|(k, _)| *k != "CONNECTOR_LOG_LEVEL")
        .collect();
    let d = load("ipinfo", &without);
    assert_eq!(d.config.log.level, "error", "pycti's default level");
    assert_eq!(d.config.log.format, crate::config::LogFormat::Json);
    let mut pairs = without.clone();
    pairs.extend([
        ("CONNECTOR_LOG_LEVEL", "WARNING"),
        ("OPENCTI_JSON_LOGGING", "false"),
    ]);
    let d = load("ipinfo", &pairs);
    assert_eq!(d.config.log.level, "warn");
    assert_eq!(d.config.ipinfo.connector.log_level.as_deref(), Some("warn"));
    assert_eq!(d.config.log.format, crate::config::LogFormat::Text);
    pairs.extend([("LOG_LEVEL", "debug"), ("LOG_FORMAT", "json")]);
    let d = load("ipinfo", &pairs);
    assert_eq!(d.config.log.level, "debug", "the daemon's name wins");
    assert_eq!(d.config.log.format, crate::config::LogFormat::Json);
    let mut bad = without;
    bad.push(("OPENCTI_JSON_LOGGING", "maybe"));
    let err = error("ipinfo", None, &bad);
    assert!(err.contains("(env OPENCTI_JSON_LOGGING): `maybe`"), "{err}");
}

#[test]
fn the_metrics_settings_give_the_listen_address() {
    let listen = |extra: &[(&str, &str)]| {
        let mut pairs = ipinfo_env();
        pairs.extend_from_slice(extra);
        load("ipinfo", &pairs).config.daemon.listen
    };
    // pycti serves nothing unless asked: the loopback only, for the image's health check.
    assert_eq!(listen(&[]), "127.0.0.1:9095");
    assert_eq!(
        listen(&[
            ("CONNECTOR_EXPOSE_METRICS", "true"),
            ("CONNECTOR_METRICS_PORT", "9100")
        ]),
        "0.0.0.0:9100"
    );
    assert_eq!(
        listen(&[("CONNECTOR_METRICS_PORT", "9101")]),
        "127.0.0.1:9101"
    );
    assert_eq!(
        listen(&[
            ("CONNECTOR_METRICS_PORT", "9100"),
            ("DAEMON_LISTEN", "0.0.0.0:8000")
        ]),
        "0.0.0.0:8000"
    );
    let mut pairs = ipinfo_env();
    pairs.push(("CONNECTOR_METRICS_PORT", "70000"));
    let err = error("ipinfo", None, &pairs);
    assert!(
        err.contains("(env CONNECTOR_METRICS_PORT): `70000` is not a port"),
        "{err}"
    );
}

#[test]
fn connector_type_must_be_the_connector_s() {
    let mut pairs = ipinfo_env();
    pairs.push(("CONNECTOR_TYPE", "internal_enrichment"));
    load("ipinfo", &pairs);
    pairs.pop();
    pairs.push(("CONNECTOR_TYPE", "EXTERNAL_IMPORT"));
    let err = error("ipinfo", None, &pairs);
    assert!(
        err.contains("CONNECTOR_TYPE: `EXTERNAL_IMPORT` is not the type of ipinfo; expected INTERNAL_ENRICHMENT"),
        "{err}"
    );
}

#[test]
fn ipsum_registers_with_the_official_default_id_when_none_is_set() {
    let d = load(
        "ipsum",
        &[
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "t"),
        ],
    );
    let s = built(&d);
    assert_eq!(s.id.to_string(), "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37");
    assert_eq!(s.name, "IPsum");
    assert!(
        d.notes
            .contains(&Note::DefaultId("9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"))
    );
    let d = load(
        "ipsum",
        &[
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "t"),
            ("CONNECTOR_ID", ID),
            ("CONNECTOR_DURATION_PERIOD", "PT1H"),
            ("CONNECTOR_QUEUE_THRESHOLD", "250.5"),
            ("CONNECTOR_IPSUM_TLP_LEVEL", "green"),
        ],
    );
    let s = built(&d);
    assert_eq!(s.id.to_string(), ID);
    assert_eq!(
        s.mode,
        crate::config::Mode::Import {
            period: std::time::Duration::from_secs(3600),
            queue_threshold: 250.5
        }
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn a_missing_id_is_named_by_the_official_variable_too() {
    let pairs: Vec<_> = ipinfo_env()
        .into_iter()
        .filter(|(k, _)| *k != "CONNECTOR_ID")
        .collect();
    let err = error("ipinfo", None, &pairs);
    assert!(
        err.contains(
            "ipinfo.connector.id (env IPINFO_CONNECTOR_ID or CONNECTOR_ID): required by --as ipinfo"
        ),
        "{err}"
    );
}

#[test]
fn every_placeholder_is_named_at_once_and_no_secret_is_shown() {
    let err = error(
        "riskiq",
        None,
        &[
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "opencti-secret"),
            ("CONNECTOR_ID", "ChangeMe"),
            ("RISKIQ_USERNAME", "ChangeMe"),
            ("RISKIQ_API_KEY", "riskiq-secret"),
            ("RISKIQ_MAX_TLP", "ChangeMe"),
            ("RISKIQ_IMPORT_LAST_SEEN_TIME_WINDOW", "not-a-duration"),
        ],
    );
    for needle in [
        "riskiq.connector.id (env CONNECTOR_ID): `ChangeMe` is the official file's placeholder",
        "riskiq.username (env RISKIQ_USERNAME): `ChangeMe`",
        "riskiq.max_tlp (env RISKIQ_MAX_TLP): `ChangeMe`",
    ] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
    assert_eq!(err.matches("riskiq.connector.id").count(), 1, "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn riskiq_s_stricter_default_is_noted() {
    let pairs = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "t"),
        ("CONNECTOR_ID", ID),
        ("RISKIQ_USERNAME", "analyst@example.com"),
        ("RISKIQ_API_KEY", "k"),
    ];
    let d = load("riskiq", &pairs);
    assert!(
        d.notes
            .iter()
            .any(|n| matches!(n, Note::Stricter(l) if l.contains("riskiq.max_tlp: TLP:AMBER"))),
        "{:?}",
        d.notes
    );
}

#[test]
fn the_healthcheck_finds_the_port_a_drop_in_listens_on() {
    let url = |pairs: &[(&str, &str)]| crate::health::default_url(&env(pairs));
    assert_eq!(url(&[]), "http://127.0.0.1:9095/healthz");
    assert_eq!(
        url(&[("CONNECTOR_METRICS_PORT", "9100")]),
        "http://127.0.0.1:9100/healthz"
    );
    assert_eq!(
        url(&[
            ("CONNECTOR_METRICS_PORT", "9100"),
            ("DAEMON_LISTEN", "0.0.0.0:9200")
        ]),
        "http://127.0.0.1:9200/healthz"
    );
}

/// The sections a drop-in can host: those that stand in for an official image.
fn official_sections() -> Vec<&'static str> {
    registry::specs()
        .into_iter()
        .filter(|s| s.official.is_some())
        .map(|s| s.section)
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any text for any name a drop-in reads (the official ones and the translations
    /// included) loads or is refused, never panics, and a refused secret is never shown.
    #[test]
    fn any_value_of_any_name_loads_or_is_refused_without_showing_a_secret(
        section in proptest::sample::select(official_sections()),
        pick in proptest::prelude::any::<proptest::sample::Index>(),
        value in "\\PC{0,24}",
    ) {
        let (spec, _) = super::section(section).unwrap();
        let mut names: Vec<(String, bool)> = table(spec)
            .into_iter()
            .flat_map(|k| {
                let secret = k.kind == crate::config::Kind::Secret;
                k.env.into_iter().map(move |n| (n, secret))
            })
            .collect();
        for extra in [JSON_LOGGING, EXPOSE_METRICS, METRICS_PORT, CONNECTOR_TYPE] {
            names.push((extra.to_string(), false));
        }
        let (name, secret) = pick.get(&names).clone();
        let mut pairs = env(&[
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "t"),
            ("CONNECTOR_ID", ID),
        ]);
        // What every connector requires: the one hosted needs its own, the others' are noted.
        pairs.extend(registry::specs().into_iter().flat_map(|s| s.required_env()));
        // The picked name alone sets its key: another of its names would be read first.
        if let Some(key) = table(spec).into_iter().find(|k| k.env.contains(&name)) {
            for other in &key.env {
                pairs.remove(other);
            }
        }
        pairs.insert(name.clone(), value.clone());
        match from_sources(section, None, &pairs) {
            Ok(d) => {
                let _ = registry::build_all(&d.config);
            }
            Err(e) => {
                let shown = e.to_string();
                let hidden = value.trim();
                if secret && hidden.len() > 3 && !migrate::placeholder(hidden) {
                    proptest::prop_assert!(!shown.contains(hidden), "{name}: {shown}");
                }
            }
        }
    }
}
