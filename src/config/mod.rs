//! Configuration, the leaf every other module builds on: the shared blocks (`opencti`, `log`,
//! `mq`, `daemon`), small value types, the connector block every section shares, the key
//! table and a generic YAML + environment loader. It names no connector: each connector owns
//! its section, and [`crate::registry`] puts them together.
//!
//! Environment names follow one rule, `<SECTION>_<KEY>` upper-cased with nested keys joined
//! by `_` (`IPINFO_CONNECTOR_ID`); some keys also accept the Python connectors' own names.

pub mod connector;
pub mod defaults;
pub mod files;
pub mod keys;
pub mod limits;
pub mod loader;
pub mod tlp;
pub mod types;

use serde::Deserialize;

pub use connector::{Checks, ConnectorBlock, ConnectorSettings, Mode, is_http_url};
pub use keys::{ConnectorKind, KeyDef, KeySpec, Kind, OfficialImage, SectionSpec};
pub use types::{
    IsoDuration, LogFormat, QueueProtocol, Scope, Secret, TlpLevel, TlpSetting, UrlSetting,
    parse_bool,
};

/// The official files' stand-in for a value to fill (`ChangeMe`): a required secret or the
/// OpenCTI token set to it counts as unset.
pub const PLACEHOLDER: &str = "ChangeMe";

/// The shortest ping interval accepted (the key table's range starts there).
pub const MIN_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A configuration error; the message names the key and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file is not valid YAML: {0}")]
    Yaml(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Many(Vec<String>),
}

/// How to reach OpenCTI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenctiConfig {
    /// Base URL; GraphQL is at `<url>/graphql`.
    pub url: Option<UrlSetting>,
    /// API token of the connector user.
    pub token: Option<Secret>,
    /// Verify the platform's TLS certificate.
    pub ssl_verify: bool,
    /// GraphQL answers larger than this are refused.
    pub max_answer_bytes: u64,
    /// How long one GraphQL call may take.
    pub request_timeout: IsoDuration,
}

impl Default for OpenctiConfig {
    fn default() -> Self {
        OpenctiConfig {
            url: None,
            token: None,
            ssl_verify: true,
            max_answer_bytes: limits::DEFAULT_MAX_ANSWER_BYTES as u64,
            request_timeout: IsoDuration(limits::DEFAULT_REQUEST_TIMEOUT),
        }
    }
}

/// TLS settings shared by every HTTP client and by amqps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// A PEM bundle of extra CA certificates to trust (a private CA).
    pub ca_file: Option<String>,
    /// PEM text of extra CA certificates (`HTTPS_CA_CERTIFICATES`, as the integration
    /// manager passes it).
    pub ca_certificates: Option<String>,
}

/// The proxies of every HTTP client (see [`crate::upstream::http::proxy`]); URLs may carry
/// credentials, so they are held as secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// The proxy of `http://` targets.
    pub http_proxy: Option<Secret>,
    /// The proxy of `https://` targets (a CONNECT tunnel).
    pub https_proxy: Option<Secret>,
    /// The proxy of either, when its own is unset.
    pub all_proxy: Option<Secret>,
    /// Hosts, domains, IP addresses and CIDR blocks that go direct (`*`: all).
    pub no_proxy: Option<String>,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level or a tracing filter.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Overrides of the broker details OpenCTI returns at registration (pycti's `MQ_*`), and
/// what the daemon must know of the broker's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub vhost: Option<String>,
    pub use_ssl: Option<bool>,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    /// The broker's `consumer_timeout`: a message unacked longer makes it close the channel.
    pub consumer_timeout: IsoDuration,
}

/// RabbitMQ's default `consumer_timeout` (30 minutes).
pub const DEFAULT_CONSUMER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

impl Default for MqConfig {
    fn default() -> Self {
        MqConfig {
            host: None,
            port: None,
            vhost: None,
            use_ssl: None,
            user: None,
            pass: None,
            consumer_timeout: IsoDuration(DEFAULT_CONSUMER_TIMEOUT),
        }
    }
}

/// The longest a message is held unacked for a broker `consumer_timeout`: five sixths of it
/// (25 minutes of RabbitMQ's default 30), well before the broker would close the channel
/// and requeue the whole prefetch.
pub fn hold_limit(consumer_timeout: std::time::Duration) -> std::time::Duration {
    consumer_timeout / 6 * 5
}

/// Daemon-wide timings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Interval between pings.
    pub ping_interval: IsoDuration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: IsoDuration,
    /// Address of the health and metrics endpoint; empty disables it.
    pub listen: String,
    /// Upstream answers larger than this are refused.
    pub max_upstream_bytes: u64,
    /// How long transient OpenCTI failures inside one message or run are retried.
    pub max_retry_duration: IsoDuration,
    /// Whether importers take the import lock on RabbitMQ (one scheduler across replicas).
    pub import_lock: bool,
    /// The process's memory budget, bytes; derived from the cgroup limit when unset.
    pub memory_budget: Option<u64>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            ping_interval: IsoDuration(std::time::Duration::from_secs(40)),
            shutdown_timeout: IsoDuration(std::time::Duration::from_secs(30)),
            listen: "0.0.0.0:9095".into(),
            max_upstream_bytes: limits::DEFAULT_MAX_UPSTREAM_BYTES as u64,
            max_retry_duration: IsoDuration(std::time::Duration::from_secs(600)),
            import_lock: true,
            memory_budget: None,
        }
    }
}

/// Checks of the shared blocks; with `connectors_enabled`, OpenCTI's url and token are
/// required.
pub fn check_shared(
    opencti: &OpenctiConfig,
    log: &LogConfig,
    daemon: &DaemonConfig,
    mq: &MqConfig,
    connectors_enabled: bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    let hold = hold_limit(mq.consumer_timeout.0);
    // A message's handling and the report of its outcome each have the retry budget; both
    // must fit before the message is given back.
    if daemon.max_retry_duration.0.saturating_mul(2) > hold {
        errors.push(format!(
            "daemon.max_retry_duration (env DAEMON_MAX_RETRY_DURATION): {} does not fit under mq.consumer_timeout (env MQ_CONSUMER_TIMEOUT) {}: a message is given back after 5/6 of the consumer timeout, and twice the retry budget (the handling, then the report of its outcome) must fit in that; expected at most {} s, or a longer consumer timeout",
            daemon.max_retry_duration,
            mq.consumer_timeout,
            (hold / 2).as_secs()
        ));
    }

    if !daemon.listen.is_empty() && daemon.listen.parse::<std::net::SocketAddr>().is_err() {
        errors.push(format!(
            "daemon.listen (env DAEMON_LISTEN): `{}` is not an address such as 0.0.0.0:9095",
            daemon.listen
        ));
    }
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
        errors.push(format!(
            "log.level: `{}` is not a level or tracing filter; expected e.g. info or debug",
            log.level
        ));
    }
    if connectors_enabled {
        match &opencti.url {
            None => errors
                .push("opencti.url (env OPENCTI_URL): required when a connector is enabled".into()),
            Some(url) if !is_http_url(url) => errors.push(format!(
                "opencti.url (env OPENCTI_URL): `{url}` is not an http(s) URL"
            )),
            Some(_) => {}
        }
        match &opencti.token {
            Some(t) if !t.is_blank() && t.expose() != PLACEHOLDER => {}
            _ => errors.push("opencti.token (env OPENCTI_TOKEN): required when a connector is enabled (not empty, not ChangeMe)".into()),
        }
    }
    errors
}

#[cfg(test)]
mod tests;
