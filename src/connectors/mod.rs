//! The connector contract and the registry of hosted connectors.
//!
//! A connector is a thin mapping from an upstream answer to STIX objects. The runtime owns
//! everything else: registration, pings, the queue, the TLP gate, work reporting, sending.

pub mod ipinfo;
pub mod ipsum;
pub mod ivre;
pub mod lastinfosec;
pub mod riskiq;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::config::{Config, ConfigError, ConnectorSettings, SectionSpec};
use crate::stix::{ObjectMarking, Tlp};

/// Every connector section the config knows, in README order.
pub const SECTIONS: &[&SectionSpec] = &[
    &ipinfo::SPEC,
    &ipsum::SPEC,
    &riskiq::SPEC,
    &lastinfosec::SPEC,
    &ivre::SPEC,
];

/// The accessors every section implements the same way: its `SPEC`, its `enabled` flag and
/// its `connector` block.
#[macro_export]
macro_rules! section_accessors {
    ($spec:ident) => {
        fn spec(&self) -> &'static $crate::config::SectionSpec {
            &$spec
        }
        fn enabled(&self) -> bool {
            self.enabled
        }
        fn connector(&self) -> &$crate::config::ConnectorBlock {
            &self.connector
        }
    };
}

/// A connector section of the config: what the registry needs of it.
pub trait Section {
    fn spec(&self) -> &'static SectionSpec;
    fn enabled(&self) -> bool;
    fn connector(&self) -> &crate::config::ConnectorBlock;
    /// Checks beyond types; errors name the key.
    fn validate(&self) -> Vec<String>;
    /// Builds the connector (fallible setup happens here, at start-up).
    fn build(&self) -> Result<(ConnectorSettings, Hosted), Vec<String>>;
}

/// What the runtime should do with a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Transient (429, 5xx, timeout): retry with backoff, then fail the work.
    #[error("{0}")]
    Retryable(String),
    /// Bad input or not found: report on the work and move on.
    #[error("{0}")]
    Rejected(String),
    /// Wrong credentials or settings (401/403): report, log at ERROR, keep serving.
    #[error("{0}")]
    Misconfigured(String),
}

/// One enrichment request, resolved by the runtime.
#[derive(Debug, Clone)]
pub struct EnrichmentRequest {
    /// STIX standard id of the entity.
    pub entity_id: String,
    /// OpenCTI entity type (`IPv4-Addr`), when known.
    pub entity_type: Option<String>,
    /// OpenCTI internal id of the entity, when read.
    pub internal_id: Option<String>,
    /// Platform-computed display value (`observable_value`).
    pub observable_value: Option<String>,
    /// The entity as STIX 2.1.
    pub stix_entity: Value,
    /// The entity and the objects it depends on (its markings); a playbook's whole bundle.
    pub stix_objects: Vec<Value>,
    /// The entity's markings as OpenCTI returned them.
    pub markings: Vec<ObjectMarking>,
    /// True for a playbook step (the answer goes back to the playbook).
    pub playbook: bool,
}

impl EnrichmentRequest {
    /// The entity's `value` property, if it has one.
    pub fn value(&self) -> Option<&str> {
        self.stix_entity.get("value").and_then(Value::as_str)
    }
}

/// Builds the work message from the number of bundles sent.
pub type MessageFn = Box<dyn Fn(usize) -> String + Send + Sync>;

/// What an enrichment produced.
pub enum Outcome {
    /// Send these objects (the request's `stix_objects` plus additions) as one bundle.
    Bundle {
        objects: Vec<Value>,
        message: MessageFn,
    },
    /// Nothing to send; finish the work with this message.
    Done(String),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Bundle { objects, .. } => write!(f, "Bundle({} objects)", objects.len()),
            Outcome::Done(m) => write!(f, "Done({m:?})"),
        }
    }
}

/// The pycti connectors' usual success message.
pub fn sent_message(n: usize) -> String {
    format!("Sent {n} stix bundle(s) for worker import")
}

/// An INTERNAL_ENRICHMENT connector.
#[async_trait]
pub trait EnrichmentConnector: Send + Sync {
    /// The highest TLP whose entities may be sent upstream; `None` means no restriction.
    fn max_tlp(&self) -> Option<Tlp>;

    /// The work error when the entity's TLP is above `max_tlp`.
    fn tlp_refused_message(&self) -> String {
        "Do not send any data, TLP of the observable is greater than MAX TLP".into()
    }

    /// Looks the entity up upstream and maps the answer to STIX.
    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError>;
}

/// What a scheduled import run can do with the runtime.
#[async_trait]
pub trait ImportContext: Send {
    /// The connector state from the last successful run (`None` when empty).
    fn state(&self) -> Option<Value>;
    /// Replaces the state; persisted after the run succeeds.
    fn set_state(&mut self, state: Value);
    /// Sends one chunk of objects under the run's work; returns the bundles sent.
    async fn send(&mut self, objects: Vec<Value>) -> Result<usize, ConnectorError>;
}

/// An EXTERNAL_IMPORT connector run on a schedule.
#[async_trait]
pub trait ImportConnector: Send + Sync {
    /// The name of each run's work; `None` gives `<connector name> run @ <time>`.
    fn work_name(&self) -> Option<String> {
        None
    }

    /// One run; returns the work message.
    async fn run(&self, ctx: &mut dyn ImportContext) -> Result<String, ConnectorError>;
}

/// A built connector, ready for the runtime.
#[derive(Clone)]
pub enum Hosted {
    Enrichment(Arc<dyn EnrichmentConnector>),
    Import(Arc<dyn ImportConnector>),
}

/// Names of the enabled sections.
pub fn enabled_sections(config: &Config) -> Vec<&'static str> {
    config
        .sections()
        .into_iter()
        .filter(|s| s.enabled())
        .map(|s| s.spec().section)
        .collect()
}

/// Section-level validation of every enabled connector.
pub fn validate_sections(config: &Config) -> Vec<String> {
    config
        .sections()
        .into_iter()
        .filter(|s| s.enabled())
        .flat_map(|s| s.validate())
        .collect()
}

/// Builds every enabled connector; fails at start-up on anything wrong.
pub fn build_all(config: &Config) -> Result<Vec<(ConnectorSettings, Hosted)>, ConfigError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for section in config.sections().into_iter().filter(|s| s.enabled()) {
        match section.build() {
            Ok(built) => out.push(built),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError::Many(errors))
    }
}
