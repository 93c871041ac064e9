//! LastInfoSec answers → STIX: the upstream bundle's objects (malformed ones dropped) and the
//! "Last Info Sec" external reference on the enriched observable. Pure: no I/O.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::opencti::prepared::Prepared;

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

/// A found answer, kept lean: the JSON text of each object of its first bundle, never a
/// tree of the whole answer (answers run to tens of megabytes of small objects).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Found {
    /// `None`: the answer has no bundle.
    objects: Option<Vec<Box<RawValue>>>,
}

/// The parts of the envelope read: `message` is a list of bundles (the first counts) or one.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct Bundle<'a> {
    #[serde(borrow, default)]
    objects: Option<&'a RawValue>,
}

/// Whether `raw` is a JSON array (else an object, a string, …).
fn is_array(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('[')
}

impl Found {
    /// Parses an answer's body; an error when it is not JSON at all. JSON that is no object
    /// has no bundle.
    pub fn parse(bytes: &[u8]) -> Result<Found, serde_json::Error> {
        let whole: &RawValue = serde_json::from_slice(bytes)?;
        if !whole.get().trim_start().starts_with('{') {
            return Ok(Found::default());
        }
        let envelope: Envelope = serde_json::from_str(whole.get())?;
        let bundle = match envelope.message {
            Some(m) if is_array(m) => serde_json::from_str::<Vec<&RawValue>>(m.get())?
                .first()
                .copied(),
            Some(m) => Some(m),
            None => None,
        };
        let objects = bundle
            .and_then(|b| serde_json::from_str::<Bundle>(b.get()).ok())
            .and_then(|b| b.objects)
            .filter(|o| is_array(o))
            .map(|o| serde_json::from_str::<Vec<Box<RawValue>>>(o.get()))
            .transpose()?;
        Ok(Found { objects })
    }
}

/// The objects of the answer's first bundle, each prepared for sending (its text, id and
/// references) one at a time, so no tree of the answer is ever built; malformed ones and
/// the one with id `skip` (an upstream copy of the entity, which would replace the
/// platform's) dropped. `None`: no bundle.
pub fn upstream_objects(found: Found, skip: Option<&str>) -> Option<(Vec<Prepared>, usize)> {
    let mut dropped = 0;
    let kept = found
        .objects?
        .into_iter()
        .filter_map(|raw| {
            let object: Value = serde_json::from_str(raw.get()).ok()?;
            if let Err(why) = valid_object(&object) {
                dropped += 1;
                tracing::warn!(connector = "lastinfosec", reason = %why, "Dropped a malformed object from the LastInfoSec bundle.");
                return None;
            }
            if skip.is_some() && object.get("id").and_then(Value::as_str) == skip {
                return None;
            }
            Some(Prepared::from_value(&object))
        })
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
