//! The drop-in: the official names, their precedence, the translations, one connector only.
use super::*;

const ID: &str = "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60";
const OTHER_ID: &str = "7c5a1d2e-0b3f-4e6a-8d9c-1f2e3a4b5c6d";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The official IPinfo compose file's environment, placeholders filled in.
fn ipinfo_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "opencti-secret"),
        ("CONNECTOR_ID", ID),
        ("CONNECTOR_NAME", "IpInfo"),
        ("CONNECTOR_SCOPE", "IPv4-Addr"),
        ("CONNECTOR_AUTO", "false"),
        ("CONNECTOR_CONFIDENCE_LEVEL", "75"),
        ("CONNECTOR_LOG_LEVEL", "error"),
        ("IPINFO_TOKEN", "ipinfo-secret"),
        ("IPINFO_MAX_TLP", "TLP:GREEN"),
        ("IPINFO_USE_ASN_NAME", "false"),
    ]
}

fn load(section: &str, pairs: &[(&str, &str)]) -> DropIn {
    from_sources(section, None, &env(pairs)).unwrap()
}

fn error(section: &str, yaml: Option<&str>, pairs: &[(&str, &str)]) -> String {
    from_sources(section, yaml, &env(pairs))
        .unwrap_err()
        .to_string()
}

fn built(d: &DropIn) -> crate::config::ConnectorSettings {
    let mut built = registry::build_all(&d.config).unwrap();
    assert_eq!(built.len(), 1, "one connector only");
    built.remove(0).0
}

