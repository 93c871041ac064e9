//! The `lastinfosec` section: its keys, defaults and checks, and how it builds the connector.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::LastinfosecConnector;
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, Secret, SectionSpec,
    TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, ConnectorConfig, Hosted};
use crate::stix::Tlp;
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
    default_api_base_url: "https://api.client.lastinfosec.com/v2",
    api_base_url_aliases: &[],
    keys: &[
        KeyDef {
            key: "api_key_cti",
            env_aliases: &["CONFIG_LIS_APIKEY_CTI"],
            kind: Kind::Secret,
            default: "",
            doc: "LastInfoSec API key (required).",
        },
        KeyDef {
            key: "proxy_http",
            env_aliases: &["PROXY_HTTP"],
            kind: Kind::Url,
            default: "",
            doc: "Proxy of LastInfoSec's http:// calls, instead of `proxy.http_proxy` (`proxy.no_proxy` still applies).",
        },
        KeyDef {
            key: "proxy_https",
            env_aliases: &["PROXY_HTTPS"],
            kind: Kind::Url,
            default: "",
            doc: "Proxy of LastInfoSec's https:// calls, instead of `proxy.https_proxy` (`proxy.no_proxy` still applies).",
        },
        KeyDef {
            key: "endpoint",
            env_aliases: &[],
            kind: Kind::Str,
            default: "search",
            doc: "`search` (POST /stix21/search/, as the current official connector) or `hash_host` (GET /stix21/search_hash/{hash} and /stix21/search_host/{host}).",
        },
        KeyDef::max_tlp(
            "TLP:AMBER",
            "Highest TLP of an observable that may be sent to LastInfoSec.",
        ),
        KeyDef::request_timeout("PT30S", "Timeout of one LastInfoSec request."),
        KeyDef::cache_ttl("PT0S"),
        KeyDef::CACHE_CAPACITY,
        KeyDef::CACHE_MAX_BYTES,
        KeyDef::RATE_LIMIT,
    ],
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

/// `lastinfosec:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LastinfosecConfig {
    pub enabled: bool,
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// The upstream answer cache.
    pub cache: CacheConfig,
    /// Upstream requests a second at most (0: no limit).
    pub rate_limit: f64,
    pub api_key_cti: Option<Secret>,
    pub proxy_http: Option<UrlSetting>,
    pub proxy_https: Option<UrlSetting>,
    pub endpoint: Endpoint,
    pub max_tlp: TlpSetting,
    pub request_timeout: IsoDuration,
}

impl Default for LastinfosecConfig {
    fn default() -> Self {
        LastinfosecConfig {
            enabled: false,
            api_base_url: SPEC.default_api_base_url.into(),
            connector: ConnectorBlock::default(),
            cache: CacheConfig::keeping_for(Duration::from_secs(0)),
            rate_limit: 0.0,
            api_key_cti: None,
            proxy_http: None,
            proxy_https: None,
            endpoint: Endpoint::Search,
            max_tlp: TlpSetting(Tlp::Amber),
            request_timeout: IsoDuration(Duration::from_secs(30)),
        }
    }
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

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, String> {
        let connector = LastinfosecConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
