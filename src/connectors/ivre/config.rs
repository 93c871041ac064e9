//! The `ivre` section: its keys, defaults and checks, the endpoint of each purpose, and how
//! it builds the connector.

use std::path::PathBuf;
use std::sync::Arc;

use opencti_connectors_macros::Keys;
use serde::Deserialize;

use super::IvreConnector;
use super::client::Endpoint;
use super::maxmind;
use crate::config::keys::{Range, ranges};
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, OfficialImage, Secret,
    SectionSpec, TlpSetting, UrlSetting,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};
use crate::upstream::cache::CacheConfig;

/// The `ivre` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "ivre",
    kind: ConnectorKind::Enrichment {
        default_auto: false,
        playbook_compatible: false,
        default_concurrency: 8,
    },
    default_name: "IVRE",
    default_scope: "autonomous-system,domain-name,ipv4-addr,ipv6-addr,mac-addr,x509-certificate",
    official: Some(OfficialImage {
        image: "ivre",
        default_id: None,
        file_names: &[],
    }),
    keys: IvreConfig::KEYS,
};

/// Which route serves the scans source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScansRoute {
    #[default]
    Scans,
    View,
}

impl ScansRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            ScansRoute::Scans => "scans",
            ScansRoute::View => "view",
        }
    }
}

/// `ivre:` in the YAML file; each `#[key]` field is a key of the table.
#[derive(Debug, Clone, Deserialize, Keys)]
#[serde(deny_unknown_fields, default)]
#[keys(spec = SPEC)]
pub struct IvreConfig {
    pub enabled: bool,
    /// Base URL of the upstream API.
    // IVRE's web API mount point (the reference's `db_url`), e.g. `https://ivre.example.com/cgi`.
    #[key(kind = Kind::Url, env = "IVRE_DB_URL", required, sample = "http://ivre.test/cgi")]
    pub api_base_url: Option<UrlSetting>,
    pub connector: ConnectorBlock,
    /// Base URL for `/ipdata` (default: `api_base_url`), or `maxmind:///dir`: the GeoLite2
    /// City, Country and ASN `.mmdb` files of that directory, read locally.
    #[key(kind = Kind::Str, sample = "http://ivre.test/cgi")]
    pub db_url_data: Option<UrlSetting>,
    /// Base URL for `/passive` (default: `api_base_url`).
    #[key(kind = Kind::Str, sample = "http://ivre.test/cgi")]
    pub db_url_passive: Option<UrlSetting>,
    /// Base URL for `/scans` or `/view` (default: `api_base_url`).
    #[key(kind = Kind::Str, sample = "http://ivre.test/cgi")]
    pub db_url_scans: Option<UrlSetting>,
    /// `scans` (the nmap DB, as the reference) or `view` (needed for AS lookups).
    #[key(kind = Kind::Str, default = "scans", sample = "view")]
    pub scans_route: ScansRoute,
    /// `Referer` sent (default `<scheme>://<host>/` of each URL); one of the server's
    /// WEB_ALLOWED_REFERERS behind a proxy.
    #[key(kind = Kind::Str)]
    pub referer: Option<String>,
    /// IVRE API key, sent as `X-API-Key` (also passes the Referer check).
    #[key(kind = Kind::Secret)]
    pub api_key: Option<Secret>,
    /// Highest TLP sent to IVRE; unset means no restriction (as the reference).
    #[key(kind = Kind::Tlp)]
    pub max_tlp: Option<TlpSetting>,
    /// Use MaxMind data (`/ipdata`, or the files of `db_url_data: maxmind://`) for IPs.
    #[key(kind = Kind::Bool, default = "true")]
    pub use_data: bool,
    /// Use the passive DB.
    #[key(kind = Kind::Bool, default = "true")]
    pub use_passive: bool,
    /// Passive lookups for AS (the web API has none: skipped with a warning).
    #[key(kind = Kind::Bool, default = "true")]
    pub use_passive_as: bool,
    /// Passive DNS lookups for domains.
    #[key(kind = Kind::Bool, default = "true")]
    pub use_passive_domain: bool,
    /// Use the scans DB.
    #[key(kind = Kind::Bool, default = "true")]
    pub use_scans: bool,
    /// Scans lookups for AS (needs `scans_route: view`).
    #[key(kind = Kind::Bool, default = "false")]
    pub use_scans_as: bool,
    /// Scans lookups for domains (the name and its subdomains).
    #[key(kind = Kind::Bool, default = "false")]
    pub use_scans_domain: bool,
    /// Records per page (`limit:`).
    #[key(kind = Kind::Int(Range::new(1, 10_000)), default = "200")]
    pub page_size: u64,
    /// Cap per query (0: none); paging stops with a warning when hit.
    #[key(kind = Kind::Int(Range::new(0, 1_000_000)), default = "10000")]
    pub max_records: u64,
    /// With `db_url_data: maxmind://`: how often the files' modification time and size are
    /// compared, and replaced files re-opened (PT0S: at every lookup).
    #[key(kind = Kind::Duration(ranges::FILE_CHECK_INTERVAL), default = "PT1M")]
    pub maxmind_check_interval: IsoDuration,
    /// Timeout of one IVRE request.
    #[key(kind = Kind::Duration(ranges::REQUEST_TIMEOUT), default = "PT2M")]
    pub http_timeout: IsoDuration,
    /// Verify IVRE's TLS certificate.
    #[key(kind = Kind::Bool, default = "true")]
    pub verify_tls: bool,
    /// The upstream answer cache.
    #[key(group = [KeyDef::cache_ttl("PT1H"), KeyDef::CACHE_CAPACITY, KeyDef::CACHE_MAX_BYTES])]
    pub cache: CacheConfig,
    #[key(like = KeyDef::RATE_LIMIT)]
    pub rate_limit: f64,
}

