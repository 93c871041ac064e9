//! The `riskiq` section: its keys, defaults and checks, and how it builds the connector.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::RiskiqConnector;
use crate::config::keys::Range;
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, Secret, SectionSpec,
    TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, ConnectorConfig, Hosted};
use crate::stix::Tlp;
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
    default_api_base_url: "https://api.riskiq.net/pt",
    api_base_url_aliases: &[],
    keys: &[
        KeyDef {
            key: "username",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "PassiveTotal account e-mail (HTTP Basic user; required).",
        },
        KeyDef {
            key: "api_key",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "PassiveTotal API key (HTTP Basic password; required).",
        },
        KeyDef::max_tlp(
            "TLP:AMBER",
            "Highest TLP of an observable that may be sent to PassiveTotal (the official connector has no default and sends every TLP; `TLP:RED` lets every standard TLP through).",
        ),
        KeyDef {
            key: "import_last_seen_time_window",
            env_aliases: &[],
            kind: Kind::Duration(Range::new(
                Duration::from_secs(60),
                Duration::from_secs(3650 * 86400),
            )),
            default: "P30D",
            doc: "Only resolutions seen within this window (sent to the API as `start`).",
        },
        KeyDef {
            key: "quota_check_interval",
            env_aliases: &[],
            // PT0S reads the quota before every lookup, as the reference does.
            kind: Kind::Duration(Range::new(Duration::ZERO, Duration::from_secs(86400))),
            default: "PT10M",
            doc: "Read `/v2/account/quota` at most this often; counted down locally in between.",
        },
        KeyDef::request_timeout("PT30S", "Timeout of one PassiveTotal request."),
        KeyDef::cache_ttl("P1D"),
        KeyDef::CACHE_CAPACITY,
        KeyDef::CACHE_MAX_BYTES,
        KeyDef::RATE_LIMIT,
    ],
};

/// `riskiq:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskiqConfig {
    pub enabled: bool,
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// The upstream answer cache.
    pub cache: CacheConfig,
    /// Upstream requests a second at most (0: no limit).
    pub rate_limit: f64,
    pub username: Option<Secret>,
    pub api_key: Option<Secret>,
    pub max_tlp: TlpSetting,
    pub import_last_seen_time_window: IsoDuration,
    pub quota_check_interval: IsoDuration,
    pub request_timeout: IsoDuration,
}

impl Default for RiskiqConfig {
    fn default() -> Self {
        RiskiqConfig {
            enabled: false,
            api_base_url: SPEC.default_api_base_url.into(),
            connector: ConnectorBlock::default(),
            cache: CacheConfig::keeping_for(Duration::from_secs(86400)),
            rate_limit: 0.0,
            username: None,
            api_key: None,
            max_tlp: TlpSetting(Tlp::Amber),
            import_last_seen_time_window: IsoDuration(Duration::from_secs(30 * 86400)),
            quota_check_interval: IsoDuration(Duration::from_secs(600)),
            request_timeout: IsoDuration(Duration::from_secs(30)),
        }
    }
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

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, String> {
        let connector = RiskiqConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
