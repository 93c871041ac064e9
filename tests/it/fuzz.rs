//! Property tests over hostile inputs (proptest): listen messages, every connector's answer
//! mapping, the IPsum parser and the splitter must never panic, whatever they are given, and
//! keep their invariants. The suite runs a short smoke of each (`PROPTEST_CASES`, 64 by
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
        if let Some((objects, _)) = lastinfosec::upstream_objects(&body) {
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
