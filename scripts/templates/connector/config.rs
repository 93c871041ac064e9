//! The `__name__` section: its keys (the struct is the table), checks, and how it builds the
//! connector.

use std::sync::Arc;

use opencti_connectors_macros::Keys;
use serde::Deserialize;

use super::__Name__Connector;
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, Secret, SectionSpec,
    TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};
use crate::upstream::cache::CacheConfig;

/// The `__name__` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "__name__",
    kind: ConnectorKind::Enrichment {
        default_auto: false,
        playbook_compatible: true,
        default_concurrency: 4,
    },
    default_name: "__Title__",
    default_scope: "IPv4-Addr,IPv6-Addr,Domain-Name",
    // No official image: a connector of the daemon's own.
    official: None,
    keys: __Name__Config::KEYS,
};

/// `__name__:` in the YAML file; each `#[key]` field is a key of the table.
#[derive(Debug, Clone, Deserialize, Keys)]
#[serde(deny_unknown_fields, default)]
#[keys(spec = SPEC)]
pub struct __Name__Config {
    pub enabled: bool,
    /// Base URL of the upstream API.
    #[key(kind = Kind::Url, default = "https://api.__name__.example")]
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// __Title__ API key, sent as `X-API-Key` (required).
    #[key(kind = Kind::Secret, required, sample = "__name__-key")]
    pub api_key: Option<Secret>,
    /// Highest TLP of an observable that may be sent to __Title__.
    #[key(kind = Kind::Tlp, default = "TLP:AMBER")]
    pub max_tlp: TlpSetting,
    /// Timeout of one __Title__ request.
    #[key(like = KeyDef::REQUEST_TIMEOUT, default = "PT30S")]
    pub request_timeout: IsoDuration,
    /// The upstream answer cache.
    #[key(group = [KeyDef::cache_ttl("PT1H"), KeyDef::CACHE_CAPACITY, KeyDef::CACHE_MAX_BYTES])]
    pub cache: CacheConfig,
    #[key(like = KeyDef::RATE_LIMIT)]
    pub rate_limit: f64,
}

impl ConnectorConfig for __Name__Config {
    fn spec() -> &'static SectionSpec {
        &SPEC
    }

    fn upstream_urls(&self) -> Vec<String> {
        vec![self.api_base_url.as_str().to_string()]
    }

    fn base(&self) -> (bool, &ConnectorBlock) {
        (self.enabled, &self.connector)
    }

    fn check(&self, checks: &mut Checks) {
        checks.require_secret("api_key", self.api_key.as_ref());
        checks.url("api_base_url", &self.api_base_url);
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        let connector = __Name__Connector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
