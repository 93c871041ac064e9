//! Configuration: a YAML file (optional) overlaid with environment variables, then
//! deserialised strictly (unknown keys are errors) and validated.
//!
//! Environment names follow one rule, `<SECTION>_<KEY>` upper-cased with nested keys joined
//! by `_` (`IPINFO_CONNECTOR_ID`); some keys also accept the Python connectors' own names.
//! The full list lives in [`keys`].

pub mod keys;
pub mod types;

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};
use serde_yaml::{Mapping, Value};
use uuid::Uuid;

pub use keys::{ConnectorKind, KeyDef, Kind, SectionSpec};
pub use types::{IsoDuration, LogFormat, QueueProtocol, Scope, Secret, TlpSetting, parse_bool};

use crate::connectors::Section;
use crate::connectors::ipinfo::IpinfoSection;
use crate::connectors::ipsum::IpsumSection;
use crate::connectors::ivre::IvreSection;
use crate::connectors::lastinfosec::LastinfosecSection;
use crate::connectors::riskiq::RiskiqSection;

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

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub opencti: OpenctiConfig,
    pub log: LogConfig,
    pub mq: MqConfig,
    pub daemon: DaemonConfig,
    pub ipinfo: IpinfoSection,
    pub ipsum: IpsumSection,
    pub riskiq: RiskiqSection,
    pub lastinfosec: LastinfosecSection,
    pub ivre: IvreSection,
}

/// How to reach OpenCTI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenctiConfig {
    /// Base URL; GraphQL is at `<url>/graphql`.
    pub url: Option<String>,
    /// API token of the connector user.
    pub token: Option<Secret>,
    /// Verify the platform's TLS certificate.
    pub ssl_verify: bool,
}

impl Default for OpenctiConfig {
    fn default() -> Self {
        OpenctiConfig {
            url: None,
            token: None,
            ssl_verify: true,
        }
    }
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

/// Overrides of the broker details OpenCTI returns at registration (pycti's `MQ_*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub vhost: Option<String>,
    pub use_ssl: Option<bool>,
    pub user: Option<String>,
    pub pass: Option<Secret>,
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
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            ping_interval: IsoDuration(std::time::Duration::from_secs(40)),
            shutdown_timeout: IsoDuration(std::time::Duration::from_secs(30)),
            listen: "0.0.0.0:9095".into(),
        }
    }
}

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

/// The resolved identity and behaviour of one hosted connector.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Snake-case service noun (`ipinfo`): module, YAML section and log field.
    pub key: &'static str,
    pub id: Uuid,
    pub name: String,
    pub kind: ConnectorKind,
    pub scope: Vec<String>,
    pub auto: bool,
    pub auto_update: bool,
    pub playbook_compatible: bool,
    pub queue_protocol: QueueProtocol,
    pub concurrency: u16,
    pub duration_period: Option<std::time::Duration>,
}

impl ConnectorBlock {
    /// Resolves the block with the section's defaults; errors name the key.
    pub fn resolve(
        &self,
        spec: &SectionSpec,
        playbook_compatible: bool,
    ) -> Result<ConnectorSettings, Vec<String>> {
        let s = spec.section;
        let mut errors = Vec::new();
        let id = self.id.unwrap_or_else(|| {
            errors.push(format!(
                "{s}.connector.id (env {}): required when {s}.enabled is true; expected a UUID",
                keys::env_name(&format!("{s}.connector.id"))
            ));
            Uuid::nil()
        });
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| spec.default_name.to_string());
        if name.trim().chars().count() < 2 {
            errors.push(format!(
                "{s}.connector.name: must have at least 2 non-blank characters"
            ));
        }
        let scope = self
            .scope
            .clone()
            .unwrap_or_else(|| Scope::parse(spec.default_scope))
            .0;
        let concurrency = self.concurrency.unwrap_or(4);
        if concurrency == 0 {
            errors.push(format!("{s}.connector.concurrency: must be at least 1"));
        }
        let duration_period = match spec.kind {
            ConnectorKind::Import => {
                let default = IsoDuration::parse(spec.default_duration_period)
                    .map(|d| d.0)
                    .unwrap_or(std::time::Duration::from_secs(86400));
                let d = self.duration_period.map(|d| d.0).unwrap_or(default);
                if d.is_zero() {
                    errors.push(format!(
                        "{s}.connector.duration_period: must be longer than zero"
                    ));
                }
                Some(d)
            }
            ConnectorKind::Enrichment => {
                if self.duration_period.is_some() {
                    errors.push(format!(
                        "{s}.connector.duration_period: only scheduled importers take a period"
                    ));
                }
                None
            }
        };
        if spec.kind == ConnectorKind::Import
            && (self.auto.is_some() || self.auto_update.is_some() || self.concurrency.is_some())
        {
            errors.push(format!("{s}.connector: auto, auto_update and concurrency only apply to enrichment connectors"));
        }
        if let Some(level) = &self.log_level
            && level
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            errors.push(format!("{s}.connector.log_level: `{level}` is not a level; expected one of: trace, debug, info, warn, error"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ConnectorSettings {
            key: spec.section,
            id,
            name,
            kind: spec.kind,
            scope,
            auto: self.auto.unwrap_or(spec.default_auto),
            auto_update: self.auto_update.unwrap_or(false),
            playbook_compatible,
            queue_protocol: self.queue_protocol.unwrap_or_default(),
            concurrency,
            duration_period,
        })
    }
}

/// Checks that `url` is an absolute http(s) URL.
pub fn check_url(key: &str, url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        _ => Err(format!("{key}: `{url}` is not an http(s) URL")),
    }
}

