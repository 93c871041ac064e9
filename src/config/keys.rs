//! The table of every configuration key: YAML path, environment names, kind (with the
//! allowed range of a numeric key), default and meaning. It drives environment overrides,
//! value normalisation, range checks, the README table (`opencti-connectors config-table`)
//! and tests that keep them in step. The connectors' sections are described by their
//! [`SectionSpec`]s; the registry lists them.

use std::time::Duration;

use super::types::IsoDuration;

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

/// The values of a numeric key: `min` to `max`, both included, and also 0 when `or_zero`
/// (a key whose 0 means "off", such as `rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
    pub or_zero: bool,
}

impl<T: Copy> Range<T> {
    pub const fn new(min: T, max: T) -> Self {
        Range {
            min,
            max,
            or_zero: false,
        }
    }

    /// The same range, with 0 accepted too.
    pub const fn or_zero(self) -> Self {
        Range {
            min: self.min,
            max: self.max,
            or_zero: true,
        }
    }
}

/// A value a [`Range`] can bound.
pub trait Bound: Copy + PartialOrd {
    const ZERO: Self;
    /// As the configuration spells it (`PT1H` for a duration).
    fn show(self) -> String;
}

impl Bound for i64 {
    const ZERO: Self = 0;
    fn show(self) -> String {
        self.to_string()
    }
}

impl Bound for f64 {
    const ZERO: Self = 0.0;
    fn show(self) -> String {
        self.to_string()
    }
}

impl Bound for Duration {
    const ZERO: Self = Duration::ZERO;
    fn show(self) -> String {
        IsoDuration(self).to_string()
    }
}

impl<T: Bound> Range<T> {
    /// Whether `value` is allowed (NaN never is).
    pub fn contains(&self, value: T) -> bool {
        (self.or_zero && value == T::ZERO) || (self.min <= value && value <= self.max)
    }

    /// `1 to 1000`, `0, or 0.001 to 10000`, `PT1S to PT1H`.
    pub fn describe(&self) -> String {
        let span = format!("{} to {}", self.min.show(), self.max.show());
        if self.or_zero {
            format!("{}, or {span}", T::ZERO.show())
        } else {
            span
        }
    }
}

/// 1 KiB, 1 MiB and 1 GiB, for byte ranges.
pub const KIB: i64 = 1024;
pub const MIB: i64 = 1024 * KIB;
pub const GIB: i64 = 1024 * MIB;

/// The ranges shared by several keys. Each says what an operator may want and no more: the
/// code behind a key stays correct across its whole range.
pub mod ranges {
    use super::{GIB, KIB, MIB, Range};
    use std::time::Duration;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const DAY: u64 = 86400;

    /// A timeout of one upstream request: a second to an hour.
    pub const REQUEST_TIMEOUT: Range<Duration> = Range::new(secs(1), secs(3600));
    /// How long an answer is cached: off (PT0S) to a year.
    pub const CACHE_TTL: Range<Duration> = Range::new(secs(0), secs(365 * DAY));
    /// Answers cached: none to a million.
    pub const CACHE_CAPACITY: Range<i64> = Range::new(0, 1_000_000);
    /// Bytes of answers cached: none to 1 GiB.
    pub const CACHE_MAX_BYTES: Range<i64> = Range::new(0, GIB);
    /// Upstream requests a second: 0 (no limit), or one every 1,000 s to 10,000 a second.
    pub const RATE_LIMIT: Range<f64> = Range::new(0.001, 10_000.0).or_zero();
    /// Requests in flight per connector (the AMQP prefetch).
    pub const CONCURRENCY: Range<i64> = Range::new(1, 1000);
    /// An importer's period: a second to a year.
    pub const PERIOD: Range<Duration> = Range::new(secs(1), secs(365 * DAY));
    /// The push queue size, in MB, above which an importer buffers.
    pub const QUEUE_THRESHOLD: Range<f64> = Range::new(1.0, 1_000_000.0);
    /// OpenCTI's confidence scale.
    pub const CONFIDENCE: Range<i64> = Range::new(0, 100);
    /// A score (`x_opencti_score`).
    pub const SCORE: Range<i64> = Range::new(0, 100);
    /// A TCP port.
    pub const PORT: Range<i64> = Range::new(1, 65535);
    /// The pings' interval: at least a second, and at most OpenCTI's 5 minutes, after which
    /// it considers a connector gone (and sends it no auto-enrichment).
    pub const PING_INTERVAL: Range<Duration> =
        Range::new(crate::config::MIN_PING_INTERVAL, secs(300));
    /// The drain on SIGTERM: none to an hour.
    pub const SHUTDOWN_TIMEOUT: Range<Duration> = Range::new(secs(0), secs(3600));
    /// How long transient OpenCTI failures are retried: not at all to a day.
    pub const MAX_RETRY_DURATION: Range<Duration> = Range::new(secs(0), secs(DAY));
    /// A cap on one upstream answer: 1 KiB to 1 GiB.
    pub const UPSTREAM_BYTES: Range<i64> = Range::new(KIB, GIB);
    /// A cap on one GraphQL answer: 1 MiB to 4 GiB.
    pub const OPENCTI_ANSWER_BYTES: Range<i64> = Range::new(MIB, 4 * GIB);
    /// The process's memory budget: 16 MiB to 1 TiB.
    pub const MEMORY_BUDGET: Range<i64> = Range::new(16 * MIB, 1024 * GIB);
    /// The broker's `consumer_timeout`: a minute to 30 days (a broker with none: set the most).
    pub const CONSUMER_TIMEOUT: Range<Duration> = Range::new(secs(60), secs(30 * DAY));
    /// How often IVRE's MaxMind files are checked for a replacement: every lookup to a day.
    pub const FILE_CHECK_INTERVAL: Range<Duration> = Range::new(secs(0), secs(DAY));
}

