//! What the platform knows and sends: entities as `stixCoreObject` answers them, their STIX,
//! and the listen messages of enrichment requests and playbook steps.

use serde_json::{Value, json};

use crate::FakeOpencti;

/// The observable most tests enrich, and its standard id.
pub const IP: &str = "8.8.8.8";
/// The standard id of [`IP`].
pub const IP_ID: &str = "ipv4-addr--2f689bf9-0ff2-545f-aa61-e495eb8cecc7";
/// TLP:GREEN's standard id.
pub const GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
/// TLP:RED's standard id.
pub const RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";

/// Registers an entity in the fake as `stixCoreObject` answers it: its standard id, internal
/// id, OpenCTI type, markings (`objectMarking`) and display value.
pub fn add_entity(
    fake: &FakeOpencti,
    standard_id: &str,
    internal_id: &str,
    entity_type: &str,
    markings: Value,
    observable_value: Option<&str>,
) {
    fake.state.lock().unwrap().entities.insert(
        standard_id.into(),
        json!({
            "id": internal_id,
            "standard_id": standard_id,
            "entity_type": entity_type,
            "parent_types": ["Basic-Object", "Stix-Object", "Stix-Core-Object", "Stix-Cyber-Observable"],
            "objectMarking": markings,
            "observable_value": observable_value,
        }),
    );
}

/// Registers the entity `8.8.8.8` (TLP marking `marking`) in the fake.
pub fn add_ip_entity(fake: &FakeOpencti, tlp: &str, marking_id: &str) {
    add_entity(
        fake,
        IP_ID,
        "2a6b1c5e-0000-4000-8000-000000000001",
        "IPv4-Addr",
        json!([{"id": "m-1", "standard_id": marking_id, "definition_type": "TLP", "definition": tlp, "x_opencti_order": 2}]),
        Some(IP),
    );
}

/// The platform's STIX for the entity.
pub fn ip_stix(marking_id: &str) -> Value {
    json!({"id": IP_ID, "spec_version": "2.1", "type": "ipv4-addr", "value": IP, "object_marking_refs": [marking_id],
           "extensions": {"extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba": {"id": "2a6b1c5e-0000-4000-8000-000000000001", "type": "IPv4-Addr"}}})
}

/// An enrichment request for `entity` as OpenCTI 6.8.10 queues it: `manual` from the UI,
/// `auto` when triggered by a creation. The entity travels as `stix_entity`.
pub fn listen_message(work_id: &str, entity: &Value, mode: &str) -> Vec<u8> {
    let trigger = if mode == "auto" { "create" } else { "update" };
    json!({
        "internal": {"work_id": work_id, "applicant_id": null, "draft_id": null, "mode": mode, "trigger": trigger},
        "event": {"event_type": "INTERNAL_ENRICHMENT", "entity_id": entity["id"],
                  "stix_entity": entity.to_string(), "stix_objects": null}
    })
    .to_string()
    .into_bytes()
}

/// A manual enrichment request for `entity`.
pub fn manual_message(work_id: &str, entity: &Value) -> Vec<u8> {
    listen_message(work_id, entity, "manual")
}

/// A playbook step message carrying `objects`.
pub fn playbook_message(objects: Vec<Value>) -> Vec<u8> {
    json!({
        "internal": {"work_id": null, "applicant_id": "c49fe040-2dad-412d-af07-ce639204ad55", "trigger": "create", "mode": "auto",
            "playbook": {"event_id": "1700000000000-0", "execution_id": "4c1b2e0e-1111-4111-8111-111111111111", "playbook_id": "pb-1",
                         "data_instance_id": IP_ID, "step_id": "step-2", "previous_step_id": "step-1"}},
        "event": {"entity_id": IP_ID, "bundle": {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "spec_version": "2.1", "objects": objects}}
    })
    .to_string()
    .into_bytes()
}
