//! `run --as <connector>`: the daemon as a drop-in for one official connector image.
//!
//! It hosts that connector alone and reads the official image's configuration the way its
//! pycti helper does: the environment first, then `config.yml`, then the defaults. The names
//! are the official ones, mapped with the same knowledge `migrate` uses
//! ([`migrate::official_key`]): `OPENCTI_URL`, `OPENCTI_TOKEN`, the bare `CONNECTOR_*` names
//! (`CONNECTOR_ID` is `<section>.connector.id`), and the connector's own names, which the
//! key table already accepts (`IPINFO_TOKEN`, `CONNECTOR_IPSUM_API_KEY`,
//! `CONFIG_LIS_APIKEY_CTI`). The daemon's own names are read too, and win over the official
//! ones, so a drop-in can still set what the official image lacks (`IPINFO_CACHE_TTL`).
//!
//! A few official settings take a translation rather than a key:
//! - `CONNECTOR_LOG_LEVEL` is the process's level (`log.level`) as well as the connector's,
//!   and `OPENCTI_JSON_LOGGING` picks `log.format`; unset, they default as pycti's do (error,
//!   JSON), not as the daemon's.
//! - `CONNECTOR_EXPOSE_METRICS` and `CONNECTOR_METRICS_PORT` give `daemon.listen`: the port
//!   (9095), on every interface when metrics are exposed, else on the loopback only (pycti
//!   serves nothing then; the image's health check still reaches `/healthz`).
//! - `CONNECTOR_TYPE`, when set, must be the connector's type.
//! - An official image whose settings default `CONNECTOR_ID` (IPsum) registers with that id
//!   here too, so OpenCTI keeps seeing the same connector and its state.
//!
//! The file (`--config`, `CONFIG_FILE`, `config.yml`) may be the official image's
//! `config.yml` or the daemon's: it is read as names by the one rule (`connector.id` is
//! `CONNECTOR_ID`, `ipinfo.cache.ttl` is `IPINFO_CACHE_TTL`), which is also pycti's.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_yaml::Value;

use crate::config::{ConfigError, KeySpec, SectionSpec, parse_bool};
use crate::migrate::{self, CONNECTOR_PREFIX, Official};
use crate::registry::{self, Config};

pub mod catalog;
mod sources;

use sources::*;

/// The environment variable that selects the drop-in mode, as `--as` does (an image made for
/// one connector sets it, and so can a Helm chart that passes no arguments).
pub const AS_ENV: &str = "OPENCTI_CONNECTORS_AS";

/// pycti's level when `CONNECTOR_LOG_LEVEL` is unset.
const PYCTI_LOG_LEVEL: &str = "error";
/// pycti's metrics port when `CONNECTOR_METRICS_PORT` is unset (the daemon's too).
pub const PYCTI_METRICS_PORT: u16 = 9095;

/// Names with the official prefixes that are ignored without a word: the integration manager
/// sets `OPENCTI_CONFIG_HASH` on every container it starts, and [`AS_ENV`] is the mode itself.
const QUIET: &[&str] = &["OPENCTI_CONFIG_HASH", AS_ENV];

/// Prefixes of the names pycti and the official images read: a name with one of them that
/// the drop-in does not read is reported.
const OFFICIAL_PREFIXES: &[&str] = &[CONNECTOR_PREFIX, "OPENCTI_", "MQ_"];

/// The drop-in's own names (translations, not keys).
const LOG_LEVEL: &str = "CONNECTOR_LOG_LEVEL";
const JSON_LOGGING: &str = "OPENCTI_JSON_LOGGING";
const EXPOSE_METRICS: &str = "CONNECTOR_EXPOSE_METRICS";
const METRICS_PORT: &str = "CONNECTOR_METRICS_PORT";
const CONNECTOR_TYPE: &str = "CONNECTOR_TYPE";

/// What an operator should know about a drop-in's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Official settings the daemon does not read (names only, never values).
    NotRead(Vec<String>),
    /// The daemon's settings of other connectors, which `--as` does not read.
    OtherConnectors(Vec<String>),
    /// `CONNECTOR_ID` is unset: the official image's default id is used.
    DefaultId(&'static str),
    /// A default stricter than the official connector's applies.
    Stricter(String),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::NotRead(names) => write!(
                f,
                "not read (the daemon has no equivalent): {}",
                names.join(", ")
            ),
            Note::OtherConnectors(names) => write!(
                f,
                "not read with --as (settings of other connectors): {}",
                names.join(", ")
            ),
            Note::DefaultId(id) => write!(
                f,
                "CONNECTOR_ID is not set: the official image's default id {id} is used"
            ),
            Note::Stricter(line) => f.write_str(line),
        }
    }
}