/// One key of a connector section, relative to the section (`token`, `max_tlp`).
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    pub key: &'static str,
    /// Extra environment names accepted (the Python connectors' own names).
    pub env_aliases: &'static [&'static str],
    pub kind: Kind,
    pub default: &'static str,
    pub doc: &'static str,
}

impl KeyDef {
    /// `max_tlp`: the highest TLP of an entity that may be sent upstream (`""`: no limit).
    pub const fn max_tlp(default: &'static str, doc: &'static str) -> KeyDef {
        KeyDef {
            key: "max_tlp",
            env_aliases: &[],
            kind: Kind::Tlp,
            default,
            doc,
        }
    }

    /// `cache.ttl`: how long an upstream answer is reused (`PT0S`: no cache).
    pub const fn cache_ttl(default: &'static str) -> KeyDef {
        KeyDef {
            key: "cache.ttl",
            env_aliases: &[],
            kind: Kind::Duration(ranges::CACHE_TTL),
            default,
            doc: "How long an upstream answer is reused for the same value (PT0S: no cache).",
        }
    }

    /// `cache.capacity`: how many answers the cache keeps.
    pub const CACHE_CAPACITY: KeyDef = KeyDef {
        key: "cache.capacity",
        env_aliases: &[],
        kind: Kind::Int(ranges::CACHE_CAPACITY),
        default: "10000",
        doc: "Upstream answers kept at most (least recently used go first).",
    };

    /// `cache.max_bytes`: how many bytes of answers the cache keeps.
    pub const CACHE_MAX_BYTES: KeyDef = KeyDef {
        key: "cache.max_bytes",
        env_aliases: &[],
        kind: Kind::Int(ranges::CACHE_MAX_BYTES),
        default: "8388608",
        doc: "Bytes of upstream answers (their JSON text) kept at most, 8 MiB by default: the cache's memory stays bounded whatever the answers' size.",
    };

    /// `rate_limit`: upstream requests a second at most (`0`: no limit).
    pub const RATE_LIMIT: KeyDef = KeyDef {
        key: "rate_limit",
        env_aliases: &[],
        kind: Kind::Float(ranges::RATE_LIMIT),
        default: "0",
        doc: "Upstream requests a second at most, fractions allowed (0: no limit). A 429 with Retry-After pauses all of the connector's requests whatever this is.",
    };

    /// `request_timeout`: the timeout of one upstream request.
    pub const fn request_timeout(default: &'static str, doc: &'static str) -> KeyDef {
        KeyDef {
            key: "request_timeout",
            env_aliases: &[],
            kind: Kind::Duration(ranges::REQUEST_TIMEOUT),
            default,
            doc,
        }
    }
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
    pub default_api_base_url: &'static str,
    /// Extra environment names of `api_base_url` (the Python connector's).
    pub api_base_url_aliases: &'static [&'static str],
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

