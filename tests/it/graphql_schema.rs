//! Every operation text the client can send validates against the platform's full schema, in
//! each dialect against its own: 6.x against the 6.8.10 merged schema, 7.x against the same
//! schema with the 7.x connector definitions. The registration input is checked field by
//! field too (a variable's fields are not part of the operation text).

use apollo_compiler::Schema;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use opencti_connectors::config::{ConnectorKind, QueueProtocol};
use opencti_connectors::opencti::Dialect;
use opencti_connectors::opencti::dialect::WORK_ADD_MULTIPART;
use opencti_connectors::runtime::register_input;
use serde_json::json;

use crate::common::{enrichment_mode, import_mode, schema, schema_7x, settings};

fn validates(schema: &Valid<Schema>, op: &str) -> Result<(), String> {
    apollo_compiler::ExecutableDocument::parse_and_validate(schema, op, "op.graphql")
        .map(drop)
        .map_err(|e| e.errors.to_string())
}

#[test]
fn every_client_operation_validates_against_the_merged_schema() {
    for op in Dialect::V6.operations() {
        if let Err(errors) = validates(schema(), op) {
            panic!("operation does not validate against 6.8.10:\n{op}\n{errors}");
        }
    }
}

#[test]
fn every_7x_operation_validates_against_the_7x_schema() {
    for op in Dialect::V7.operations() {
        if let Err(errors) = validates(schema_7x(), op) {
            panic!("operation does not validate against 7.x:\n{op}\n{errors}");
        }
    }
}

#[test]
fn the_6x_operations_validate_against_the_7x_schema_too() {
    // Spoken to a 7.x platform whose version is not known yet.
    for op in Dialect::V6.operations() {
        if let Err(errors) = validates(schema_7x(), op) {
            panic!("6.x operation refused by 7.x:\n{op}\n{errors}");
        }
    }
}

#[test]
fn a_6_8_platform_refuses_the_7x_work_add() {
    assert!(validates(schema(), WORK_ADD_MULTIPART).is_err());
}

#[test]
fn the_validator_rejects_a_wrong_operation() {
    let schema = crate::common::schema();
    let bad = "mutation { registerConnector(input: {id: \"x\", name: \"n\", type: INTERNAL_ENRICHMENT, nope: 1}) { id } }";
    assert!(
        apollo_compiler::ExecutableDocument::parse_and_validate(schema, bad, "bad.graphql")
            .is_err()
    );
}

/// The fields of `RegisterConnectorInput` in `schema`.
fn register_fields(schema: &Valid<Schema>) -> Vec<String> {
    match schema.types.get("RegisterConnectorInput") {
        Some(ExtendedType::InputObject(def)) => def.fields.keys().map(|k| k.to_string()).collect(),
        _ => panic!("no RegisterConnectorInput"),
    }
}

#[test]
fn each_dialect_registers_with_fields_its_schema_knows() {
    let (v6_fields, v7_fields) = (register_fields(schema()), register_fields(schema_7x()));
    for spec in opencti_connectors::registry::specs() {
        let key = spec.section;
        let mode = match spec.kind {
            ConnectorKind::Import { .. } => import_mode(std::time::Duration::from_secs(60)),
            ConnectorKind::Enrichment { .. } => enrichment_mode(),
        };
        let s = settings(key, mode, QueueProtocol::Amqp);
        for (dialect, fields) in [(Dialect::V6, &v6_fields), (Dialect::V7, &v7_fields)] {
            let input = serde_json::to_value(register_input(&s, dialect)).unwrap();
            for name in input.as_object().unwrap().keys() {
                assert!(fields.contains(name), "{key} {dialect:?}: {name}");
            }
        }
        let v7 = serde_json::to_value(register_input(&s, Dialect::V7)).unwrap();
        assert!(
            v7.as_object()
                .unwrap()
                .keys()
                .any(|k| !v6_fields.contains(k)),
            "6.8 refuses the 7.x input: the dialect matters"
        );
        assert_eq!(v7["version"], env!("CARGO_PKG_VERSION"));
        // The official image's slug; none (null, as pycti) for a connector of the daemon's own.
        assert_eq!(v7["slug"], json!(spec.official.map(|o| o.image)), "{key}");
    }
}

#[test]
fn the_6x_registration_input_is_unchanged() {
    let s = settings("ipinfo", enrichment_mode(), QueueProtocol::Amqp);
    let input = serde_json::to_string(&register_input(&s, Dialect::V6)).unwrap();
    let expected = json!({
        "id": s.id.to_string(),
        "name": "Test ipinfo",
        "type": "INTERNAL_ENRICHMENT",
        "scope": ["IPv4-Addr"],
        "auto": false,
        "auto_update": false,
        "enrichment_resolution": "none",
        "only_contextual": false,
        "playbook_compatible": true,
        "listen_callback_uri": null,
    });
    assert_eq!(
        input,
        expected.to_string(),
        "byte for byte, key order included"
    );
    let v7 = serde_json::to_value(register_input(&s, Dialect::V7)).unwrap();
    assert_eq!(v7["slug"], "ipinfo");
    let unknown = settings("importer", enrichment_mode(), QueueProtocol::Amqp);
    let v7 = serde_json::to_value(register_input(&unknown, Dialect::V7)).unwrap();
    assert!(
        v7["slug"].is_null() && v7.get("slug").is_some(),
        "null, as pycti: {v7}"
    );
}
