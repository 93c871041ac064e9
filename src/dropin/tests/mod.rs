//! The drop-in: the official names, their precedence, the translations, one connector only.
use super::*;

mod translations;

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
    // A connector added later comes after these (scripts/new-connector appends it).
    assert!(
        err.contains("`virustotal` is not a connector; expected one of: ipinfo, ipsum, riskiq, lastinfosec, ivre"),
        "{err}"
    );
}