/// Where the data purpose reads from.
#[derive(Debug, Clone)]
pub enum DataUrl {
    /// IVRE's web API, `/ipdata/<ip>`.
    Web(Endpoint),
    /// The GeoLite2 files of a directory (`maxmind:///dir`).
    MaxMind(PathBuf),
}

/// The source of each purpose, or why it is unusable.
pub struct Purposes {
    pub data: Result<DataUrl, String>,
    pub passive: Result<Endpoint, String>,
    pub scans: Result<Endpoint, String>,
}

impl Purposes {
    /// `(purpose, why)` of each unusable purpose.
    pub fn unusable(&self) -> Vec<(&'static str, &str)> {
        [
            ("data", self.data.as_ref().err()),
            ("passive", self.passive.as_ref().err()),
            ("scans", self.scans.as_ref().err()),
        ]
        .into_iter()
        .filter_map(|(p, e)| e.map(|e| (p, e.as_str())))
        .collect()
    }
}

impl IvreConfig {
    /// The source of each purpose: `maxmind://` serves the data purpose only.
    pub fn purposes(&self) -> Purposes {
        let [data, passive, scans] = self.endpoints();
        let data = match maxmind::directory(&data.0) {
            Some(dir) => dir.map(DataUrl::MaxMind),
            None => data.1.map(DataUrl::Web),
        };
        Purposes {
            data,
            passive: passive.1,
            scans: scans.1,
        }
    }

    /// The URL of each purpose and its web endpoint, or why it is unusable.
    fn endpoints(&self) -> [(String, Result<Endpoint, String>); 3] {
        let pick = |specific: &Option<UrlSetting>| {
            specific
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .or(self.api_base_url.as_deref())
                .unwrap_or_default()
                .to_string()
        };
        let parse = |url: String| {
            let endpoint = if url.trim().is_empty() {
                Err("no URL configured".to_string())
            } else {
                Endpoint::parse(
                    &url,
                    self.referer.as_deref().filter(|r| !r.is_empty()),
                    self.api_key.as_ref().filter(|k| !k.is_blank()),
                )
            };
            (url, endpoint)
        };
        [
            parse(pick(&self.db_url_data)),
            parse(pick(&self.db_url_passive)),
            parse(pick(&self.db_url_scans)),
        ]
    }
}

impl ConnectorConfig for IvreConfig {
    fn spec() -> &'static SectionSpec {
        &SPEC
    }

    fn upstream_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        for url in [
            &self.api_base_url,
            &self.db_url_data,
            &self.db_url_passive,
            &self.db_url_scans,
        ]
        .into_iter()
        .flatten()
        {
            let url = url.as_str().to_string();
            if url.starts_with("http") && !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }

    fn base(&self) -> (bool, &ConnectorBlock) {
        (self.enabled, &self.connector)
    }

    fn check(&self, checks: &mut Checks) {
        let purposes = self.purposes();
        let unusable = purposes.unusable();
        if unusable.len() == 3 {
            let why: Vec<String> = unusable
                .into_iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect();
            checks.error(
                "api_base_url",
                format!("no usable IVRE web API URL ({})", why.join("; ")),
            );
        } else if let [(data, _), ..] = &self.endpoints()
            && let Some(Err(why)) = maxmind::directory(data)
            && self.use_data
        {
            // Files that cannot be found fail the start; so does a path that cannot be one.
            checks.error("db_url_data", why);
        }
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        let connector = IvreConnector::new(self, ctx)?;
        Ok(Hosted::Enrichment(Arc::new(connector)))
    }
}