/// Global keys (outside connector sections).
pub fn global_keys() -> Vec<KeySpec> {
    use Kind::*;
    vec![
        KeySpec::new(
            "opencti.url",
            &[],
            Url,
            "",
            "OpenCTI base URL (GraphQL at `<url>/graphql`). Required when a connector is enabled.",
        ),
        KeySpec::new(
            "opencti.token",
            &[],
            Secret,
            "",
            "API token of the OpenCTI connector user. Required when a connector is enabled.",
        ),
        KeySpec::new(
            "opencti.ssl_verify",
            &[],
            Bool,
            "true",
            "Verify OpenCTI's TLS certificate (pycti's default is false).",
        ),
        KeySpec::new(
            "opencti.max_answer_bytes",
            &[],
            Int(ranges::OPENCTI_ANSWER_BYTES),
            "268435456",
            "GraphQL answers larger than this (256 MiB) are refused.",
        ),
        KeySpec::new(
            "opencti.request_timeout",
            &[],
            Duration(ranges::REQUEST_TIMEOUT),
            "PT5M",
            "One GraphQL call gives up after this; a timeout, like a refused connection or a 5xx, then asks `about` whether OpenCTI is down.",
        ),
        KeySpec::new(
            "tls.ca_file",
            &[],
            Str,
            "",
            "PEM file of extra CA certificates trusted by every HTTP client (OpenCTI, upstreams) and by amqps.",
        ),
        KeySpec::new(
            "tls.ca_certificates",
            &["HTTPS_CA_CERTIFICATES"],
            Str,
            "",
            "PEM text of extra CA certificates (one or more), trusted as `tls.ca_file` is; `HTTPS_CA_CERTIFICATES` is what the integration manager passes to every connector.",
        ),
        KeySpec::new(
            "proxy.http_proxy",
            &["http_proxy", "HTTP_PROXY"],
            Secret,
            "",
            "Proxy of `http://` targets (OpenCTI and every upstream), `http://[user:password@]host:port`; the lowercase variable wins, as in curl.",
        ),
        KeySpec::new(
            "proxy.https_proxy",
            &["https_proxy", "HTTPS_PROXY"],
            Secret,
            "",
            "Proxy of `https://` targets (through a CONNECT tunnel).",
        ),
        KeySpec::new(
            "proxy.all_proxy",
            &["all_proxy", "ALL_PROXY"],
            Secret,
            "",
            "Proxy of either scheme when its own is unset.",
        ),
        KeySpec::new(
            "proxy.no_proxy",
            &["no_proxy", "NO_PROXY"],
            Str,
            "",
            "Comma-separated hosts that go direct: a domain and its subdomains, an IP address, a CIDR block, or `*` for all.",
        ),
        KeySpec::new(
            "log.level",
            &[],
            Str,
            "info",
            "Log level or tracing filter (`debug`, `info,opencti_connectors=debug`).",
        ),
        KeySpec::new("log.format", &[], Str, "text", "`text` or `json`."),
        KeySpec::new(
            "mq.host",
            &[],
            Str,
            "",
            "Override the RabbitMQ host returned by OpenCTI at registration.",
        ),
        KeySpec::new(
            "mq.port",
            &[],
            Int(ranges::PORT),
            "",
            "Override the RabbitMQ port.",
        ),
        KeySpec::new(
            "mq.vhost",
            &[],
            Str,
            "",
            "Override the RabbitMQ virtual host.",
        ),
        KeySpec::new(
            "mq.use_ssl",
            &[],
            Bool,
            "",
            "Override whether RabbitMQ uses TLS.",
        ),
        KeySpec::new("mq.user", &[], Str, "", "Override the RabbitMQ user."),
        KeySpec::new(
            "mq.pass",
            &[],
            Secret,
            "",
            "Override the RabbitMQ password.",
        ),
        KeySpec::new(
            "mq.consumer_timeout",
            &[],
            Duration(ranges::CONSUMER_TIMEOUT),
            "PT30M",
            "The broker's `consumer_timeout` (rabbitmq.conf; OpenCTI's compose sets 24 h): a message still unacked after 5/6 of it is given back, before the broker would close the channel.",
        ),
        KeySpec::new(
            "daemon.listen",
            &[],
            Str,
            "0.0.0.0:9095",
            "Address of `/healthz` and `/metrics`; empty disables them.",
        ),
        KeySpec::new(
            "daemon.ping_interval",
            &[],
            Duration(ranges::PING_INTERVAL),
            "PT40S",
            "Interval between pings (liveness and state) of each connector.",
        ),
        KeySpec::new(
            "daemon.shutdown_timeout",
            &[],
            Duration(ranges::SHUTDOWN_TIMEOUT),
            "PT30S",
            "How long in-flight work may take to finish on SIGTERM before it is requeued.",
        ),
        KeySpec::new(
            "daemon.max_retry_duration",
            &[],
            Duration(ranges::MAX_RETRY_DURATION),
            "PT10M",
            "How long transient OpenCTI failures (5xx, timeouts, LOCK_ERROR) inside one message or run are retried before its work fails.",
        ),
        KeySpec::new(
            "daemon.import_lock",
            &[],
            Bool,
            "true",
            "Importers run under a lock on RabbitMQ, so only one replica runs them (see Running replicas); false only for a single replica that cannot declare queues on the broker.",
        ),
        KeySpec::new(
            "daemon.memory_budget",
            &[],
            Int(ranges::MEMORY_BUDGET),
            "",
            "Bytes the large buffers of all requests together may hold (answers, their parsed form, the bundles being sent); requests wait for room. Default: 75 % of the cgroup memory limit when there is one, else 201326592 (192 MiB).",
        ),
        KeySpec::new(
            "daemon.max_upstream_bytes",
            &[],
            Int(ranges::UPSTREAM_BYTES),
            "33554432",
            "Upstream API answers larger than this (32 MiB) are refused (IPsum has its own cap).",
        ),
    ]
}

