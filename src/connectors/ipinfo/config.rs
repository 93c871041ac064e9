//! The `ipinfo` section: its keys, defaults and checks, and how it builds the connector.

use std::sync::Arc;

use opencti_connectors_macros::Keys;
use serde::Deserialize;

use super::IpinfoConnector;
use super::plans::{self, Api};
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, OfficialImage, Secret,
    SectionSpec, TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};
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
    official: Some(OfficialImage {
        image: "ipinfo",
        // Its default, `ipinfo--43cf861c-…`, is no UUID: `CONNECTOR_ID` must be set.
        default_id: None,
        file_names: &[],
    }),
    keys: IpinfoConfig::KEYS,
};

/// The legacy API's base URL, `api_base_url`'s default.
pub const DEFAULT_API_BASE_URL: &str = "https://ipinfo.io";

/// `ipinfo:` in the YAML file; each `#[key]` field is a key of the table.
#[derive(Debug, Clone, Deserialize, Keys)]
#[serde(deny_unknown_fields, default)]
#[keys(spec = SPEC)]
pub struct IpinfoConfig {
    pub enabled: bool,
    /// Base URL of the upstream API.
    #[key(kind = Kind::Url, default = DEFAULT_API_BASE_URL)]
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// IPinfo API token (required).
    #[key(kind = Kind::Secret, required, sample = "ipinfo-token")]
    pub token: Option<Secret>,
    /// Highest TLP of an observable that may be sent to IPinfo.
    #[key(kind = Kind::Tlp, default = "TLP:AMBER")]
    pub max_tlp: TlpSetting,
    /// Name the autonomous system by its owner (`Google LLC`) instead of `AS15169`.
    #[key(kind = Kind::Bool, default = "true")]
    pub use_asn_name: bool,
    /// IPinfo API: `legacy` (`ipinfo.io/<ip>/json`, as the official connector), `lite` (free,
    /// `api.ipinfo.io/lite/<ip>`: country and AS) or `lookup` (Core/Plus,
    /// `api.ipinfo.io/lookup/<ip>`). With `lite`/`lookup` the default base URL is
    /// `https://api.ipinfo.io`.
    #[key(kind = Kind::Str, default = "legacy", sample = "lookup")]
    pub api: Api,
    /// Timeout of one IPinfo request.
    #[key(like = KeyDef::REQUEST_TIMEOUT, default = "PT30S")]
    pub request_timeout: IsoDuration,
    /// The upstream answer cache.
    #[key(group = [KeyDef::cache_ttl("P1D"), KeyDef::CACHE_CAPACITY, KeyDef::CACHE_MAX_BYTES])]
    pub cache: CacheConfig,
    #[key(like = KeyDef::RATE_LIMIT)]
    pub rate_limit: f64,
}

impl IpinfoConfig {
    /// The base URL asked: `api_base_url`, or `https://api.ipinfo.io` when it was left at the
    /// legacy default and `api` is `lite` or `lookup`.
    pub fn base_url(&self) -> &str {
        if self.api != Api::Legacy && &*self.api_base_url == DEFAULT_API_BASE_URL {
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

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        let connector = IpinfoConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
