//! The connector contract: the traits a connector implements, [`ConnectorError`] with the one
//! classifier of upstream failures, and [`Outcome`]; [`BuildContext`] (`build.rs`), what
//! building one is handed; and the list of connectors, which [`crate::registry`] reads.
//!
//! A connector is a thin mapping from an upstream answer to STIX objects. The runtime owns
//! everything else: registration, pings, the queue, the TLP gate, work reporting, sending.

mod build;

/// Declares each connector's module, and `with_connectors!`, which hands the list to a macro
/// of the caller's (the registry's): `with_connectors!(registry)` is `registry! { ipinfo:
/// ipinfo::IpinfoConfig, … }`.
macro_rules! connectors {
    ($($section:ident: $config:ident),+ $(,)?) => {
        $(pub mod $section;)+

        macro_rules! with_connectors {
            ($callback:ident) => {
                $callback! { $($section: $crate::connectors::$section::$config),+ }
            };
        }
        pub(crate) use with_connectors;
    };
}

// Every connector, in README order: its directory's name and its section's type. Adding a
// connector is its directory plus one line here.
connectors! {
    ipinfo: IpinfoConfig,
    ipsum: IpsumConfig,
    riskiq: RiskiqConfig,
    lastinfosec: LastinfosecConfig,
    ivre: IvreConfig,
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Checks, ConnectorBlock, SectionSpec};
use crate::stix::{ObjectMarking, Tlp};
use crate::upstream::http::UpstreamError;

pub use build::{BuildContext, BuildError};

/// A connector's section of the configuration (`ipinfo:` in the YAML file).
pub trait ConnectorConfig:
    DeserializeOwned + Default + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The section's shape: its name, kind, defaults and keys.
    fn spec() -> &'static SectionSpec;
    /// `enabled` and the common `connector` block.
    fn base(&self) -> (bool, &ConnectorBlock);
    /// Checks beyond types, each naming its key (relative to the section).
    fn check(&self, checks: &mut Checks);
    /// Builds the connector; fallible setup (clients, URLs) happens here, at start-up.
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError>;
    /// The base URLs the connector calls (what `check-config --online` routes).
    fn upstream_urls(&self) -> Vec<String>;
    /// The proxies of the connector's calls: the daemon's unless the section has its own.
    fn proxies(
        &self,
        global: &crate::upstream::http::Egress,
    ) -> Result<crate::upstream::http::Proxies, String> {
        Ok(global.proxies.clone())
    }
}

/// What the runtime should do with a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Transient (408, 429, 5xx, timeout): retry with backoff, then fail the work.
    #[error("{message}")]
    Retryable {
        message: String,
        /// The upstream's `Retry-After`: wait at least this long before the next attempt.
        retry_after: Option<Duration>,
    },
    /// Bad input or not found: report on the work and move on.
    #[error("{0}")]
    Rejected(String),
    /// Wrong credentials or settings (401/403): report, log at ERROR, keep serving.
    #[error("{0}")]
    Misconfigured(String),
}

impl ConnectorError {
    /// A transient failure with no `Retry-After`.
    pub fn retryable(message: impl Into<String>) -> Self {
        ConnectorError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// The one classifier of upstream failures; `message` is the connector's own wording.
    ///
    /// - 408, 429, 5xx and transport failures (timeouts included) are retryable, honouring
    ///   `Retry-After`;
    /// - 401 and 403 mean the credentials or settings are wrong;
    /// - anything else (other statuses, an answer that is not JSON or too large, a request
    ///   that cannot be built, an answer the memory budget cannot hold) is rejected.
    pub fn from_upstream(error: &UpstreamError, message: impl Into<String>) -> Self {
        let message = message.into();
        match error {
            UpstreamError::Status {
                status: 401 | 403, ..
            } => ConnectorError::Misconfigured(message),
            UpstreamError::Status {
                status: 408 | 429 | 500..=599,
                retry_after,
                ..
            } => ConnectorError::Retryable {
                message,
                retry_after: *retry_after,
            },
            UpstreamError::Transport(_) => ConnectorError::retryable(message),
            UpstreamError::Memory(error) => error.clone().into(),
            UpstreamError::Status { .. }
            | UpstreamError::NotJson(_)
            | UpstreamError::TooLarge { .. }
            | UpstreamError::Request(_) => ConnectorError::Rejected(message),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectorError::Retryable { .. })
    }
}

/// A charge the memory budget refused: rejected with its own words, which name the setting
/// (a request that waited in vain is given back by the runtime, which knows it starved).
impl From<crate::memory::MemoryError> for ConnectorError {
    fn from(error: crate::memory::MemoryError) -> Self {
        ConnectorError::Rejected(error.to_string())
    }
}

/// One enrichment request, resolved by the runtime.
#[derive(Debug, Clone, Default)]
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

