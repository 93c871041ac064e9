//! Passive-DNS records → STIX, as the reference maps them (spec §6): one observable and one
//! relationship per handled record, ids from the start time only (naive isoformat).

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::stix::{Author, Observable, Relationship, Tlp, ids, to_object};

pub const AUTHOR: &str = "RiskIQ PassiveTotal";
pub const AUTHOR_DESCRIPTION: &str = "RiskIQ Passive Total enrichment connector can be used to enrich ipv4-address and domain-name observables with Passive DNS";

/// What the records gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// New observables and relationships, in record order (author and marking not included).
    pub objects: Vec<Value>,
    /// Records mapped.
    pub handled: usize,
    /// Records skipped because a field was missing or malformed (types the reference ignores
    /// are not counted).
    pub malformed: usize,
}

/// Parses the API's naive `YYYY-MM-DD HH:MM:SS` (optionally with fractions).
pub fn parse_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

/// Python's `datetime.isoformat()` of a naive datetime (what enters the relationship id).
pub fn py_isoformat(t: NaiveDateTime) -> String {
    let micros = t.and_utc().timestamp_subsec_micros();
    if micros == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", t.format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// stix2's serialisation of a naive (UTC) datetime.
pub fn stix_time(t: NaiveDateTime) -> String {
    let micros = t.and_utc().timestamp_subsec_micros();
    if micros == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        let frac = format!("{micros:06}");
        format!(
            "{}.{}Z",
            t.format("%Y-%m-%dT%H:%M:%S"),
            frac.trim_end_matches('0')
        )
    }
}

/// The author identity.
pub fn author() -> Author {
    Author::organization(AUTHOR, Some(AUTHOR_DESCRIPTION))
}

/// Maps `results[]` for the entity `entity_id`, every object created by `author_id`.
pub fn map_records(entity_id: &str, author_id: &str, results: &[Value], now: &str) -> Mapped {
    let white = Tlp::Clear.marking_id().to_string();
    let mut out = Mapped {
        objects: Vec::new(),
        handled: 0,
        malformed: 0,
    };
    for record in results {
        let field = |k: &str| record.get(k).and_then(Value::as_str);
        let (Some(record_type), Some(resolve_type), Some(resolve)) =
            (field("recordType"), field("resolveType"), field("resolve"))
        else {
            // The reference skips these silently (e.g. the official client's test fixture).
            continue;
        };
        let (stix_type, main_type, relationship_type, reversed) = match (record_type, resolve_type)
        {
            ("A", "ip") => ("ipv4-addr", "IPv4-Addr", "resolves-to", false),
            ("AAAA", "ip") => ("ipv6-addr", "IPv6-Addr", "resolves-to", false),
            ("SOA", "email") => ("email-addr", "Email-Addr", "related-to", false),
            ("SOA" | "MX" | "CNAME" | "NS", "domain") => {
                ("domain-name", "Domain-Name", "resolves-to", false)
            }
            // What an IP query returns: these domains resolve to the entity.
            ("A", "domain") => ("domain-name", "Domain-Name", "resolves-to", true),
            _ => continue,
        };
        let (Some(first), Some(mut last)) = (
            field("firstSeen").and_then(parse_time),
            field("lastSeen").and_then(parse_time),
        ) else {
            out.malformed += 1;
            continue;
        };
        if last <= first {
            // STIX needs stop_time > start_time (the reference adds 1 s when they are equal).
            last = crate::stix::one_second_after(first);
        }
        let mut observable = Observable::new(stix_type, resolve);
        observable.object_marking_refs = vec![white.clone()];
        observable.x_opencti_created_by_ref = Some(author_id.to_string());
        observable.x_opencti_main_observable_type = Some(main_type.into());
        let (source, target) = if reversed {
            (observable.id.clone(), entity_id.to_string())
        } else {
            (entity_id.to_string(), observable.id.clone())
        };
        let mut rel = Relationship::new(relationship_type, &source, &target, now);
        rel.id = ids::relationship_id(
            relationship_type,
            &source,
            &target,
            Some(&py_isoformat(first)),
            None,
        );
        rel.created_by_ref = Some(author_id.to_string());
        rel.description = Some(format!("{record_type} record"));
        rel.start_time = Some(stix_time(first));
        rel.stop_time = Some(stix_time(last));
        rel.object_marking_refs = vec![white.clone()];
        out.objects.push(to_object(&observable));
        out.objects.push(to_object(&rel));
        out.handled += 1;
    }
    out
}
