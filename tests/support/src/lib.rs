//! What the integration tests (`tests/it`) and the end-to-end benchmark (`benches/e2e.rs`)
//! share: a fake OpenCTI on the real RabbitMQ that validates every operation against the
//! platform schema, the fixtures under `../shared/` and `tests/fixtures/` and the
//! environments enabling the registry's connectors, and the entities and listen messages the
//! platform sends.
//!
//! A crate of its own (a dev-dependency, never published) so that each user takes what it
//! needs without `dead_code` allowances.

pub mod fake_opencti;
mod messages;
mod schema;

pub use fake_opencti::FakeOpencti;
pub use messages::{
    GREEN, IP, IP_ID, RED, add_entity, add_ip_entity, ip_stix, listen_message, manual_message,
    playbook_message,
};
pub use opencti_connectors::fixtures::{
    OPENCTI_ENV, constructed, constructed_json, every_connector_env, fixture, fixture_json, shared,
    upstreams_at,
};
pub use schema::{schema, schema_7x, schema_for};

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
