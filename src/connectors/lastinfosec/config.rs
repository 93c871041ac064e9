//! The `lastinfosec` section: its keys, defaults and checks, and how it builds the connector.

use std::sync::Arc;

use opencti_connectors_macros::Keys;
use serde::Deserialize;

use super::LastinfosecConnector;
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, OfficialImage, Secret,
    SectionSpec, TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};
use crate::upstream::cache::CacheConfig;

/// The `lastinfosec` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "lastinfosec",
    kind: ConnectorKind::Enrichment {
        default_auto: false,
        playbook_compatible: true,
        default_concurrency: 8,
    },
    default_name: "LastInfoSec Enrichment",
    default_scope: "StixFile,Domain-Name,Hostname,Url",
    official: Some(OfficialImage {
        image: "lastinfosec-enrichment",
        default_id: None,
        // Its proxies are read from the `opencti:` block of its file.
        file_names: &[
            ("OPENCTI_PROXY_HTTP", "PROXY_HTTP"),
            ("OPENCTI_PROXY_HTTPS", "PROXY_HTTPS"),
        ],
    }),
    keys: LastinfosecConfig::KEYS,
};

/// Which LastInfoSec endpoints to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /stix21/search/` with `{"value": …}` for every type.
    #[default]
    Search,
    /// `GET /stix21/search_hash/{hash}` (files) and `GET /stix21/search_host/{host}` (the rest).
    HashHost,
}

/// `lastinfosec:` in the YAML file; each `#[key]` field is a key of the table.
#[derive(Debug, Clone, Deserialize, Keys)]
#[serde(deny_unknown_fields, default)]
#[keys(spec = SPEC)]
pub struct LastinfosecConfig {
    pub enabled: bool,
    /// Base URL of the upstream API.
    #[key(kind = Kind::Url, default = "https://api.client.lastinfosec.com/v2")]
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// LastInfoSec API key (required).
    #[key(kind = Kind::Secret, env = "CONFIG_LIS_APIKEY_CTI", required, sample = "lis-key")]
    pub api_key_cti: Option<Secret>,
    /// Proxy of LastInfoSec's http:// calls, instead of `proxy.http_proxy` (`proxy.no_proxy`
    /// still applies).
    #[key(kind = Kind::Url, env = "PROXY_HTTP")]
    pub proxy_http: Option<UrlSetting>,
    /// Proxy of LastInfoSec's https:// calls, instead of `proxy.https_proxy`
    /// (`proxy.no_proxy` still applies).
    #[key(kind = Kind::Url, env = "PROXY_HTTPS")]
    pub proxy_https: Option<UrlSetting>,
    /// `search` (POST /stix21/search/, as the current official connector) or `hash_host`
    /// (GET /stix21/search_hash/{hash} and /stix21/search_host/{host}).
    #[key(kind = Kind::Str, default = "search", sample = "hash_host")]
    pub endpoint: Endpoint,
    /// Highest TLP of an observable that may be sent to LastInfoSec.
    #[key(kind = Kind::Tlp, default = "TLP:AMBER")]
    pub max_tlp: TlpSetting,
    /// Timeout of one LastInfoSec request.
    #[key(like = KeyDef::REQUEST_TIMEOUT, default = "PT30S")]
    pub request_timeout: IsoDuration,
    /// The upstream answer cache.
    #[key(group = [KeyDef::cache_ttl("PT0S"), KeyDef::CACHE_CAPACITY, KeyDef::CACHE_MAX_BYTES])]
    pub cache: CacheConfig,
    #[key(like = KeyDef::RATE_LIMIT)]
    pub rate_limit: f64,
}

impl LastinfosecConfig {
    /// The daemon's trust and proxies, with `proxy_http`/`proxy_https` replacing the
    /// proxy of their scheme for LastInfoSec's calls; `no_proxy` still applies.
    pub fn egress(
        &self,
        global: Option<&crate::upstream::http::Egress>,
    ) -> Result<crate::upstream::http::Egress, String> {
        let parse = |value: &Option<UrlSetting>, key: &'static str| {
            value
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    crate::upstream::http::ProxyUrl::parse(v, key).map_err(|e| {
                        format!(
                            "{key}{}: {e}",
                            SPEC.env_hint(key.strip_prefix("lastinfosec.").unwrap_or(key))
                        )
                    })
                })
                .transpose()
        };
        let http = parse(&self.proxy_http, "lastinfosec.proxy_http")?;
        let https = parse(&self.proxy_https, "lastinfosec.proxy_https")?;
        let mut egress = global.cloned().unwrap_or_default();
        egress.proxies = egress.proxies.overridden(http, https);
        Ok(egress)
    }
}

impl ConnectorConfig for LastinfosecConfig {
    fn spec() -> &'static SectionSpec {
        &SPEC
    }

    fn upstream_urls(&self) -> Vec<String> {
        vec![self.api_base_url.as_str().to_string()]
    }

    fn proxies(
        &self,
        global: &crate::upstream::http::Egress,
    ) -> Result<crate::upstream::http::Proxies, String> {
        Ok(self.egress(Some(global))?.proxies)
    }

    fn base(&self) -> (bool, &ConnectorBlock) {
        (self.enabled, &self.connector)
    }

    fn check(&self, checks: &mut Checks) {
        checks.require_secret("api_key_cti", self.api_key_cti.as_ref());
        checks.url("api_base_url", &self.api_base_url);
        for (key, value) in [
            ("proxy_http", &self.proxy_http),
            ("proxy_https", &self.proxy_https),
        ] {
            if let Some(url) = value {
                checks.url(key, url);
            }
        }
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        let connector = LastinfosecConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
