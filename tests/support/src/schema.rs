//! The platform's GraphQL schemas (`../shared/spec/`), parsed and validated once.

use std::sync::OnceLock;

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;
use opencti_connectors::opencti::Dialect;

use crate::shared;

/// The platform's merged GraphQL schema (6.8.10), parsed and validated once.
pub fn schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| load_schema("opencti-merged.graphql"))
}

/// The 6.8.10 merged schema with the 7.x connector definitions in place, parsed once.
pub fn schema_7x() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| load_schema("opencti-merged-7x.graphql"))
}

/// The schema a platform answering `about.version` = `version` validates against.
pub fn schema_for(version: &str) -> &'static Valid<Schema> {
    match Dialect::of(version) {
        Dialect::V7 => schema_7x(),
        Dialect::V6 => schema(),
    }
}

fn load_schema(name: &str) -> Valid<Schema> {
    let text = std::fs::read_to_string(shared(&format!("spec/{name}")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Schema::parse_and_validate(text, name).unwrap_or_else(|e| panic!("{name} validates: {e}"))
}
