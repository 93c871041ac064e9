//! Listen-queue messages (platform → connector), spec §4.3 and §4.6. Fields that only exist
//! since 6.8.9 are optional; `stix_entity` / `stix_objects` arrive as JSON strings.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One message from the listen queue.
#[derive(Debug, Clone, Deserialize)]
pub struct ListenMessage {
    pub internal: Internal,
    pub event: Event,
}

/// `internal`: work tracking, draft, playbook.
#[derive(Debug, Clone, Deserialize)]
pub struct Internal {
    #[serde(default)]
    pub work_id: Option<String>,
    #[serde(default)]
    pub applicant_id: Option<String>,
    #[serde(default)]
    pub draft_id: Option<String>,
    #[serde(default)]
    pub playbook: Option<PlaybookInfo>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub trigger: Option<String>,
}

/// `internal.playbook` of a playbook step.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaybookInfo {
    pub event_id: String,
    pub execution_id: String,
    pub playbook_id: String,
    pub data_instance_id: String,
    pub step_id: String,
    pub previous_step_id: String,
}

/// `event`.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub entity_id: Option<String>,
    #[serde(default)]
    pub entity_type: Option<String>,
    /// The entity's STIX (sent as a JSON string).
    #[serde(default, deserialize_with = "json_string_or_value")]
    pub stix_entity: Option<Value>,
    /// A bundle (sent as a JSON string) when `enrichment_resolution` is `stix_bundle`.
    #[serde(default, deserialize_with = "json_string_or_value")]
    pub stix_objects: Option<Value>,
    /// A playbook's current bundle (a JSON object).
    #[serde(default)]
    pub bundle: Option<Value>,
}

fn json_string_or_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(v) => Ok(Some(v)),
    }
}

/// Why a message could not be used.
#[derive(Debug, thiserror::Error)]
#[error("malformed listen message: {0}")]
pub struct MalformedMessage(pub String);

impl ListenMessage {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<ListenMessage, MalformedMessage> {
        serde_json::from_slice(body).map_err(|e| MalformedMessage(e.to_string()))
    }

    /// The work id of a body that does not parse as a whole, to report the failure on.
    pub fn salvage_work_id(body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        v.pointer("/internal/work_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The objects of `stix_objects`, whether it is a bundle or a list.
    pub fn provided_objects(&self) -> Option<Vec<Value>> {
        match self.event.stix_objects.as_ref()? {
            Value::Array(a) => Some(a.clone()),
            Value::Object(o) => o.get("objects").and_then(Value::as_array).cloned(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_6_8_10_manual_enrichment() {
        let body = br#"{"internal":{"work_id":"work_1","applicant_id":null,"draft_id":null,"mode":"manual","trigger":"update"},
            "event":{"event_type":"INTERNAL_ENRICHMENT","entity_id":"ipv4-addr--x","entity_type":"IPv4-Addr",
            "stix_entity":"{\"id\":\"ipv4-addr--x\",\"type\":\"ipv4-addr\",\"value\":\"8.8.8.8\"}","stix_objects":null}}"#;
        let m = ListenMessage::parse(body).unwrap();
        assert_eq!(m.internal.work_id.as_deref(), Some("work_1"));
        assert_eq!(m.event.stix_entity.unwrap()["value"], "8.8.8.8");
        assert!(m.event.stix_objects.is_none());
    }

    #[test]
    fn parses_a_pre_6_8_9_message_without_optional_fields() {
        let body = br#"{"internal":{"work_id":"w","applicant_id":null},"event":{"entity_id":"ipv4-addr--x"}}"#;
        let m = ListenMessage::parse(body).unwrap();
        assert!(
            m.event.stix_entity.is_none()
                && m.event.entity_type.is_none()
                && m.internal.playbook.is_none()
        );
    }

    #[test]
    fn parses_a_playbook_step() {
        let body = br#"{"internal":{"work_id":null,"applicant_id":"c49fe040-2dad-412d-af07-ce639204ad55",
            "playbook":{"event_id":"e","execution_id":"x","playbook_id":"p","data_instance_id":"ipv4-addr--x","step_id":"s","previous_step_id":"ps"}},
            "event":{"entity_id":"ipv4-addr--x","bundle":{"type":"bundle","id":"bundle--1","objects":[{"id":"ipv4-addr--x"}]}}}"#;
        let m = ListenMessage::parse(body).unwrap();
        assert!(m.internal.work_id.is_none());
        assert_eq!(m.internal.playbook.unwrap().step_id, "s");
        assert_eq!(m.event.bundle.unwrap()["objects"][0]["id"], "ipv4-addr--x");
    }

    #[test]
    fn stix_objects_may_be_a_bundle_string() {
        let body = br#"{"internal":{"work_id":"w"},"event":{"entity_id":"x","stix_objects":"{\"type\":\"bundle\",\"objects\":[{\"id\":\"a\"}]}"}}"#;
        let m = ListenMessage::parse(body).unwrap();
        assert_eq!(m.provided_objects().unwrap().len(), 1);
    }

    #[test]
    fn rejects_garbage_but_salvages_the_work_id() {
        assert!(ListenMessage::parse(b"not json").is_err());
        let body = br#"{"internal":{"work_id":"w9"},"event":"oops"}"#;
        assert!(ListenMessage::parse(body).is_err());
        assert_eq!(ListenMessage::salvage_work_id(body).as_deref(), Some("w9"));
        assert!(
            ListenMessage::parse(
                br#"{"internal":{"work_id":"w"},"event":{"stix_entity":"{broken"}}"#
            )
            .is_err()
        );
    }
}
