//! The loader and the connector block alone, on a section made up for the test: `config`
//! compiles and is tested without any connector.

use std::collections::HashMap;

use serde::Deserialize;

use super::keys::{self, KeySpec};
use super::*;

const ID: &str = "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60";

static SPEC: SectionSpec = SectionSpec {
    section: "demo",
    kind: ConnectorKind::Enrichment {
        default_auto: true,
        playbook_compatible: false,
        default_concurrency: 4,
    },
    default_name: "Demo",
    default_scope: "IPv4-Addr",
    official: None,
    keys: &[
        KeyDef {
            key: "api_base_url",
            env_aliases: &["DEMO_URL"],
            kind: Kind::Url,
            default: "https://demo.example",
            doc: "Base URL of the upstream API.",
            ..KeyDef::EMPTY
        },
        KeyDef {
            key: "token",
            env_aliases: &["DEMO_API_TOKEN"],
            kind: Kind::Secret,
            doc: "Token.",
            ..KeyDef::EMPTY
        },
        KeyDef {
            key: "retries",
            kind: Kind::Int(keys::Range::new(0, 10)),
            default: "2",
            doc: "Retries.",
            ..KeyDef::EMPTY
        },
        KeyDef {
            key: "max_tlp",
            kind: Kind::Tlp,
            default: "TLP:AMBER",
            doc: "Highest TLP.",
            ..KeyDef::EMPTY
        },
    ],
};

