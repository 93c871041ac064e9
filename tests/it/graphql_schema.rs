//! Every operation text the client can send validates against the platform's full schema.

use opencti_connectors::opencti::client::OPERATIONS;

#[test]
fn every_client_operation_validates_against_the_merged_schema() {
    let schema = crate::common::schema();
    for op in OPERATIONS {
        if let Err(errors) =
            apollo_compiler::ExecutableDocument::parse_and_validate(schema, *op, "op.graphql")
        {
            panic!("operation does not validate:\n{op}\n{}", errors.errors);
        }
    }
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
