//! The table of every configuration key: YAML path, environment names, kind (with the
//! allowed range of a numeric key), default and meaning. It drives environment overrides,
//! value normalisation, range checks, the README table (`opencti-connectors config-table`)
//! and tests that keep them in step. The connectors' sections are described by their
//! [`SectionSpec`]s; the registry lists them.

use std::time::Duration;

use super::types::IsoDuration;

mod global;
mod range;
mod section;

pub use global::global_keys;
pub use range::{Bound, GIB, KIB, MIB, Range, ranges};
use section::section_keys;

/// What a key holds; decides how an environment string becomes a YAML value. A numeric key
/// carries the range it accepts: a value outside it is a start-up error, so no setting can
/// reach the code that uses it with a value that code cannot take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Str,
    Secret,
    Bool,
    Int(Range<i64>),
    Float(Range<f64>),
    Duration(Range<Duration>),
    Tlp,
    Uuid,
    Url,
    Scope,
}

impl Kind {
    /// The values a numeric key accepts (`1 to 1000`); `None` for the other kinds.
    pub fn range(&self) -> Option<String> {
        match self {
            Kind::Int(r) => Some(r.describe()),
            Kind::Float(r) => Some(r.describe()),
            Kind::Duration(r) => Some(r.describe()),
            _ => None,
        }
    }
}

/// One key of a connector section, relative to the section (`token`, `max_tlp`). A
/// section's keys come from its struct (`#[derive(Keys)]`), the shared ones below included.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    pub key: &'static str,
    /// Extra environment names accepted (the Python connectors' own names).
    pub env_aliases: &'static [&'static str],
    pub kind: Kind,
    pub default: &'static str,
    pub doc: &'static str,
    /// The section does not start without it.
    pub required: bool,
    /// A valid value other than the default (`""`: any of its kind), for the tests and the
    /// generated samples; a required key's stands for the value a user gives.
    pub sample: &'static str,
}

impl KeyDef {
    /// What every field of a key starts from.
    pub const EMPTY: KeyDef = KeyDef {
        key: "",
        env_aliases: &[],
        kind: Kind::Str,
        default: "",
        doc: "",
        required: false,
        sample: "",
    };

    /// `cache.ttl`: how long an upstream answer is reused (`PT0S`: no cache).
    pub const fn cache_ttl(default: &'static str) -> KeyDef {
        KeyDef {
            key: "cache.ttl",
            kind: Kind::Duration(ranges::CACHE_TTL),
            default,
            doc: "How long an upstream answer is reused for the same value (PT0S: no cache).",
            ..KeyDef::EMPTY
        }
    }

    /// `cache.capacity`: how many answers the cache keeps.
    pub const CACHE_CAPACITY: KeyDef = KeyDef {
        key: "cache.capacity",
        kind: Kind::Int(ranges::CACHE_CAPACITY),
        default: "10000",
        doc: "Upstream answers kept at most (least recently used go first).",
        ..KeyDef::EMPTY
    };

    /// `cache.max_bytes`: how many bytes of answers the cache keeps.
    pub const CACHE_MAX_BYTES: KeyDef = KeyDef {
        key: "cache.max_bytes",
        kind: Kind::Int(ranges::CACHE_MAX_BYTES),
        default: "8388608",
        doc: "Bytes of upstream answers (their JSON text) kept at most, 8 MiB by default: the cache's memory stays bounded whatever the answers' size.",
        ..KeyDef::EMPTY
    };

    /// `rate_limit`: upstream requests a second at most (`0`: no limit).
    pub const RATE_LIMIT: KeyDef = KeyDef {
        key: "rate_limit",
        kind: Kind::Float(ranges::RATE_LIMIT),
        default: "0",
        doc: "Upstream requests a second at most, fractions allowed (0: no limit). A 429 with Retry-After pauses all of the connector's requests whatever this is.",
        ..KeyDef::EMPTY
    };

    /// `request_timeout`: the timeout of one upstream request (a key `like` it gives its
    /// own default and doc).
    pub const REQUEST_TIMEOUT: KeyDef = KeyDef {
        key: "request_timeout",
        kind: Kind::Duration(ranges::REQUEST_TIMEOUT),
        ..KeyDef::EMPTY
    };
}

/// The official connector image a section stands in for, as `migrate` and the drop-in mode
/// know it.
#[derive(Debug, Clone, Copy)]
pub struct OfficialImage {
    /// The image's name after `opencti/connector-` (`riskiq-passive-total`), also the slug
    /// its manifest gives (sent at registration to OpenCTI 7).
    pub image: &'static str,
    /// The connector id the official image registers with when `CONNECTOR_ID` is unset (its
    /// settings' default). Only a UUID is kept: the daemon's ids are UUIDs.
    pub default_id: Option<&'static str>,
    /// Variables the official code reads from another place of its `config.yml` than the one
    /// rule (`<section>.<key>` ↔ `<SECTION>_<KEY>`) says: `(name by the rule, name read)`.
    pub file_names: &'static [(&'static str, &'static str)],
}

