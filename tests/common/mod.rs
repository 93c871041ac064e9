//! Shared test support: fixture paths, the platform schema, a fake OpenCTI, broker helpers.
#![allow(dead_code)]

pub mod fake_opencti;

use std::sync::OnceLock;

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;

/// Path of a file under `../shared/`.
pub fn shared(path: &str) -> String {
    format!("{}/../shared/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The platform's merged GraphQL schema, parsed and validated once.
pub fn schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text =
            std::fs::read_to_string(shared("spec/opencti-merged.graphql")).expect("merged schema");
        Schema::parse_and_validate(text, "opencti-merged.graphql")
            .expect("the merged schema validates")
    })
}
