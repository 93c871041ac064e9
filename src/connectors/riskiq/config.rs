//! The `riskiq` section: its keys, defaults and checks, and how it builds the connector.

use std::sync::Arc;
use std::time::Duration;

use opencti_connectors_macros::Keys;
use serde::Deserialize;

use super::RiskiqConnector;
use crate::config::keys::Range;
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, OfficialImage, Secret,
    SectionSpec, TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};
use crate::upstream::cache::CacheConfig;

/// The `riskiq` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "riskiq",
    kind: ConnectorKind::Enrichment {
        default_auto: false,
        playbook_compatible: true,
        default_concurrency: 4,
    },
    default_name: "RiskIQ PassiveTotal",
    default_scope: "IPv4-Addr,Domain-Name",
    official: Some(OfficialImage {
        image: "riskiq-passive-total",
        default_id: None,
        file_names: &[],
    }),
    keys: RiskiqConfig::KEYS,
};

/// `riskiq:` in the YAML file; each `#[key]` field is a key of the table.
#[derive(Debug, Clone, Deserialize, Keys)]
#[serde(deny_unknown_fields, default)]
#[keys(spec = SPEC)]
pub struct RiskiqConfig {
    pub enabled: bool,
    /// Base URL of the upstream API.
    #[key(kind = Kind::Url, default = "https://api.riskiq.net/pt")]
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// PassiveTotal account e-mail (HTTP Basic user; required).
    #[key(kind = Kind::Secret, required, sample = "analyst@example.com")]
    pub username: Option<Secret>,
    /// PassiveTotal API key (HTTP Basic password; required).
    #[key(kind = Kind::Secret, required, sample = "riskiq-key")]
    pub api_key: Option<Secret>,
    /// Highest TLP of an observable that may be sent to PassiveTotal (the official connector
    /// has no default and sends every TLP; `TLP:RED` lets every standard TLP through).
    #[key(kind = Kind::Tlp, default = "TLP:AMBER")]
    pub max_tlp: TlpSetting,
    /// Only resolutions seen within this window (sent to the API as `start`).
    #[key(
        kind = Kind::Duration(Range::new(Duration::from_secs(60), Duration::from_secs(3650 * 86400))),
        default = "P30D"
    )]
    pub import_last_seen_time_window: IsoDuration,
    /// Read `/v2/account/quota` at most this often; counted down locally in between.
    // PT0S reads the quota before every lookup, as the reference does.
    #[key(
        kind = Kind::Duration(Range::new(Duration::ZERO, Duration::from_secs(86400))),
        default = "PT10M"
    )]
    pub quota_check_interval: IsoDuration,
    /// Timeout of one PassiveTotal request.
    #[key(like = KeyDef::REQUEST_TIMEOUT, default = "PT30S")]
    pub request_timeout: IsoDuration,
    /// The upstream answer cache.
    #[key(group = [KeyDef::cache_ttl("P1D"), KeyDef::CACHE_CAPACITY, KeyDef::CACHE_MAX_BYTES])]
    pub cache: CacheConfig,
    #[key(like = KeyDef::RATE_LIMIT)]
    pub rate_limit: f64,
}

impl ConnectorConfig for RiskiqConfig {
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
        checks.require_secret("username", self.username.as_ref());
        checks.require_secret("api_key", self.api_key.as_ref());
        checks.url("api_base_url", &self.api_base_url);
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        let connector = RiskiqConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
