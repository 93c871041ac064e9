//! Property tests over hostile inputs (proptest): listen messages, every connector's answer
//! mapping, the IPsum parser, the splitter and the configuration (any string for any
//! setting, and `check-config` with hostile values) must never panic, whatever they are
//! given, and keep their invariants. The suite runs a short smoke of each (`PROPTEST_CASES`, 64 by
//! default here); a long run: `PROPTEST_CASES=20000 cargo nextest run -E 'test(/fuzz::/)'`.

use opencti_connectors::connectors::ivre::collect::Collector;
use opencti_connectors::connectors::ivre::mapping::{self as ivre, EntityKind};
use opencti_connectors::connectors::{ipinfo, ipsum, lastinfosec, riskiq};
use opencti_connectors::opencti::messages::ListenMessage;
use opencti_connectors::opencti::split::split;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::common::*;

/// Cases per property: the `PROPTEST_CASES` environment variable, else a CI-sized smoke.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        // Failures are reported with their minimal input; nothing is written to disk.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys the mappings look for, so the generated JSON reaches their branches.
const KEYS: &[&str] = &[
    "id",
    "type",
    "value",
    "ip",
    "asn",
    "name",
    "org",
    "country",
    "city",
    "loc",
    "region",
    "privacy",
    "vpn",
    "proxy",
    "tor",
    "hosting",
    "bogon",
    "status",
    "error",
    "results",
    "resolve",
    "resolveType",
    "recordType",
    "firstSeen",
    "lastSeen",
    "message",
    "objects",
    "source_ref",
    "target_ref",
    "object_refs",
    "addr",
    "recontype",
    "source",
    "targetval",
    "firstseen",
    "lastseen",
    "starttime",
    "endtime",
    "hostnames",
    "ports",
    "scripts",
    "ssl-cert",
    "infos",
    "country_name",
    "country_code",
    "as_num",
    "as_name",
    "event",
    "internal",
    "work_id",
    "entity_id",
    "stix_entity",
    "stix_objects",
    "bundle",
    "playbook",
    "md5",
    "sha1",
    "sha256",
    "subject_text",
    "issuer_text",
    "not_before",
    "not_after",
];

/// Arbitrary JSON, biased toward the keys above and deep nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[ -~]{0,24}".prop_map(Value::String),
        prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_string())),
        Just(json!("8.8.8.8")),
        Just(json!("2021-01-01 00:00:00")),
        Just(json!(8_210_266_876_799i64)),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn listen_messages_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value()) {
        let _ = ListenMessage::parse(&bytes);
        let _ = ListenMessage::salvage_work_id(&bytes);
        let text = value.to_string();
        let _ = ListenMessage::parse(text.as_bytes());
        let _ = ListenMessage::salvage_work_id(text.as_bytes());
    }

    #[test]
    fn ipinfo_answers_never_panic(body in json_value(), use_asn_name in any::<bool>()) {
        let request = request_for(ip_stix(GREEN));
        let mapped = ipinfo::map_response(&request, &body, use_asn_name, "2024-01-01T00:00:00.000Z");
        prop_assert!(mapped.objects.len() >= request.stix_objects.len());
    }

    #[test]
    fn riskiq_records_never_panic(records in prop::collection::vec(json_value(), 0..8)) {
        let mapped = riskiq::map_records(IP_ID, "identity--x", &records, "t");
        prop_assert!(mapped.handled + mapped.malformed <= records.len());
    }

    #[test]
    fn lastinfosec_answers_never_panic(body in json_value()) {
        let found = lastinfosec::Found::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        if let Some((objects, _)) = lastinfosec::upstream_objects(found, Some(IP_ID)) {
            let objects: Vec<serde_json::Value> = objects.iter().map(|o| o.to_value()).collect();
            let with = lastinfosec::with_external_reference(&objects, IP_ID);
            prop_assert_eq!(with.len(), objects.len());
        }
    }

    #[test]
    fn ivre_records_never_panic(records in prop::collection::vec(json_value(), 0..6), kind in 0usize..5) {
        let kinds = [EntityKind::As, EntityKind::Domain, EntityKind::Ip, EntityKind::Mac, EntityKind::Cert];
        let entity = json!({"id": IP_ID, "type": "ipv4-addr", "value": IP});
        let mut c = Collector::new("identity--x", "t", &entity, IP_ID);
        for r in &records {
            ivre::data_record(&mut c, IP_ID, r);
            ivre::passive_record(&mut c, kinds[kind], IP_ID, "example.com", r);
            ivre::scans_record(&mut c, kinds[kind], IP_ID, "example.com", r);
        }
        let _ = ivre::cert_hash(&records.first().cloned().unwrap_or(Value::Null), None);
        let _ = c.into_objects();
    }

    #[test]
    fn ipsum_feeds_never_panic(lines in prop::collection::vec(prop_oneof![
        "[ -~\t]{0,40}",
        Just("1.2.3.0/24".to_string()),
        Just("8.8.8.8\t7".to_string()),
        Just("2001:db8::/126".to_string()),
        Just("# comment".to_string()),
        Just("10.0.0.0/8".to_string()),
    ], 0..40)) {
        let body = lines.join("\n");
        let parsed = ipsum::parse(&body);
        let lines_with_content = lines.iter().filter(|l| !l.trim().is_empty()).count();
        prop_assert!(parsed.comments + parsed.skipped() <= lines_with_content);
        prop_assert!(parsed.ips.len() <= lines_with_content * ipsum::mapping::MAX_EXPANSION as usize);
    }

    #[test]
    fn the_splitter_never_panics_and_keeps_each_id_once(
        edges in prop::collection::vec((0usize..30, 0usize..30), 0..120),
        types in prop::collection::vec(prop::sample::select(&["note", "ipv4-addr", "relationship", "x-unknown", "marking-definition"][..]), 30),
        cleanup in any::<bool>(),
    ) {
        let mut objects: Vec<Value> = (0..30)
            .map(|i| json!({"id": format!("{}--{i}", types[i]), "type": types[i], "object_refs": []}))
            .collect();
        for (from, to) in edges {
            let target = objects[to]["id"].clone();
            objects[from]["object_refs"].as_array_mut().unwrap().push(target.clone());
            if types[from] == "relationship" {
                objects[from]["source_ref"] = target.clone();
                objects[from]["target_ref"] = target;
            }
        }
        let out = split(objects, cleanup);
        let mut ids: Vec<&str> = out.iter().map(|s| s.object["id"].as_str().unwrap()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), n, "each object once");
        prop_assert!(out.windows(2).all(|w| w[0].nb_deps <= w[1].nb_deps), "ordered by dependencies");
    }
}

