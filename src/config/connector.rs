//! The `connector` block every section shares, its resolution into the settings the runtime
//! uses, and [`Checks`], which names each key of a section the way every error does.

use std::fmt::Display;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::keys::{ConnectorKind, SectionSpec};
use super::types::{IsoDuration, QueueProtocol, Scope, Secret};

/// pycti's default `connector.queue_threshold`, in MB.
pub const DEFAULT_QUEUE_THRESHOLD: f64 = 500.0;

/// The base connector block of every section (`<section>.connector.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorBlock {
    #[serde(default, deserialize_with = "de_uuid")]
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub scope: Option<Scope>,
    pub auto: Option<bool>,
    pub auto_update: Option<bool>,
    /// Deprecated in OpenCTI 6: accepted and ignored.
    pub confidence_level: Option<u8>,
    pub log_level: Option<String>,
    pub queue_protocol: Option<QueueProtocol>,
    pub concurrency: Option<u16>,
    pub duration_period: Option<IsoDuration>,
    /// Importers: a run is skipped while the push queue holds more than this (MB).
    pub queue_threshold: Option<f64>,
}

fn de_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => Uuid::parse_str(s.trim()).map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{s}` is not a UUID (expected e.g. 2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60)"
            ))
        }),
    }
}

/// How a hosted connector runs: the settings only its kind has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Consumes its listen queue.
    Enrichment {
        auto: bool,
        auto_update: bool,
        playbook_compatible: bool,
        /// Requests processed at once (the queue prefetch).
        concurrency: u16,
    },
    /// Runs every `period`, measured from the end of the previous run, skipping a run while
    /// the push queue holds more than `queue_threshold` MB (pycti's buffering).
    Import {
        period: Duration,
        queue_threshold: f64,
    },
}

/// The resolved identity and behaviour of one hosted connector.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Snake-case service noun (`ipinfo`): module, YAML section and log field.
    pub key: &'static str,
    pub id: Uuid,
    pub name: String,
    pub scope: Vec<String>,
    pub queue_protocol: QueueProtocol,
    pub mode: Mode,
    /// Upstream answers larger than this are refused (`daemon.max_upstream_bytes`).
    pub max_answer_bytes: usize,
}

impl ConnectorSettings {
    /// The OpenCTI `ConnectorType`.
    pub fn connector_type(&self) -> &'static str {
        match self.mode {
            Mode::Enrichment { .. } => "INTERNAL_ENRICHMENT",
            Mode::Import { .. } => "EXTERNAL_IMPORT",
        }
    }
}

impl ConnectorBlock {
    /// Resolves the block with the section's defaults; problems go to `checks`.
    pub fn resolve(&self, spec: &'static SectionSpec, checks: &mut Checks) -> ConnectorSettings {
        let s = spec.section;
        let id = self.id.unwrap_or_else(|| {
            checks.error(
                "connector.id",
                format!("required when {s}.enabled is true; expected a UUID"),
            );
            Uuid::nil()
        });
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| spec.default_name.to_string());
        if name.trim().chars().count() < 2 {
            checks.error(
                "connector.name",
                "must have at least 2 non-blank characters",
            );
        }
        let scope = self
            .scope
            .clone()
            .unwrap_or_else(|| Scope::parse(spec.default_scope))
            .0;
        if let Some(level) = &self.log_level
            && level
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            checks.error(
                "connector.log_level",
                format!(
                    "`{level}` is not a level; expected one of: trace, debug, info, warn, error"
                ),
            );
        }
        let mode = match spec.kind {
            ConnectorKind::Enrichment {
                default_auto,
                playbook_compatible,
                default_concurrency,
            } => {
                if self.duration_period.is_some() {
                    checks.error(
                        "connector.duration_period",
                        "only scheduled importers take a period",
                    );
                }
                if self.queue_threshold.is_some() {
                    checks.error(
                        "connector.queue_threshold",
                        "only scheduled importers buffer on their push queue",
                    );
                }
                // Its range (at least 1) is the key table's, checked as the file loads.
                let concurrency = self.concurrency.unwrap_or(default_concurrency);
                Mode::Enrichment {
                    auto: self.auto.unwrap_or(default_auto),
                    auto_update: self.auto_update.unwrap_or(false),
                    playbook_compatible,
                    concurrency,
                }
            }
            ConnectorKind::Import { default_period } => {
                if self.auto.is_some() || self.auto_update.is_some() || self.concurrency.is_some() {
                    checks.error(
                        "connector",
                        "auto, auto_update and concurrency only apply to enrichment connectors",
                    );
                }
                // Their ranges are the key table's, checked as the file loads.
                let period = self.duration_period.map_or(default_period, |d| d.0);
                let queue_threshold = self.queue_threshold.unwrap_or(DEFAULT_QUEUE_THRESHOLD);
                Mode::Import {
                    period,
                    queue_threshold,
                }
            }
        };
        ConnectorSettings {
            key: s,
            id,
            name,
            scope,
            queue_protocol: self.queue_protocol.unwrap_or_default(),
            mode,
            max_answer_bytes: super::limits::DEFAULT_MAX_UPSTREAM_BYTES,
        }
    }
}

impl ConnectorBlock {
    /// The settings of a connector that registers nothing (tests, benches): resolved as [`ConnectorBlock::resolve`] does (a nil id unless one is set),
    /// the checks of a registered connector left out.
    pub fn resolve_unregistered(&self, spec: &'static SectionSpec) -> ConnectorSettings {
        self.resolve(spec, &mut Checks::new(spec))
    }
}

/// The errors of one section, each naming its key as `<section>.<key> (env …): …`.
#[derive(Debug)]
pub struct Checks {
    spec: &'static SectionSpec,
    errors: Vec<String>,
}

impl Checks {
    pub fn new(spec: &'static SectionSpec) -> Self {
        Checks {
            spec,
            errors: Vec::new(),
        }
    }

    /// Records a problem with `key` (relative to the section, e.g. `token`).
    pub fn error(&mut self, key: &str, message: impl Display) {
        self.errors.push(format!(
            "{}.{key}{}: {message}",
            self.spec.section,
            self.spec.env_hint(key)
        ));
    }

    /// A secret the connector cannot work without: set, not blank, not the samples' `ChangeMe`.
    pub fn require_secret(&mut self, key: &str, value: Option<&Secret>) {
        if value.is_none_or(|v| v.is_blank() || v.expose() == super::PLACEHOLDER) {
            let section = self.spec.section;
            self.error(key, format!("required when {section}.enabled is true"));
        }
    }

    /// `value` must be an absolute http(s) URL.
    pub fn url(&mut self, key: &str, value: &str) {
        if !is_http_url(value) {
            let shown = super::UrlSetting::from(value).redacted();
            self.error(key, format!("`{shown}` is not an http(s) URL"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_errors(self) -> Vec<String> {
        self.errors
    }
}

/// Whether `url` is an absolute http(s) URL.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "http" || u.scheme() == "https")
}