/// A drop-in configuration: the connector it hosts, the loaded configuration and the notes.
#[derive(Debug)]
pub struct DropIn {
    pub official: &'static Official,
    pub config: Config,
    pub notes: Vec<Note>,
}

/// The connector `name` names, or an error listing the allowed ones.
pub fn section(name: &str) -> Result<(&'static SectionSpec, &'static Official), ConfigError> {
    registry::specs()
        .into_iter()
        .find(|s| s.section == name)
        .and_then(|s| migrate::drop_in(s.section).map(|o| (s, o)))
        .ok_or_else(|| {
            let names: Vec<&str> = registry::specs().iter().map(|s| s.section).collect();
            ConfigError::Invalid {
                key: "--as".into(),
                message: format!(
                    "`{name}` is not a connector; expected one of: {}",
                    names.join(", ")
                ),
            }
        })
}

/// Loads the drop-in for connector `name` from the process environment and the file at
/// `path` (when it exists, or was named explicitly).
pub fn load(name: &str, path: &str, explicit: bool) -> Result<DropIn, ConfigError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let yaml = crate::config::loader::read_file(path, explicit)?;
    from_sources(name, yaml.as_deref(), &env)
}

/// Loads the drop-in for connector `name` from optional YAML text and an environment map
/// (injected for tests), then validates it as the daemon validates any configuration.
pub fn from_sources(
    name: &str,
    yaml: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<DropIn, ConfigError> {
    let (spec, official) = section(name)?;
    let file = match yaml {
        Some(text) => flatten_file(text, official)?,
        None => Vec::new(),
    };
    let table = table(spec);
    // `OPENCTI_TOKEN_FILE`, `IPINFO_TOKEN_FILE`, …: read here, so that every name below is
    // the official one with its value.
    let env = &crate::config::files::expand_env(env, &table).map_err(ConfigError::Many)?;
    let layers = Layers { env, file: &file };
    let mut errors = Vec::new();
    let mut chosen: HashMap<String, String> = HashMap::new();
    let mut read: BTreeSet<String> = BTreeSet::new();
    let mut set_paths: BTreeSet<&str> = BTreeSet::new();
    for key in &table {
        if let Some((name, value)) = layers.first(&key.env) {
            read.insert(name.to_string());
            set_paths.insert(&key.path);
            let value = if name == LOG_LEVEL {
                pycti_level(value)
            } else {
                value.to_string()
            };
            chosen.insert(name.to_string(), value);
        }
    }
    let s = spec.section;
    let path = |key: &str| format!("{s}.{key}");
    let env_of = |path: &str| {
        table
            .iter()
            .find(|k| k.path == path)
            .map(|k| k.env[0].clone())
    };
    // Translations, each only when the daemon's own key is unset.
    for name in [JSON_LOGGING, EXPOSE_METRICS, METRICS_PORT, CONNECTOR_TYPE] {
        if layers.first(&[name.to_string()]).is_some() {
            read.insert(name.to_string());
        }
    }
    if !set_paths.contains("log.level") {
        chosen.insert("LOG_LEVEL".into(), PYCTI_LOG_LEVEL.into());
    }
    if !set_paths.contains("log.format") {
        let json = match layers.first(&[JSON_LOGGING.to_string()]) {
            None => true,
            Some((_, raw)) => parse_bool(raw).unwrap_or_else(|| {
                errors.push(format!(
                    "log.format (env {JSON_LOGGING}): `{raw}` is not a boolean; expected true or false"
                ));
                true
            }),
        };
        chosen.insert(
            "LOG_FORMAT".into(),
            if json { "json" } else { "text" }.into(),
        );
    }
    if !set_paths.contains("daemon.listen") {
        match listen(&layers) {
            Ok(address) => {
                chosen.insert("DAEMON_LISTEN".into(), address);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some((_, raw)) = layers.first(&[CONNECTOR_TYPE.to_string()]) {
        let expected = spec.kind.connector_type();
        if !raw.trim().eq_ignore_ascii_case(expected) {
            errors.push(format!(
                "{CONNECTOR_TYPE}: `{}` is not the type of {s}; expected {expected}",
                raw.trim()
            ));
        }
    }
    let mut notes = Vec::new();
    if !set_paths.contains(path("connector.id").as_str())
        && let (Some(id), Some(env)) = (official.default_id, env_of(&path("connector.id")))
    {
        chosen.insert(env, id.to_string());
        notes.push(Note::DefaultId(id));
    }
    if let Some(enabled) = env_of(&path("enabled")) {
        // `--as` hosts this connector, whatever `<SECTION>_ENABLED` says.
        chosen.insert(enabled.clone(), "true".into());
        read.insert(enabled);
    }
    notes.extend(
        migrate::stricter_defaults(&table, s, |k| set_paths.contains(k.path.as_str()))
            .into_iter()
            .map(Note::Stricter),
    );
    let (not_read, others) = unread(&table, &layers, &read);
    if !not_read.is_empty() {
        notes.push(Note::NotRead(not_read));
    }
    if !others.is_empty() {
        notes.push(Note::OtherConnectors(others));
    }
    // The official files' placeholders, all at once (the loader stops at the first value it
    // cannot read): each is named by the variable that holds it, with the key it sets.
    let mut placeholders = Vec::new();
    for key in &table {
        if let Some((name, value)) = layers.first(&key.env)
            && migrate::placeholder(value)
        {
            placeholders.push(format!("{} (", key.path));
            errors.push(format!(
                "{} (env {name}): `{}` is the official file's placeholder; set it",
                key.path,
                value.trim()
            ));
            chosen.remove(name);
        }
    }
    match Config::from_table(&chosen, &table) {
        Ok(config) if errors.is_empty() => Ok(DropIn {
            official,
            config,
            notes,
        }),
        Ok(_) => Err(ConfigError::Many(errors)),
        Err(e) => {
            let e = name_official(e, &table, s);
            let messages = match e {
                ConfigError::Many(messages) => messages,
                other => vec![other.to_string()],
            };
            // A placeholder left out is also "required": said once is enough.
            errors.extend(
                messages
                    .into_iter()
                    .filter(|m| !placeholders.iter().any(|p| m.starts_with(p.as_str()))),
            );
            Err(ConfigError::Many(errors))
        }
    }
}

/// The keys a drop-in of `spec` reads: the shared blocks and its own section, each by the
/// daemon's names, then the official ones (`CONNECTOR_ID` after `IPINFO_CONNECTOR_ID`);
/// `CONNECTOR_LOG_LEVEL` also names the process's level.
pub fn table(spec: &SectionSpec) -> Vec<KeySpec> {
    let s = spec.section;
    let sections: Vec<&str> = registry::specs().iter().map(|sp| sp.section).collect();
    let mut table = Vec::new();
    for mut key in registry::all_keys() {
        let first = key.path.split('.').next().unwrap_or_default();
        if first != s && sections.contains(&first) {
            continue;
        }
        for name in migrate::official_names(&key, s) {
            if !key.env.contains(&name) {
                key.env.push(name);
            }
        }
        if key.path == "log.level" {
            key.env.push(LOG_LEVEL.into());
        }
        table.push(key);
    }
    table
}

/// pycti's level names as tracing's: any case, and `warning` for `warn`.
fn pycti_level(raw: &str) -> String {
    let level = raw.trim().to_ascii_lowercase();
    if level == "warning" {
        "warn".into()
    } else {
        level
    }
}

/// `daemon.listen` from pycti's metrics settings: the port on every interface when metrics
/// are exposed, on the loopback only otherwise.
fn listen(layers: &Layers) -> Result<String, String> {
    let expose = match layers.first(&[EXPOSE_METRICS.to_string()]) {
        None => false,
        Some((_, raw)) => parse_bool(raw).ok_or_else(|| {
            format!("daemon.listen (env {EXPOSE_METRICS}): `{raw}` is not a boolean; expected true or false")
        })?,
    };
    let port = match layers.first(&[METRICS_PORT.to_string()]) {
        None => PYCTI_METRICS_PORT,
        Some((_, raw)) => raw
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                format!(
                    "daemon.listen (env {METRICS_PORT}): `{raw}` is not a port; allowed: 1 to 65535"
                )
            })?,
    };
    let host = if expose { "0.0.0.0" } else { "127.0.0.1" };
    Ok(format!("{host}:{port}"))
}

/// Errors name each key by its variables as the daemon knows them; a drop-in's operator
/// sets the official ones, so they are named too (`(env IPINFO_CONNECTOR_ID or CONNECTOR_ID)`).
fn name_official(error: ConfigError, table: &[KeySpec], section: &str) -> ConfigError {
    let daemon: HashMap<String, Vec<String>> = registry::all_keys()
        .into_iter()
        .map(|k| (k.path, k.env))
        .collect();
    let rename = |message: String| {
        let mut message = message;
        for key in table {
            let Some(own) = daemon.get(&key.path) else {
                continue;
            };
            if own.len() == key.env.len() {
                continue;
            }
            message = message.replace(
                &format!("(env {})", own.join(" or ")),
                &format!("(env {})", key.env.join(" or ")),
            );
        }
        message.replace(
            &format!("required when {section}.enabled is true"),
            &format!("required by --as {section}"),
        )
    };
    match error {
        ConfigError::Many(messages) => {
            ConfigError::Many(messages.into_iter().map(rename).collect())
        }
        ConfigError::Invalid { key, message } => ConfigError::Invalid {
            key: rename(key),
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
