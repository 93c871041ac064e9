//! LastInfoSec answers → STIX: the upstream bundle's objects (malformed ones dropped) and the
//! "Last Info Sec" external reference on the enriched observable. Pure: no I/O.

use serde_json::{Value, json};

/// The reference's external reference (its url, not the configured base, keeps its id).
pub const EXTERNAL_REFERENCE_URL: &str = "https://api.client.lastinfosec.com/v2/stix21/search/";

/// The strongest hash of a file (the platform's `observable_value` order).
pub fn strongest_hash(file: &Value) -> Option<String> {
    let hashes = file.get("hashes")?.as_object()?;
    ["SHA-512", "SHA-256", "SHA-1", "MD5"]
        .iter()
        .find_map(|k| hashes.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

/// Whether an upstream object is usable: an object with a `type`, an id `<type>--<uuid>`, and
/// for relationships both ends.
fn valid_object(o: &Value) -> Result<(), String> {
    let stix_type = o.get("type").and_then(Value::as_str).ok_or("no type")?;
    let id = o.get("id").and_then(Value::as_str).ok_or("no id")?;
    let (prefix, uuid) = id.split_once("--").ok_or("id is not <type>--<uuid>")?;
    if prefix != stix_type || uuid::Uuid::parse_str(uuid).is_err() {
        return Err(format!("id `{id}` does not match type `{stix_type}`"));
    }
    if stix_type == "relationship" {
        for end in ["source_ref", "target_ref"] {
            o.get(end)
                .and_then(Value::as_str)
                .ok_or(format!("relationship without {end}"))?;
        }
    }
    Ok(())
}

/// The objects of the answer's first bundle, malformed ones dropped. `None`: no bundle.
pub fn upstream_objects(body: &Value) -> Option<(Vec<Value>, usize)> {
    let bundle = match body.get("message")? {
        Value::Array(list) => list.first()?.clone(),
        Value::Object(o) => Value::Object(o.clone()),
        _ => return None,
    };
    let objects = bundle.get("objects").and_then(Value::as_array)?;
    let mut dropped = 0;
    let kept = objects
        .iter()
        .filter(|o| match valid_object(o) {
            Ok(()) => true,
            Err(why) => {
                dropped += 1;
                tracing::warn!(connector = "lastinfosec", reason = %why, "Dropped a malformed object from the LastInfoSec bundle.");
                false
            }
        })
        .cloned()
        .collect();
    Some((kept, dropped))
}

/// OpenCTI's extension, where the platform exports an observable's references.
const OCTI_EXTENSION: &str = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";

/// Adds the "Last Info Sec" external reference to the enriched observable (once). It goes
/// with the references the platform exported in the OpenCTI extension when there are some
/// (the platform ignores the top-level `x_opencti_external_references` then), else into
/// `x_opencti_external_references`.
pub fn with_external_reference(objects: &[Value], entity_id: &str) -> Vec<Value> {
    let reference = json!({"source_name": "Last Info Sec", "url": EXTERNAL_REFERENCE_URL, "description": "LastInfoSec Threat Feed"});
    let mut objects = objects.to_vec();
    let entity = objects
        .iter_mut()
        .find(|o| o.get("id").and_then(Value::as_str) == Some(entity_id));
    if let Some(Value::Object(entity)) = entity {
        let exported = entity
            .get("extensions")
            .and_then(|e| e.get(OCTI_EXTENSION))
            .and_then(|e| e.get("external_references"))
            .is_some_and(Value::is_array);
        let refs = if exported {
            // Checked just above: the extension holds an array of references.
            &mut entity["extensions"][OCTI_EXTENSION]["external_references"]
        } else {
            entity
                .entry("x_opencti_external_references")
                .or_insert_with(|| json!([]))
        };
        if !refs.is_array() {
            *refs = json!([]);
        }
        if let Value::Array(list) = refs
            && !list.iter().any(|r| r.get("url") == reference.get("url"))
        {
            list.push(reference);
        }
    }
    objects
}
