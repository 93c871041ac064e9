//! The `ipinfo` section: its keys, defaults and checks, and how it builds the connector.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::IpinfoConnector;
use super::plans::{self, Api};
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, Secret, SectionSpec,
    TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, ConnectorConfig, Hosted};
use crate::stix::Tlp;
use crate::upstream::cache::CacheConfig;

/// The `ipinfo` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "ipinfo",
    kind: ConnectorKind::Enrichment {
        default_auto: true,
        playbook_compatible: true,
        default_concurrency: 32,
    },
    default_name: "IPInfo",
    default_scope: "IPv4-Addr,IPv6-Addr",
    default_api_base_url: "https://ipinfo.io",
    api_base_url_aliases: &[],
    keys: &[
        KeyDef {
            key: "token",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "IPinfo API token (required).",
        },
        KeyDef::max_tlp(
            "TLP:AMBER",
            "Highest TLP of an observable that may be sent to IPinfo.",
        ),
        KeyDef {
            key: "use_asn_name",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Name the autonomous system by its owner (`Google LLC`) instead of `AS15169`.",
        },
        KeyDef {
            key: "api",
            env_aliases: &[],
            kind: Kind::Str,
            default: "legacy",
            doc: "IPinfo API: `legacy` (`ipinfo.io/<ip>/json`, as the official connector), `lite` (free, `api.ipinfo.io/lite/<ip>`: country and AS) or `lookup` (Core/Plus, `api.ipinfo.io/lookup/<ip>`). With `lite`/`lookup` the default base URL is `https://api.ipinfo.io`.",
        },
        KeyDef::request_timeout("PT30S", "Timeout of one IPinfo request."),
        KeyDef::cache_ttl("P1D"),
        KeyDef::CACHE_CAPACITY,
        KeyDef::CACHE_MAX_BYTES,
        KeyDef::RATE_LIMIT,
    ],
};

/// `ipinfo:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpinfoConfig {
    pub enabled: bool,
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// The upstream answer cache.
    pub cache: CacheConfig,
    /// Upstream requests a second at most (0: no limit).
    pub rate_limit: f64,
    pub token: Option<Secret>,
    pub max_tlp: TlpSetting,
    pub use_asn_name: bool,
    /// Which IPinfo API to ask.
    pub api: Api,
    pub request_timeout: IsoDuration,
}

impl Default for IpinfoConfig {
    fn default() -> Self {
        IpinfoConfig {
            enabled: false,
            api_base_url: SPEC.default_api_base_url.into(),
            connector: ConnectorBlock::default(),
            cache: CacheConfig::keeping_for(Duration::from_secs(86400)),
            rate_limit: 0.0,
            token: None,
            max_tlp: TlpSetting(Tlp::Amber),
            use_asn_name: true,
            api: Api::Legacy,
            request_timeout: IsoDuration(Duration::from_secs(30)),
        }
    }
}

impl IpinfoConfig {
    /// The base URL asked: `api_base_url`, or `https://api.ipinfo.io` when it was left at the
    /// legacy default and `api` is `lite` or `lookup`.
    pub fn base_url(&self) -> &str {
        if self.api != Api::Legacy && &*self.api_base_url == SPEC.default_api_base_url {
            plans::API_BASE_URL
        } else {
            &self.api_base_url
        }
    }
}

impl ConnectorConfig for IpinfoConfig {
    fn spec() -> &'static SectionSpec {
        &SPEC
    }

    fn upstream_urls(&self) -> Vec<String> {
        vec![self.base_url().to_string()]
    }

    fn base(&self) -> (bool, &ConnectorBlock) {
        (self.enabled, &self.connector)
    }

    fn check(&self, checks: &mut Checks) {
        checks.require_secret("token", self.token.as_ref());
        checks.url("api_base_url", &self.api_base_url);
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, String> {
        let connector = IpinfoConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
