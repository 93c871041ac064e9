//! The `ipsum` section: its keys, defaults and checks, and how it builds the importer.

use std::sync::Arc;
use std::time::Duration;

use opencti_connectors_macros::Keys;
use serde::Deserialize;

use super::{DEFAULT_FEED, IpsumConnector};
use crate::config::keys::{GIB, KIB, Range, ranges};
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, OfficialImage, Secret,
    SectionSpec, TlpLevel, UrlSetting,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};

/// The `ipsum` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "ipsum",
    kind: ConnectorKind::Import {
        default_period: Duration::from_secs(6 * 3600),
    },
    default_name: "IPsum",
    default_scope: "ipsum",
    official: Some(OfficialImage {
        image: "ipsum",
        default_id: Some("9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"),
        file_names: &[],
    }),
    keys: IpsumConfig::KEYS,
};

/// `ipsum:` in the YAML file; each `#[key]` field is a key of the table.
#[derive(Debug, Clone, Deserialize, Keys)]
#[serde(deny_unknown_fields, default)]
#[keys(spec = SPEC)]
pub struct IpsumConfig {
    pub enabled: bool,
    /// Base URL of the upstream API.
    #[key(kind = Kind::Url, default = DEFAULT_FEED, env = "CONNECTOR_IPSUM_API_BASE_URL")]
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    /// Optional GitHub token, sent as `Authorization: Bearer`.
    #[key(kind = Kind::Secret, env = "CONNECTOR_IPSUM_API_KEY")]
    pub api_key: Option<Secret>,
    /// Score of every IP when the feed has no counts; the score of count 5 otherwise.
    #[key(
        kind = Kind::Int(ranges::SCORE),
        default = "60",
        env = "CONNECTOR_IPSUM_DEFAULT_X_OPENCTI_SCORE"
    )]
    pub default_x_opencti_score: i64,
    /// Marking of everything imported: `white`/`clear`, `green`, `amber`, `amber+strict`,
    /// `red`.
    #[key(kind = Kind::Str, default = "white", env = "CONNECTOR_IPSUM_TLP_LEVEL", sample = "amber")]
    pub tlp_level: TlpLevel,
    /// Timeout of the feed download.
    #[key(like = KeyDef::REQUEST_TIMEOUT, default = "PT2M")]
    pub request_timeout: IsoDuration,
    /// A feed larger than this (64 MiB) is refused, before its body when the server says its
    /// length.
    // A levels file is a few hundred KiB; the whole blocklist about 3 MiB.
    #[key(kind = Kind::Int(Range::new(KIB, GIB)), default = "67108864")]
    pub max_feed_bytes: u64,
    /// Addresses one run imports at most (networks expanded); past it the run stops and its
    /// work says why.
    #[key(kind = Kind::Int(Range::new(1, 100_000_000)), default = "1000000")]
    pub max_ips: u64,
}

impl ConnectorConfig for IpsumConfig {
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
        // The numbers' ranges are the key table's, checked as the configuration loads.
        checks.url("api_base_url", &self.api_base_url);
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        let connector = IpsumConnector::new(self, ctx)?;
        Ok(Hosted::Import(Arc::new(connector)))
    }
}