    /// The entity's STIX `type` (`ipv4-addr`), empty when it has none.
    pub fn stix_type(&self) -> &str {
        self.stix_entity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
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
    /// The same, the objects already serialised (large answers: no `Value` per object).
    Prepared {
        objects: Vec<crate::opencti::prepared::Prepared>,
        message: MessageFn,
    },
    /// Nothing to send; finish the work with this message.
    Done(String),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Bundle { objects, .. } => write!(f, "Bundle({} objects)", objects.len()),
            Outcome::Prepared { objects, .. } => {
                write!(f, "Prepared({} objects)", objects.len())
            }
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

    /// One cheap upstream call that shows the configured URL and key work
    /// (`check-config --online`), never through the cache; says what it saw.
    async fn check_upstream(&self) -> Result<String, ConnectorError>;
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
    /// The same for objects already serialised (large imports): the same bundles, without a
    /// `Value` per object.
    async fn send_prepared(
        &mut self,
        objects: Vec<crate::opencti::prepared::Prepared>,
    ) -> Result<usize, ConnectorError>;
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

    /// One cheap upstream call that shows the configured source answers
    /// (`check-config --online`); says what it saw.
    async fn check_upstream(&self) -> Result<String, ConnectorError>;

    /// The same importer reading another feed (`import --feed`); an importer with no such
    /// notion says so.
    fn with_source(&self, source: &FeedSource) -> Result<Arc<dyn ImportConnector>, String> {
        let _ = source;
        Err("this importer reads only its configured source (no --feed)".into())
    }
}

/// Where a one-shot import reads its feed instead of the configured source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSource {
    /// A URL, in place of `api_base_url`.
    Url(String),
    /// A local copy of the feed.
    File(std::path::PathBuf),
}

/// A built connector, ready for the runtime.
#[derive(Clone)]
pub enum Hosted {
    Enrichment(Arc<dyn EnrichmentConnector>),
    Import(Arc<dyn ImportConnector>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> UpstreamError {
        UpstreamError::Status {
            status,
            reason: String::new(),
            body: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn the_classifier_retries_transient_failures_only() {
        let class = |e: &UpstreamError| ConnectorError::from_upstream(e, "m");
        for transient in [408, 429, 500, 502, 503, 504, 599] {
            assert!(
                class(&status(transient, None)).is_retryable(),
                "{transient}"
            );
        }
        assert!(class(&UpstreamError::Transport("timed out".into())).is_retryable());
        for credentials in [401, 403] {
            assert_eq!(
                class(&status(credentials, None)),
                ConnectorError::Misconfigured("m".into())
            );
        }
        for permanent in [400, 404, 409, 422] {
            assert_eq!(
                class(&status(permanent, None)),
                ConnectorError::Rejected("m".into())
            );
        }
        for permanent in [
            UpstreamError::NotJson("x".into()),
            UpstreamError::TooLarge { limit: 1 },
            UpstreamError::Request("bad header".into()),
        ] {
            assert_eq!(class(&permanent), ConnectorError::Rejected("m".into()));
        }
    }

    #[test]
    fn the_classifier_keeps_retry_after() {
        assert_eq!(
            ConnectorError::from_upstream(&status(429, Some(7)), "slow down"),
            ConnectorError::Retryable {
                message: "slow down".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
    }
}