/// Whether a connector answers enrichment requests or imports on a schedule, with the
/// settings that only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    /// INTERNAL_ENRICHMENT: consumes its listen queue.
    Enrichment {
        /// `connector.auto` when unset.
        default_auto: bool,
        /// Registered as usable in playbooks.
        playbook_compatible: bool,
        /// `connector.concurrency` when unset: requests in flight, chosen per upstream.
        default_concurrency: u16,
    },
    /// EXTERNAL_IMPORT: runs on a schedule.
    Import {
        /// `connector.duration_period` when unset.
        default_period: std::time::Duration,
    },
}

impl ConnectorKind {
    /// The OpenCTI `ConnectorType`.
    /// Whether the connector is a scheduled importer (otherwise an enrichment).
    pub fn is_import(self) -> bool {
        matches!(self, ConnectorKind::Import { .. })
    }

    pub fn connector_type(self) -> &'static str {
        match self {
            ConnectorKind::Enrichment { .. } => "INTERNAL_ENRICHMENT",
            ConnectorKind::Import { .. } => "EXTERNAL_IMPORT",
        }
    }
}

/// What a connector section looks like: its common block's defaults and its own keys.
#[derive(Debug, Clone, Copy)]
pub struct SectionSpec {
    /// The YAML section, module name and log field (`ipinfo`).
    pub section: &'static str,
    pub kind: ConnectorKind,
    pub default_name: &'static str,
    pub default_scope: &'static str,
    /// The official image it replaces; `None` for a connector of the daemon's own.
    pub official: Option<OfficialImage>,
    /// Its own keys (`api_base_url` among them), from its struct: `<Config>::KEYS`.
    pub keys: &'static [KeyDef],
}

impl SectionSpec {
    /// Every key of the section, fully named, in table order.
    pub fn all_keys(&self) -> Vec<KeySpec> {
        section_keys(self)
    }

    /// ` (env A or B)` for `key` of this section, as errors name it; empty for an unknown key.
    pub fn env_hint(&self, key: &str) -> String {
        let path = format!("{}.{key}", self.section);
        self.all_keys()
            .into_iter()
            .find(|k| k.path == path)
            .map(|k| format!(" (env {})", k.env.join(" or ")))
            .unwrap_or_default()
    }

    /// The environment that enables this section with what it requires: `<SECTION>_ENABLED`,
    /// a connector id (a UUID derived from the section's name) and each required key's
    /// sample, by its first environment name. What the tests and `check-config` examples
    /// start a connector with.
    pub fn enabling_env(&self) -> Vec<(String, String)> {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, self.section.as_bytes());
        let mut env = vec![
            (
                env_name(&format!("{}.enabled", self.section)),
                "true".into(),
            ),
            (
                env_name(&format!("{}.connector.id", self.section)),
                id.to_string(),
            ),
        ];
        env.extend(self.required_env());
        env
    }

    /// The variable (its first name) and sample of each required key, in table order: what
    /// the section needs besides `<SECTION>_ENABLED` and a connector id.
    pub fn required_env(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .filter(|k| k.required)
            .map(|k| {
                let path = format!("{}.{}", self.section, k.key);
                (env_name(&path), k.sample.to_string())
            })
            .collect()
    }
}

/// One fully named key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// Dotted YAML path, e.g. `ipinfo.connector.id`.
    pub path: String,
    /// Environment names, the derived one (`IPINFO_CONNECTOR_ID`) first.
    pub env: Vec<String>,
    pub kind: Kind,
    pub default: String,
    pub doc: String,
    /// An enabled connector does not start without it ([`KeyDef::required`]).
    pub required: bool,
    /// A valid value other than the default ([`KeyDef::sample`]); empty when none is given.
    pub sample: String,
}

impl KeySpec {
    fn new(path: &str, aliases: &[&str], kind: Kind, default: &str, doc: &str) -> Self {
        let mut env = vec![env_name(path)];
        env.extend(aliases.iter().map(|a| a.to_string()));
        KeySpec {
            path: path.into(),
            env,
            kind,
            default: default.into(),
            doc: doc.into(),
            required: false,
            sample: String::new(),
        }
    }
}

/// ` (env A or B)` for the key at `path` of `table`, as errors name it; empty when unknown.
pub fn env_hint(table: &[KeySpec], path: &str) -> String {
    table
        .iter()
        .find(|k| k.path == path)
        .map(|k| format!(" (env {})", k.env.join(" or ")))
        .unwrap_or_default()
}

/// The one rule: `<SECTION>_<KEY>` upper-cased, nested keys joined by `_`.
pub fn env_name(path: &str) -> String {
    path.replace('.', "_").to_ascii_uppercase()
}

/// The Markdown table of `keys`, as the README shows it.
pub fn markdown_table(keys: &[KeySpec]) -> String {
    let mut out = String::from(
        "| YAML key | Environment variable(s) | Default | Meaning |\n|---|---|---|---|\n",
    );
    for k in keys {
        let env = k
            .env
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let default = if k.default.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", k.default)
        };
        let allowed = k
            .kind
            .range()
            .map(|r| format!(" Allowed: {r}."))
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} | {} | {}{allowed} |\n",
            k.path, env, default, k.doc
        ));
    }
    out
}
