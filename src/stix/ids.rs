//! Deterministic STIX 2.1 identifiers, bit-identical to `stix2` (observables) and
//! pycti 6.8.10 `generate_id` (everything else). See `shared/spec/stix-ids.md`.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::canonical::canonical_json;
use super::tlp::Tlp;

/// The STIX 2.1 Cyber-observable namespace, reused by pycti for every connector object.
pub const STIX_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// `<prefix>--<uuidv5(namespace, canonical_json(fields))>`.
pub fn id_from_fields(prefix: &str, fields: &Value) -> String {
    let name = canonical_json(fields);
    format!(
        "{prefix}--{}",
        Uuid::new_v5(&STIX_NAMESPACE, name.as_bytes())
    )
}

/// Python's `str.strip()`: Rust's whitespace plus the separators U+001C–U+001F.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// pycti's "lower+strip" name normalisation.
fn norm_name(name: &str) -> String {
    py_strip(&name.to_lowercase()).to_string()
}

/// The id-contributing properties of each observable type (stix2 3.0 and pycti's custom SCOs).
fn sco_contributing_properties(stix_type: &str) -> Option<&'static [&'static str]> {
    Some(match stix_type {
        "ipv4-addr"
        | "ipv6-addr"
        | "domain-name"
        | "email-addr"
        | "url"
        | "mac-addr"
        | "hostname"
        | "text"
        | "user-agent"
        | "cryptographic-key"
        | "cryptocurrency-wallet"
        | "credential"
        | "phone-number"
        | "tracking-number" => &["value"],
        "autonomous-system" => &["number"],
        "file" => &["hashes", "name", "parent_directory_ref", "extensions"],
        "x509-certificate" => &["hashes", "serial_number"],
        "artifact" => &["hashes", "payload_bin"],
        "directory" => &["path"],
        "email-message" => &["from_ref", "subject", "body"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "bank-account" => &["iban"],
        "payment-card" => &["card_number"],
        "media-content" => &["url"],
        "persona" => &["persona_name", "persona_type"],
        _ => return None,
    })
}

/// stix2's `hashes` reduction: one entry, by preference MD5, SHA-1, SHA-256, SHA-512,
/// else the first key in insertion order.
fn pick_hash(hashes: &Map<String, Value>) -> Option<(String, Value)> {
    for key in ["MD5", "SHA-1", "SHA-256", "SHA-512"] {
        if let Some(v) = hashes.get(key) {
            return Some((key.to_string(), v.clone()));
        }
    }
    hashes.iter().next().map(|(k, v)| (k.clone(), v.clone()))
}

/// The deterministic id of a Cyber-observable given its properties, as `stix2` computes it.
/// Falls back to a random UUIDv4 when no contributing property is present (as stix2 does).
pub fn observable_id(stix_type: &str, properties: &Map<String, Value>) -> String {
    let mut fields = Map::new();
    if let Some(keys) = sco_contributing_properties(stix_type) {
        for key in keys {
            match (*key, properties.get(*key)) {
                (_, None) | (_, Some(Value::Null)) => {}
                ("hashes", Some(Value::Object(hashes))) => {
                    if let Some((k, v)) = pick_hash(hashes) {
                        let mut one = Map::new();
                        one.insert(k, v);
                        fields.insert("hashes".into(), Value::Object(one));
                    }
                }
                (k, Some(v)) => {
                    fields.insert(k.to_string(), v.clone());
                }
            }
        }
    }
    if fields.is_empty() {
        return format!("{stix_type}--{}", Uuid::new_v4());
    }
    id_from_fields(stix_type, &Value::Object(fields))
}

/// Id of a value-keyed observable (`ipv4-addr`, `domain-name`, `hostname`, ...).
pub fn value_observable_id(stix_type: &str, value: &str) -> String {
    id_from_fields(stix_type, &json!({ "value": value }))
}

/// Id of an `autonomous-system` (the name never contributes).
pub fn autonomous_system_id(number: u64) -> String {
    id_from_fields("autonomous-system", &json!({ "number": number }))
}

/// pycti `Location.generate_id`.
pub fn location_id(
    name: &str,
    location_type: &str,
    latitude: Option<f64>,
    longitude: Option<f64>,
) -> String {
    let fields = if location_type == "Position" {
        match (latitude, longitude) {
            (None, None) => json!({ "name": norm_name(name) }),
            (lat, lon) => {
                let mut m = Map::new();
                if let Some(lat) = lat {
                    m.insert("latitude".into(), json!(lat));
                }
                if let Some(lon) = lon {
                    m.insert("longitude".into(), json!(lon));
                }
                Value::Object(m)
            }
        }
    } else {
        json!({ "name": norm_name(name), "x_opencti_location_type": location_type })
    };
    id_from_fields("location", &fields)
}

/// pycti `Identity.generate_id`.
pub fn identity_id(name: &str, identity_class: &str) -> String {
    id_from_fields(
        "identity",
        &json!({ "name": norm_name(name), "identity_class": identity_class.to_lowercase() }),
    )
}

/// pycti `Indicator.generate_id`.
pub fn indicator_id(pattern: &str) -> String {
    id_from_fields("indicator", &json!({ "pattern": py_strip(pattern) }))
}

/// pycti `StixCoreRelationship.generate_id`. Times are the strings that enter the hash
/// (for a Python datetime: its `isoformat()`); `stop_time` only counts with `start_time`.
pub fn relationship_id(
    relationship_type: &str,
    source_ref: &str,
    target_ref: &str,
    start_time: Option<&str>,
    stop_time: Option<&str>,
) -> String {
    let mut m = Map::new();
    m.insert("relationship_type".into(), json!(relationship_type));
    m.insert("source_ref".into(), json!(source_ref));
    m.insert("target_ref".into(), json!(target_ref));
    if let Some(start) = start_time {
        m.insert("start_time".into(), json!(start));
        if let Some(stop) = stop_time {
            m.insert("stop_time".into(), json!(stop));
        }
    }
    id_from_fields("relationship", &Value::Object(m))
}

/// pycti `StixSightingRelationship.generate_id`.
pub fn sighting_id(
    sighting_of_ref: &str,
    where_sighted_refs: &[String],
    first_seen: Option<&str>,
    last_seen: Option<&str>,
) -> String {
    let mut m = Map::new();
    m.insert("type".into(), json!("sighting"));
    m.insert("sighting_of_ref".into(), json!(sighting_of_ref));
    m.insert("where_sighted_refs".into(), json!(where_sighted_refs));
    if let Some(first) = first_seen {
        m.insert("first_seen".into(), json!(first));
        if let Some(last) = last_seen {
            m.insert("last_seen".into(), json!(last));
        }
    }
    id_from_fields("sighting", &Value::Object(m))
}

/// pycti `Note.generate_id`.
pub fn note_id(content: &str, created: Option<&str>) -> String {
    let mut m = Map::new();
    m.insert("content".into(), json!(py_strip(content)));
    if let Some(created) = created {
        m.insert("created".into(), json!(created));
    }
    id_from_fields("note", &Value::Object(m))
}

/// pycti `MarkingDefinition.generate_id`: static ids for TLP, else hashed verbatim.
pub fn marking_definition_id(definition_type: &str, definition: &str) -> String {
    if definition_type == "TLP"
        && let Some(tlp) = Tlp::parse(definition)
    {
        return tlp.marking_id().to_string();
    }
    id_from_fields(
        "marking-definition",
        &json!({ "definition_type": definition_type, "definition": definition }),
    )
}

/// pycti `ExternalReference.generate_id`: by url, else by source name and external id.
pub fn external_reference_id(
    url: Option<&str>,
    source_name: Option<&str>,
    external_id: Option<&str>,
) -> Option<String> {
    let fields = match (url, source_name, external_id) {
        (Some(url), _, _) => json!({ "url": url }),
        (None, Some(source), Some(ext)) => json!({ "source_name": source, "external_id": ext }),
        _ => return None,
    };
    Some(id_from_fields("external-reference", &fields))
}

/// pycti `Label.generate_id`.
pub fn label_id(value: &str) -> String {
    id_from_fields("label", &json!({ "value": value }))
}

/// Name-keyed SDOs (Malware, Campaign, Intrusion-Set, Tool, Vulnerability, ...).
pub fn named_sdo_id(prefix: &str, name: &str) -> String {
    id_from_fields(prefix, &json!({ "name": norm_name(name) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_strip_also_strips_information_separators() {
        assert_eq!(py_strip("\u{1f} x \n"), "x");
    }

    #[test]
    fn observable_without_contributing_property_gets_random_id() {
        let a = observable_id("process", &Map::new());
        let b = observable_id("process", &Map::new());
        assert_ne!(a, b);
        assert!(a.starts_with("process--"));
    }
}