/// Every connector of the registry enabled with what each requires: a hostile value of any
/// key then reaches the checks and the build of the section that owns it.
fn every_connector_env() -> std::collections::HashMap<String, String> {
    testkit::every_connector_env().into_iter().collect()
}

/// Values at and past every edge a setting has: numbers of every size and sign, durations
/// at the end of time and below a nanosecond, non-numbers, control characters.
const HOSTILE: &[&str] = &[
    "0",
    "-0",
    "-1",
    "0.5",
    "1e-20",
    "1e300",
    "-1e300",
    "NaN",
    "inf",
    "-inf",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "0x10",
    "P",
    "PT",
    "P-1D",
    "P1.5.5D",
    "PT0.0000000001S",
    "PT18446744073709551615S",
    "18446744073709551615",
    "P292277024627Y",
    "P99999999999999999999Y",
    "P1Y1M1W1DT1H1M1.5S",
    "ChangeMe",
    "null",
    "~",
    "[{a=/(/}]",
    "http://u:p@[::1]:99999/",
    "\u{0}\u{202e}é",
];

/// A value for a setting: one of [`HOSTILE`], a number or duration of any size, or any text.
fn setting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(HOSTILE).prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (
            any::<u64>(),
            prop::sample::select(&["Y", "M", "W", "D"][..])
        )
            .prop_map(|(n, unit)| format!("P{n}{unit}")),
        (
            any::<u64>(),
            any::<u32>(),
            prop::sample::select(&["H", "M", "S"][..])
        )
            .prop_map(|(n, frac, unit)| format!("PT{n}.{frac}{unit}")),
        any::<String>(),
    ]
}

/// Loads `env` and builds every connector, as `check-config` does: `Err` with the message,
/// or `Ok` with how many connectors were built.
fn load_and_build(env: &std::collections::HashMap<String, String>) -> Result<usize, String> {
    use opencti_connectors::registry::{Config, build_all};
    Config::from_sources(None, env)
        .and_then(|config| build_all(&config).map(|built| built.len()))
        .map_err(|e| e.to_string())
}