impl Config {
    /// Every connector section, in README order.
    pub fn sections(&self) -> Vec<&dyn Section> {
        vec![
            &self.ipinfo,
            &self.ipsum,
            &self.riskiq,
            &self.lastinfosec,
            &self.ivre,
        ]
    }

    /// The tracing filter: `log.level`, plus each connector's `log_level` for the spans that
    /// carry `connector = "<section>"` (a message's or a run's).
    pub fn log_filter(&self) -> String {
        let mut filter = self.log.level.clone();
        for section in self.sections() {
            if let Some(level) = &section.connector().log_level {
                filter.push_str(&format!(
                    ",[{{connector={}}}]={level}",
                    section.spec().section
                ));
            }
        }
        filter
    }

    /// Loads from optional YAML text and an environment map (injected for tests).
    pub fn from_sources(
        yaml: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut root = match yaml {
            Some(text) if !text.trim().is_empty() => match serde_yaml::from_str::<Value>(text) {
                Ok(Value::Mapping(m)) => m,
                Ok(Value::Null) => Mapping::new(),
                Ok(_) => {
                    return Err(ConfigError::Yaml(
                        "the top level must be a mapping of sections".into(),
                    ));
                }
                Err(e) => return Err(ConfigError::Yaml(e.to_string())),
            },
            _ => Mapping::new(),
        };
        let table = keys::all_keys();
        let mut errors = Vec::new();
        for key in &table {
            let from_env = key.env.iter().find_map(|name| {
                env.get(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            });
            if let Some((name, raw)) = from_env {
                match env_value(key.kind, raw) {
                    Ok(v) => set_path(&mut root, &key.path, v),
                    Err(m) => errors.push(format!("{} (env {name}): {m}", key.path)),
                }
            } else if let Some(v) = get_path_mut(&mut root, &key.path) {
                normalise_yaml(key.kind, v)
                    .unwrap_or_else(|m| errors.push(format!("{}: {m}", key.path)));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError::Many(errors));
        }
        let config: Config =
            serde_path_to_error::deserialize(Value::Mapping(root)).map_err(|e| {
                let path = e.path().to_string();
                let env = table
                    .iter()
                    .find(|k| k.path == path)
                    .map(|k| format!(" (env {})", k.env[0]))
                    .unwrap_or_default();
                ConfigError::Invalid {
                    key: format!("{path}{env}"),
                    message: e.into_inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads `path` if it exists (or was named explicitly) plus the process environment.
    pub fn load(path: &str, explicit: bool) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let yaml = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        Config::from_sources(yaml.as_deref(), &env)
    }

    /// Cross-key validation.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        if !self.daemon.listen.is_empty()
            && self.daemon.listen.parse::<std::net::SocketAddr>().is_err()
        {
            errors.push(format!(
                "daemon.listen (env DAEMON_LISTEN): `{}` is not an address such as 0.0.0.0:9095",
                self.daemon.listen
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            errors.push(format!(
                "log.level: `{}` is not a level or tracing filter; expected e.g. info or debug",
                self.log.level
            ));
        }
        let enabled = crate::connectors::enabled_sections(self);
        if !enabled.is_empty() {
            match &self.opencti.url {
                None => errors.push(
                    "opencti.url (env OPENCTI_URL): required when a connector is enabled".into(),
                ),
                Some(url) => {
                    if let Err(e) = check_url("opencti.url", url) {
                        errors.push(e);
                    }
                }
            }
            match &self.opencti.token {
                Some(t) if !t.is_blank() && t.expose() != "ChangeMe" => {}
                _ => errors.push("opencti.token (env OPENCTI_TOKEN): required when a connector is enabled (not empty, not ChangeMe)".into()),
            }
        }
        errors.extend(crate::connectors::validate_sections(self));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Many(errors))
        }
    }
}

/// Turns an environment string into the YAML value of a key's kind.
fn env_value(kind: Kind, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    Ok(match kind {
        Kind::Bool => Value::Bool(
            parse_bool(raw)
                .ok_or_else(|| format!("`{raw}` is not a boolean; expected true or false"))?,
        ),
        Kind::Int => Value::Number(
            raw.parse::<i64>()
                .map_err(|_| format!("`{raw}` is not an integer"))?
                .into(),
        ),
        _ => Value::String(raw.to_string()),
    })
}

/// Lets YAML files spell booleans and integers as strings (`"yes"`, `"4"`).
fn normalise_yaml(kind: Kind, v: &mut Value) -> Result<(), String> {
    if let Value::String(s) = v {
        match kind {
            Kind::Bool => *v = env_value(kind, s)?,
            Kind::Int => *v = env_value(kind, s)?,
            _ => {}
        }
    } else if matches!(
        kind,
        Kind::Str | Kind::Secret | Kind::Uuid | Kind::Url | Kind::Tlp
    ) {
        // A token or id of digits written without quotes is still a string.
        if let Value::Number(n) = v {
            *v = Value::String(n.to_string());
        }
    }
    Ok(())
}

fn set_path(root: &mut Mapping, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut map = root;
    while let Some(part) = parts.next() {
        let key = Value::String(part.to_string());
        if parts.peek().is_none() {
            map.insert(key, value);
            return;
        }
        let entry = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            *entry = Value::Mapping(Mapping::new());
        }
        // Just made sure it is a mapping.
        map = entry.as_mapping_mut().expect("mapping");
    }
}

fn get_path_mut<'a>(root: &'a mut Mapping, path: &str) -> Option<&'a mut Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = root.get_mut(first)?;
    for part in parts {
        cur = cur.as_mapping_mut()?.get_mut(part)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests;
