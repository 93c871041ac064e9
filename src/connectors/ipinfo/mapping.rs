//! IPinfo answer → STIX objects, in the reference's order: re-emitted objects, AS,
//! belongs-to, Country, City, City located-at Country, observable located-at City and Country.

use serde_json::{Value, json};

use super::countries;
use crate::connectors::EnrichmentRequest;
use crate::stix::{AutonomousSystem, Location, Relationship, to_object};

/// The mapping's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The request's objects (labels possibly updated) followed by the new objects.
    pub objects: Vec<Value>,
    /// How many objects were added or changed; 0 means IPinfo told us nothing.
    pub added: usize,
    /// What was missing or odd in the answer (logged, never fatal).
    pub notes: Vec<String>,
}

/// The first run of decimal digits (`AS15169` → 15169).
fn first_number(s: &str) -> Option<u64> {
    let digits: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `(number, name)` of the autonomous system, from `asn` or else `org` ("AS15169 Google LLC").
fn autonomous_system(body: &Value, use_asn_name: bool) -> Option<(u64, String)> {
    if let Some(asn) = body.get("asn").and_then(Value::as_object) {
        let handle = asn.get("asn").and_then(Value::as_str)?;
        let number = first_number(handle)?;
        let name = match asn.get("name").and_then(Value::as_str) {
            Some(n) if use_asn_name => n,
            _ => handle,
        };
        return Some((number, name.to_string()));
    }
    let org = body.get("org").and_then(Value::as_str)?;
    let (handle, owner) = org.split_once(' ').unwrap_or((org, ""));
    let number = first_number(handle)?;
    let name = if use_asn_name && !owner.is_empty() {
        owner
    } else {
        handle
    };
    Some((number, name.to_string()))
}

/// Privacy labels in the reference's order: vpn, proxy, tor, relay, hosting, service name.
fn privacy_labels(body: &Value) -> Vec<String> {
    let Some(privacy) = body.get("privacy").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut labels: Vec<String> = ["vpn", "proxy", "tor", "relay", "hosting"]
        .into_iter()
        .filter(|k| privacy.get(*k).and_then(Value::as_bool) == Some(true))
        .map(str::to_string)
        .collect();
    if let Some(service) = privacy.get("service").and_then(Value::as_str)
        && !service.trim().is_empty()
    {
        labels.push(service.to_string());
    }
    labels
}

/// `loc` = "lat,lon" → numbers.
fn coordinates(body: &Value) -> Option<(f64, f64)> {
    let loc = body.get("loc").and_then(Value::as_str)?;
    let (lat, lon) = loc.split_once(',')?;
    Some((lat.trim().parse().ok()?, lon.trim().parse().ok()?))
}

/// The answer with only what [`map_response`] reads (kept in the cache: a tenth of the
/// room of a full answer). Mapping it gives the same objects as mapping the full answer.
pub fn essentials(body: Value) -> Value {
    let Value::Object(mut full) = body else {
        return body;
    };
    let mut kept = serde_json::Map::new();
    for key in ["bogon", "country", "city", "loc", "org", "status", "error"] {
        if let Some(v) = full.remove(key) {
            kept.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(mut asn)) = full.remove("asn") {
        let mut small = serde_json::Map::new();
        for key in ["asn", "name"] {
            if let Some(v) = asn.remove(key) {
                small.insert(key.into(), v);
            }
        }
        kept.insert("asn".into(), Value::Object(small));
    } else if let Some(asn) = full.get("asn") {
        // Not an object: kept as it is, so the mapping notes it as before.
        kept.insert("asn".into(), asn.clone());
    }
    if let Some(Value::Object(mut privacy)) = full.remove("privacy") {
        let mut small = serde_json::Map::new();
        for key in ["vpn", "proxy", "tor", "relay", "hosting", "service"] {
            if let Some(v) = privacy.remove(key) {
                small.insert(key.into(), v);
            }
        }
        kept.insert("privacy".into(), Value::Object(small));
    }
    Value::Object(kept)
}

/// Maps an IPinfo answer for the request's observable.
pub fn map_response(
    request: &EnrichmentRequest,
    body: &Value,
    use_asn_name: bool,
    now: &str,
) -> Mapped {
    let entity_id = request.entity_id.as_str();
    let mut objects = request.stix_objects.clone();
    let mut added = 0;
    let mut notes = Vec::new();

    // Privacy labels: only on the enriched observable, merged with the labels it has.
    let labels = privacy_labels(body);
    if !labels.is_empty()
        && let Some(obj) = objects
            .iter_mut()
            .find(|o| o.get("id").and_then(Value::as_str) == Some(entity_id))
    {
        let mut merged: Vec<Value> = obj
            .get("labels")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for l in &labels {
            if !merged.iter().any(|m| m.as_str() == Some(l)) {
                merged.push(json!(l));
            }
        }
        obj["labels"] = Value::Array(merged);
        added += 1;
    }

    if let Some((number, name)) = autonomous_system(body, use_asn_name) {
        let asys = AutonomousSystem::new(number, Some(name));
        let rel = Relationship::new("belongs-to", entity_id, &asys.id, now);
        objects.push(to_object(&asys));
        objects.push(to_object(&rel));
        added += 2;
    } else if body.get("asn").is_some() || body.get("org").is_some() {
        notes.push("no AS number in `asn`/`org`".to_string());
    }

    let country = match body.get("country").and_then(Value::as_str) {
        Some(code) => match countries::lookup(code) {
            Some(c) => Some(c),
            None => {
                notes.push(format!(
                    "IpInfo was not able to find a country for the code `{code}`"
                ));
                None
            }
        },
        None => {
            notes.push("no country in the answer".to_string());
            None
        }
    };
    let country_loc = country.map(|(name, official)| {
        let mut loc = Location::new(name, "Country", now);
        loc.country = Some(official.to_string());
        loc.x_opencti_aliases = Some(vec![official.to_string()]);
        loc
    });
    let city_loc = match body.get("city").and_then(Value::as_str).map(str::trim) {
        Some(city) if !city.is_empty() => {
            let mut loc = Location::new(city, "City", now);
            match coordinates(body) {
                Some((lat, lon)) => {
                    loc.latitude = Some(lat);
                    loc.longitude = Some(lon);
                }
                None => notes.push("no usable `loc` coordinates".to_string()),
            }
            loc.country = country.map(|(_, official)| official.to_string());
            Some(loc)
        }
        _ => None,
    };

    if let Some(c) = &country_loc {
        objects.push(to_object(c));
        added += 1;
    }
    if let Some(city) = &city_loc {
        objects.push(to_object(city));
        added += 1;
        if let Some(c) = &country_loc {
            objects.push(to_object(&Relationship::new(
                "located-at",
                &city.id,
                &c.id,
                now,
            )));
        }
        objects.push(to_object(&Relationship::new(
            "located-at",
            entity_id,
            &city.id,
            now,
        )));
    }
    if let Some(c) = &country_loc {
        objects.push(to_object(&Relationship::new(
            "located-at",
            entity_id,
            &c.id,
            now,
        )));
    }
    Mapped {
        objects,
        added,
        notes,
    }
}