/// The top-level section of a key (`ipinfo` of `ipinfo.cache.ttl`).
fn section(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

const SENTINEL: &str = "S3NT1NEL";

proptest! {
    #![proptest_config(config())]

    /// Any string as any setting, through any of its environment names, one to five at once:
    /// the configuration loads and builds, or is refused with errors naming the section; it
    /// never panics.
    #[test]
    fn any_value_of_any_setting_loads_or_is_refused_without_a_panic(
        settings in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), setting_value()),
            1..6,
        ),
    ) {
        let keys = opencti_connectors::registry::all_keys();
        let mut env = every_connector_env();
        let mut sections = Vec::new();
        for (key, name, value) in &settings {
            let key = key.get(&keys);
            env.insert(name.get(&key.env).clone(), value.clone());
            sections.push(section(&key.path).to_string());
        }
        match load_and_build(&env) {
            Ok(built) => prop_assert!(built <= opencti_connectors::registry::specs().len()),
            Err(message) => prop_assert!(
                sections.iter().any(|s| message.contains(s.as_str())),
                "{message} names none of {sections:?}"
            ),
        }
    }

    /// A secret-bearing setting (a token, a key, a URL's password, query or fragment) never
    /// reaches an error message, whatever surrounds it.
    #[test]
    fn secrets_never_reach_configuration_errors(
        key in any::<prop::sample::Index>(),
        before in "[ -~]{0,12}",
        after in "[ -~]{0,12}",
        shape in 0usize..5,
    ) {
        use opencti_connectors::config::Kind;
        let keys: Vec<_> = opencti_connectors::registry::all_keys()
            .into_iter()
            .filter(|k| k.kind == Kind::Secret || k.kind == Kind::Url || k.path.contains("url"))
            .collect();
        let key = key.get(&keys);
        let value = match (key.kind, shape) {
            (Kind::Secret, _) | (_, 0) => format!("{before}{SENTINEL}{after}"),
            (_, 1) => format!("{before}:{SENTINEL}@{after}"),
            (_, 2) => format!("{before}?key={SENTINEL}{after}"),
            (_, 3) => format!("{before}#X-API-Key={SENTINEL}{after}"),
            _ => format!("http://user:{SENTINEL}@{before}"),
        };
        let mut env = every_connector_env();
        env.insert(key.env[0].clone(), value.clone());
        if let Err(message) = load_and_build(&env) {
            // A bare value of a URL key is no secret until it sits in a secret's place.
            let bare = shape == 0 && key.kind != Kind::Secret;
            prop_assert!(bare || !message.contains(SENTINEL), "{} = {value:?}: {message}", key.path);
        }
    }
}

#[test]
fn every_hostile_value_of_every_number_is_loaded_or_refused_naming_its_key() {
    let mut refused = 0;
    for key in opencti_connectors::registry::all_keys() {
        if key.kind.range().is_none() {
            continue;
        }
        for value in HOSTILE {
            let mut env = every_connector_env();
            env.insert(key.env[0].clone(), value.to_string());
            if let Err(message) = load_and_build(&env) {
                refused += 1;
                assert!(
                    message.contains(&format!("{} (env {}", key.path, key.env[0])),
                    "{} = {value:?}: {message}",
                    key.path
                );
            }
        }
    }
    assert!(refused > 500, "{refused} refusals");
}

#[test]
fn check_config_exits_0_or_2_on_hostile_settings_never_101() {
    let run = |extra: &[(&str, &str)]| {
        let out = std::process::Command::new(crate::common::daemon::BIN)
            .arg("check-config")
            .env_clear()
            .envs(every_connector_env())
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&[]).0, Some(0), "the baseline loads");
    for (name, value) in [
        ("IPINFO_RATE_LIMIT", "1e-20"),
        ("RISKIQ_CACHE_TTL", "P500000000000D"),
        ("DAEMON_SHUTDOWN_TIMEOUT", "PT18446744073709551615S"),
        ("IVRE_PAGE_SIZE", "0"),
        ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT0.0000001S"),
        ("LASTINFOSEC_CACHE_CAPACITY", "18446744073709551615"),
    ] {
        let (code, stderr) = run(&[(name, value)]);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        // Out of range, or too long for a `Duration` at all: either way the range is named.
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("(env {name}): `{value}` is ")))
            .unwrap_or_else(|| panic!("{name}={value}: {stderr}"));
        assert!(line.contains("; allowed: "), "{line}");
    }
    for (name, value) in [
        ("LOG_LEVEL", "[{a=/(/}]"),
        ("IPINFO_CACHE_MAX_BYTES", "\u{202e}"),
    ] {
        let (code, stderr) = run(&[(name, value)]);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
    }
    // Every section's numbers past any range at once: each is named with its range.
    use opencti_connectors::config::Kind;
    for spec in opencti_connectors::registry::specs() {
        let prefix = format!("{}.", spec.section);
        let hostile: Vec<(String, &str)> = opencti_connectors::registry::all_keys()
            .into_iter()
            .filter(|k| k.path.starts_with(&prefix))
            .filter_map(|k| {
                let value = match k.kind {
                    Kind::Int(_) => "18446744073709551615",
                    Kind::Float(_) => "1e300",
                    Kind::Duration(_) => "P500000000000D",
                    _ => return None,
                };
                Some((k.env[0].clone(), value))
            })
            .collect();
        let set: Vec<(&str, &str)> = hostile.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (code, stderr) = run(&set);
        assert_eq!(code, Some(2), "{}: {stderr}", spec.section);
        for (name, value) in &set {
            let line = stderr
                .lines()
                .find(|l| l.contains(&format!("(env {name}): `{value}` is ")))
                .unwrap_or_else(|| panic!("{name}={value}: {stderr}"));
            assert!(line.contains("; allowed: "), "{line}");
        }
    }
}