#[test]
fn the_official_names_configure_the_one_connector() {
    let d = load("ipinfo", &ipinfo_env());
    assert_eq!(d.official.image, "ipinfo");
    assert_eq!(d.config.enabled_sections(), ["ipinfo"]);
    let s = built(&d);
    assert_eq!(s.id.to_string(), ID);
    assert_eq!(s.name, "IpInfo");
    assert_eq!(s.scope, ["IPv4-Addr"]);
    assert!(matches!(
        s.mode,
        crate::config::Mode::Enrichment { auto: false, .. }
    ));
    let c = &d.config.ipinfo;
    assert_eq!(c.connector.confidence_level, Some(75));
    assert_eq!(c.max_tlp.0, crate::stix::Tlp::Green);
    assert!(!c.use_asn_name);
    assert_eq!(
        d.config.opencti.url.as_ref().unwrap().as_str(),
        "http://opencti:8080"
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn the_bare_connector_names_are_not_read_without_as() {
    let mut pairs = ipinfo_env();
    pairs.push(("IPINFO_ENABLED", "true"));
    let err = Config::from_sources(None, &env(&pairs))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.connector.id (env IPINFO_CONNECTOR_ID): required"),
        "{err}"
    );
}

#[test]
fn the_daemon_s_own_names_win_and_set_what_the_official_image_lacks() {
    let mut pairs = ipinfo_env();
    pairs.extend([
        ("IPINFO_CONNECTOR_ID", OTHER_ID),
        ("IPINFO_CACHE_TTL", "PT5M"),
        ("IPINFO_CONNECTOR_CONCURRENCY", "3"),
    ]);
    let d = load("ipinfo", &pairs);
    let s = built(&d);
    assert_eq!(s.id.to_string(), OTHER_ID);
    assert!(matches!(
        s.mode,
        crate::config::Mode::Enrichment { concurrency: 3, .. }
    ));
    assert_eq!(d.config.ipinfo.cache.ttl.0.as_secs(), 300);
}

#[test]
fn only_the_hosted_connector_runs_and_the_others_settings_are_named() {
    let mut pairs = ipinfo_env();
    pairs.extend([
        ("IPINFO_ENABLED", "false"),
        ("RISKIQ_ENABLED", "true"),
        ("IPSUM_CONNECTOR_ID", OTHER_ID),
    ]);
    let d = load("ipinfo", &pairs);
    assert_eq!(d.config.enabled_sections(), ["ipinfo"]);
    assert!(
        d.notes.contains(&Note::OtherConnectors(vec![
            "IPSUM_CONNECTOR_ID".into(),
            "RISKIQ_ENABLED".into()
        ])),
        "{:?}",
        d.notes
    );
}

#[test]
fn official_settings_the_daemon_lacks_are_named_never_their_values() {
    let mut pairs = ipinfo_env();
    pairs.extend([
        ("CONNECTOR_RUN_AND_TERMINATE", "true"),
        ("OPENCTI_CUSTOM_HEADERS", "x-secret-header:hunter2"),
        // Set by the integration manager, and the mode itself: not worth a word.
        ("OPENCTI_CONFIG_HASH", "abc"),
        (AS_ENV, "ipinfo"),
        // Not an official name: the environment holds much else.
        ("HOSTNAME", "box"),
    ]);
    let d = load("ipinfo", &pairs);
    assert_eq!(
        d.notes,
        [Note::NotRead(vec![
            "CONNECTOR_RUN_AND_TERMINATE".into(),
            "OPENCTI_CUSTOM_HEADERS".into()
        ])]
    );
    assert!(!d.notes[0].to_string().contains("hunter2"));
}

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
fn the_environment_wins_over_the_file_in_either_format() {
    // The official image's config.yml (pycti's paths), LastInfoSec's proxies in `opencti:`.
    let official = format!(
        "opencti:\n  url: http://from-file:8080\n  token: file-token\n  proxy_https: http://proxy.internal:3128\nconnector:\n  id: {OTHER_ID}\n  name: From the file\n  scope: [StixFile, Url]\n  auto: true\n  confidence_level: 50\nlastinfosec:\n  api_key_cti: file-key\n"
    );
    let d = from_sources(
        "lastinfosec",
        Some(&official),
        &env(&[
            ("CONNECTOR_ID", ID),
            ("OPENCTI_URL", "http://from-env:8080"),
        ]),
    )
    .unwrap();
    let s = built(&d);
    assert_eq!(s.id.to_string(), ID, "the environment wins");
    assert_eq!(s.name, "From the file");
    assert_eq!(s.scope, ["StixFile", "Url"]);
    assert_eq!(
        d.config.opencti.url.as_ref().unwrap().as_str(),
        "http://from-env:8080"
    );
    assert_eq!(
        d.config.lastinfosec.proxy_https.as_ref().unwrap().as_str(),
        "http://proxy.internal:3128"
    );
    assert_eq!(
        d.config.lastinfosec.api_key_cti.as_ref().unwrap().expose(),
        "file-key"
    );
    // The daemon's own format, nested keys included; `enabled` does not matter.
    let own = format!(
        "opencti:\n  url: http://opencti:8080\n  token: t\ndaemon:\n  ping_interval: PT5S\nipsum:\n  enabled: false\n  connector:\n    id: {ID}\n  max_ips: 10\n  cache_typo: 1\n"
    );
    let d = from_sources("ipsum", Some(&own), &HashMap::new()).unwrap();
    assert_eq!(built(&d).id.to_string(), ID);
    assert_eq!(d.config.ipsum.max_ips, 10);
    assert_eq!(d.config.daemon.ping_interval.0.as_secs(), 5);
    assert_eq!(
        d.notes,
        [Note::NotRead(vec!["IPSUM_CACHE_TYPO".into()])],
        "a name of the file that nothing reads is named"
    );
}

#[test]
fn an_unknown_connector_lists_the_allowed_ones() {
    let err = error("virustotal", None, &[]);
    assert!(
        err.contains("`virustotal` is not a connector; expected one of: ipinfo, ipsum, riskiq, lastinfosec, ivre"),
        "{err}"
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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any text for any name a drop-in reads (the official ones and the translations
    /// included) loads or is refused, never panics, and a refused secret is never shown.
    #[test]
    fn any_value_of_any_name_loads_or_is_refused_without_showing_a_secret(
        section in proptest::sample::select(vec!["ipinfo", "ipsum", "riskiq", "lastinfosec", "ivre"]),
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
            ("IPINFO_TOKEN", "k"),
            ("RISKIQ_USERNAME", "u"),
            ("RISKIQ_API_KEY", "k"),
            ("CONFIG_LIS_APIKEY_CTI", "k"),
            ("IVRE_DB_URL", "https://ivre.example/cgi"),
        ]);
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
