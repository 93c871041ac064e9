//! __Title__'s answer on the observable: its score, labels and description. Pure: no I/O, so
//! every rule is tested without a server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What __Title__ says of a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Found {
    /// 0 (harmless) to 100 (malicious); out-of-range values are clamped.
    pub score: Option<i64>,
    pub tags: Vec<String>,
    pub description: Option<String>,
}

/// The request's objects with the entity `entity_id` carrying what `found` says: its score,
/// its tags added to its labels (kept once each), its description when it has none. The
/// other objects (its markings) go as they came.
pub fn enriched(objects: &[Value], entity_id: &str, found: &Found) -> Vec<Value> {
    objects
        .iter()
        .map(|object| {
            if object.get("id").and_then(Value::as_str) != Some(entity_id) {
                return object.clone();
            }
            let mut object = object.clone();
            if let Some(score) = found.score {
                object["x_opencti_score"] = score.clamp(0, 100).into();
            }
            let mut labels: Vec<Value> = object
                .get("labels")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for tag in found.tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
                if !labels.iter().any(|l| l.as_str() == Some(tag)) {
                    labels.push(tag.into());
                }
            }
            if !labels.is_empty() {
                object["labels"] = Value::Array(labels);
            }
            if let Some(description) = &found.description
                && object.get("x_opencti_description").is_none()
            {
                object["x_opencti_description"] = description.as_str().into();
            }
            object
        })
        .collect()
}