/// The common keys of a connector section.
fn section_keys(spec: &SectionSpec) -> Vec<KeySpec> {
    use Kind::*;
    let s = spec.section;
    let p = |k: &str| format!("{s}.{k}");
    let mut keys = vec![
        KeySpec::new(&p("enabled"), &[], Bool, "false", "Run this connector."),
        KeySpec::new(
            &p("api_base_url"),
            spec.api_base_url_aliases,
            Url,
            spec.default_api_base_url,
            "Base URL of the upstream API.",
        ),
        KeySpec::new(
            &p("connector.id"),
            &[],
            Uuid,
            "",
            "Connector id (a UUID, stable across restarts). Required when enabled.",
        ),
        KeySpec::new(
            &p("connector.name"),
            &[],
            Str,
            spec.default_name,
            "Display name in OpenCTI.",
        ),
        KeySpec::new(
            &p("connector.scope"),
            &[],
            Scope,
            spec.default_scope,
            "Comma-separated entity types.",
        ),
        KeySpec::new(
            &p("connector.confidence_level"),
            &[],
            Int(ranges::CONFIDENCE),
            "",
            "Accepted for compatibility; ignored (confidence comes from the connector user).",
        ),
        KeySpec::new(
            &p("connector.log_level"),
            &[],
            Str,
            "",
            "Log level for this connector's events (overrides log.level).",
        ),
        KeySpec::new(
            &p("connector.queue_protocol"),
            &[],
            Str,
            "api",
            "`api` (stixBundlePush) or `amqp` (push exchange, per-object messages).",
        ),
    ];
    match spec.kind {
        ConnectorKind::Enrichment {
            default_auto,
            default_concurrency,
            ..
        } => keys.extend([
            KeySpec::new(
                &p("connector.auto"),
                &[],
                Bool,
                if default_auto { "true" } else { "false" },
                "Enrich automatically on creation.",
            ),
            KeySpec::new(
                &p("connector.auto_update"),
                &[],
                Bool,
                "false",
                "Enrich automatically on update (OpenCTI ≥ 6.8.9).",
            ),
            KeySpec::new(
                &p("connector.concurrency"),
                &[],
                Int(ranges::CONCURRENCY),
                &default_concurrency.to_string(),
                "Requests processed at once (the queue prefetch).",
            ),
        ]),
        ConnectorKind::Import { default_period } => keys.extend([
            KeySpec::new(
                &p("connector.duration_period"),
                &[],
                Duration(ranges::PERIOD),
                &super::IsoDuration(default_period).to_string(),
                "Interval between runs (ISO-8601); the first run starts at start-up.",
            ),
            KeySpec::new(
                &p("connector.queue_threshold"),
                &[],
                Float(ranges::QUEUE_THRESHOLD),
                "500",
                "A run is skipped (buffering) while the connector's push queue holds more than this many MB.",
            ),
        ]),
    }
    for k in spec.keys {
        keys.push(KeySpec::new(
            &p(k.key),
            k.env_aliases,
            k.kind,
            k.default,
            k.doc,
        ));
    }
    keys
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