static IMPORT: SectionSpec = SectionSpec {
    section: "feed",
    kind: ConnectorKind::Import {
        default_period: std::time::Duration::from_secs(6 * 3600),
    },
    default_name: "Feed",
    default_scope: "feed",
    official: None,
    keys: &[KeyDef {
        key: "api_base_url",
        kind: Kind::Url,
        default: "https://feed.example",
        doc: "Base URL of the upstream API.",
        ..KeyDef::EMPTY
    }],
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Root {
    log: LogConfig,
    demo: Demo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Demo {
    enabled: bool,
    api_base_url: Option<String>,
    connector: ConnectorBlock,
    token: Option<Secret>,
    retries: i64,
    max_tlp: Option<TlpSetting>,
}

fn table() -> Vec<KeySpec> {
    let mut t: Vec<KeySpec> = keys::global_keys()
        .into_iter()
        .filter(|k| k.path.starts_with("log."))
        .collect();
    t.extend(SPEC.all_keys());
    t
}

fn load(yaml: Option<&str>, pairs: &[(&str, &str)]) -> Result<Root, ConfigError> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    loader::from_sources(yaml, &env, &table())
}

#[test]
fn the_environment_overrides_the_file_through_every_name_of_a_key() {
    let yaml =
        "demo:\n  enabled: 'yes'\n  retries: '5'\n  token: 1234\n  connector:\n    auto: false\n";
    let root = load(Some(yaml), &[]).unwrap();
    assert!(root.demo.enabled);
    assert_eq!(root.demo.retries, 5, "integers may be quoted");
    assert_eq!(
        root.demo.token.unwrap().expose(),
        "1234",
        "a numeric token stays a string"
    );
    assert_eq!(root.demo.connector.auto, Some(false));
    let root = load(
        Some(yaml),
        &[
            ("DEMO_CONNECTOR_AUTO", "TRUE"),
            ("DEMO_API_TOKEN", "from-alias"),
            ("DEMO_URL", "http://alias"),
            ("DEMO_RETRIES", " "),
        ],
    )
    .unwrap();
    assert_eq!(root.demo.connector.auto, Some(true));
    assert_eq!(root.demo.token.unwrap().expose(), "from-alias");
    assert_eq!(root.demo.api_base_url.as_deref(), Some("http://alias"));
    assert_eq!(root.demo.retries, 5, "a blank variable does not override");
}

#[test]
fn loader_errors_name_the_key_and_its_variable() {
    let err = load(None, &[("DEMO_ENABLED", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("demo.enabled (env DEMO_ENABLED)") && err.contains("boolean"),
        "{err}"
    );
    let err = load(Some("demo:\n  tokn: x\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokn"), "{err}");
    let err = load(None, &[("DEMO_MAX_TLP", "AMBER")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("demo.max_tlp (env DEMO_MAX_TLP)") && err.contains("TLP:AMBER+STRICT"),
        "{err}"
    );
    let err = load(Some("- a list"), &[]).unwrap_err().to_string();
    assert!(err.contains("mapping of sections"), "{err}");
}

#[test]
fn the_block_resolves_with_the_kind_s_defaults() {
    let block = ConnectorBlock {
        id: Some(ID.parse().unwrap()),
        ..Default::default()
    };
    let mut checks = Checks::new(&SPEC);
    let settings = block.resolve(&SPEC, &mut checks);
    assert!(checks.is_empty(), "{:?}", checks.into_errors());
    assert_eq!(settings.name, "Demo");
    assert_eq!(settings.scope, vec!["IPv4-Addr"]);
    assert_eq!(settings.connector_type(), "INTERNAL_ENRICHMENT");
    assert_eq!(
        settings.mode,
        Mode::Enrichment {
            auto: true,
            auto_update: false,
            playbook_compatible: false,
            concurrency: 4,
        }
    );
    let mut checks = Checks::new(&IMPORT);
    let settings = block.resolve(&IMPORT, &mut checks);
    assert!(checks.is_empty());
    assert_eq!(
        settings.mode,
        Mode::Import {
            period: std::time::Duration::from_secs(6 * 3600),
            queue_threshold: 500.0,
        }
    );
    assert_eq!(settings.connector_type(), "EXTERNAL_IMPORT");
}

#[test]
fn the_block_s_errors_name_their_keys() {
    let block = ConnectorBlock {
        name: Some(" x ".into()),
        duration_period: Some(IsoDuration(std::time::Duration::from_secs(60))),
        log_level: Some("loud".into()),
        ..Default::default()
    };
    let mut checks = Checks::new(&SPEC);
    block.resolve(&SPEC, &mut checks);
    checks.require_secret("token", None);
    checks.url("api_base_url", "demo.example");
    let errors = checks.into_errors().join("\n");
    for needle in [
        "demo.connector.id (env DEMO_CONNECTOR_ID): required when demo.enabled is true",
        "demo.connector.name",
        "demo.connector.duration_period: only scheduled importers take a period",
        "demo.connector.log_level",
        "demo.token (env DEMO_TOKEN or DEMO_API_TOKEN): required when demo.enabled is true",
        "demo.api_base_url (env DEMO_API_BASE_URL or DEMO_URL): `demo.example` is not an http(s) URL",
    ] {
        assert!(errors.contains(needle), "{needle} missing from:\n{errors}");
    }
    let block = ConnectorBlock {
        id: Some(ID.parse().unwrap()),
        auto: Some(true),
        ..Default::default()
    };
    let mut checks = Checks::new(&IMPORT);
    block.resolve(&IMPORT, &mut checks);
    let errors = checks.into_errors().join("\n");
    assert!(
        errors.contains("only apply to enrichment connectors"),
        "{errors}"
    );
}

#[test]
fn numbers_outside_their_range_are_refused_from_the_file_and_the_environment() {
    for (yaml, pairs, want) in [
        (
            None,
            &[("DEMO_RETRIES", "11")][..],
            "demo.retries (env DEMO_RETRIES): `11` is out of range; allowed: 0 to 10",
        ),
        (
            Some("demo:\n  retries: -1\n"),
            &[][..],
            "demo.retries (env DEMO_RETRIES): `-1` is out of range; allowed: 0 to 10",
        ),
        (
            None,
            &[("DEMO_RETRIES", "many")][..],
            "demo.retries (env DEMO_RETRIES): `many` is not an integer; allowed: 0 to 10",
        ),
        (
            Some("demo:\n  connector:\n    concurrency: 0\n"),
            &[][..],
            "demo.connector.concurrency (env DEMO_CONNECTOR_CONCURRENCY): `0` is out of range; allowed: 1 to 1000",
        ),
    ] {
        let err = load(yaml, pairs).unwrap_err().to_string();
        assert!(err.contains(want), "{want}\nmissing from: {err}");
    }
    assert_eq!(
        load(None, &[("DEMO_RETRIES", "10")]).unwrap().demo.retries,
        10
    );
}

#[test]
fn ranges_say_what_they_allow() {
    use keys::{Range, ranges};
    assert_eq!(ranges::RATE_LIMIT.describe(), "0, or 0.001 to 10000");
    assert_eq!(ranges::REQUEST_TIMEOUT.describe(), "PT1S to PT1H");
    assert_eq!(Range::new(1, 100).describe(), "1 to 100");
    assert!(ranges::RATE_LIMIT.contains(0.0) && !ranges::RATE_LIMIT.contains(0.0005));
    assert!(
        !ranges::RATE_LIMIT.contains(f64::NAN) && !ranges::QUEUE_THRESHOLD.contains(f64::INFINITY)
    );
    assert!(!Range::new(1, 100).or_zero().contains(-1) && Range::new(1, 100).or_zero().contains(0));
}

#[test]
fn shared_blocks_need_opencti_only_when_a_connector_runs() {
    let (opencti, log, daemon, mq) = (
        OpenctiConfig::default(),
        LogConfig::default(),
        DaemonConfig::default(),
        MqConfig::default(),
    );
    assert!(check_shared(&opencti, &log, &daemon, &mq, false).is_empty());
    let errors = check_shared(&opencti, &log, &daemon, &mq, true).join("\n");
    assert!(errors.contains("opencti.url") && errors.contains("opencti.token"));
}

#[test]
fn the_retry_budget_must_fit_twice_under_the_broker_s_consumer_timeout() {
    let (opencti, log, mq) = (
        OpenctiConfig::default(),
        LogConfig::default(),
        MqConfig::default(),
    );
    let daemon = |minutes: u64| DaemonConfig {
        max_retry_duration: IsoDuration(std::time::Duration::from_secs(60 * minutes)),
        ..DaemonConfig::default()
    };
    // 30 min of consumer timeout: given back after 25; 2 × 12 fits, 2 × 13 does not.
    assert!(check_shared(&opencti, &log, &daemon(12), &mq, false).is_empty());
    let errors = check_shared(&opencti, &log, &daemon(13), &mq, false).join("\n");
    assert!(
        errors.contains("daemon.max_retry_duration (env DAEMON_MAX_RETRY_DURATION)")
            && errors.contains("mq.consumer_timeout (env MQ_CONSUMER_TIMEOUT)")
            && errors.contains("at most 750 s"),
        "{errors}"
    );
    let day = MqConfig {
        consumer_timeout: IsoDuration(std::time::Duration::from_secs(86_400)),
        ..MqConfig::default()
    };
    assert!(check_shared(&opencti, &log, &daemon(13), &day, false).is_empty());
}
