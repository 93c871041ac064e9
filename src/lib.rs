//! opencti-connectors: one daemon hosting OpenCTI connectors.
//!
//! - [`config`]: the leaf: shared blocks, value types, the key table, the YAML + env loader.
//! - [`registry`]: the top-level [`registry::Config`], the one list of connectors, validation
//!   and [`registry::build_all`].
//! - [`stix`]: STIX 2.1 builders, deterministic ids ([`stix::ids`]), TLP markings.
//! - [`opencti`]: the shared GraphQL client, listen messages, the bundle splitter.
//! - [`amqp`]: RabbitMQ connect / consume / publish with confirms.
//! - [`runtime`]: registration, pings and state, the enrichment loop, the import scheduler,
//!   bundle sending, supervision and the two-stage shutdown.
//! - [`connectors`]: the connector contract, and one directory per connector.
//! - [`oneshot`]: `enrich` and `import` without OpenCTI, printing the bundle.
//! - [`memory`]: the process-wide memory budget every request's large buffers are charged to.
//! - [`migrate`]: the official connectors' compose files → `config.yml` + an env file; it
//!   holds what the daemon knows of the official images.
//! - [`dropin`]: `run --as <connector>`, the daemon in place of one official image, and the
//!   integration manager's catalog of those images.
//! - [`upstream`]: the connectors' upstream plumbing: the HTTP client and egress
//!   ([`upstream::http`]), the answer cache ([`upstream::cache`]), the per-connector gate
//!   ([`upstream::ratelimit`]: token bucket, 429 pauses); also at their old paths.
//! - [`generate`]: the files, or parts of files, written from the registry (`scripts/regenerate`):
//!   the README's key table, the sample configuration's sections, the deployment files' lists.
//! - [`health`], [`metrics`]: `/healthz` and `/metrics`.
//! - [`shutdown`]: signals → cancellation.

pub mod amqp;
pub mod config;
pub mod connectors;
pub mod dropin;
pub mod generate;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod migrate;
pub mod oneshot;
pub mod online;
pub mod opencti;
pub mod registry;
pub mod runtime;
pub mod shutdown;
pub mod stix;
pub mod upstream;

// The tests and benches name them here.
pub use upstream::{cache, http, ratelimit};

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
