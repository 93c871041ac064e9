//! The `ipsum` section: its keys, defaults and checks, and how it builds the importer.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::feed::DEFAULT_MAX_FEED_BYTES;
use super::{DEFAULT_FEED, DEFAULT_MAX_IPS, IpsumConnector};
use crate::config::keys::{GIB, KIB, Range, ranges};
use crate::config::{
    Checks, ConnectorBlock, ConnectorKind, IsoDuration, KeyDef, Kind, Secret, SectionSpec,
    TlpLevel, UrlSetting,
};
use crate::connectors::{BuildContext, ConnectorConfig, Hosted};
use crate::stix::Tlp;

/// The `ipsum` section's shape.
pub static SPEC: SectionSpec = SectionSpec {
    section: "ipsum",
    kind: ConnectorKind::Import {
        default_period: Duration::from_secs(6 * 3600),
    },
    default_name: "IPsum",
    default_scope: "ipsum",
    default_api_base_url: DEFAULT_FEED,
    api_base_url_aliases: &["CONNECTOR_IPSUM_API_BASE_URL"],
    keys: &[
        KeyDef {
            key: "api_key",
            env_aliases: &["CONNECTOR_IPSUM_API_KEY"],
            kind: Kind::Secret,
            default: "",
            doc: "Optional GitHub token, sent as `Authorization: Bearer`.",
        },
        KeyDef {
            key: "default_x_opencti_score",
            env_aliases: &["CONNECTOR_IPSUM_DEFAULT_X_OPENCTI_SCORE"],
            kind: Kind::Int(ranges::SCORE),
            default: "60",
            doc: "Score of every IP when the feed has no counts; the score of count 5 otherwise.",
        },
        KeyDef {
            key: "tlp_level",
            env_aliases: &["CONNECTOR_IPSUM_TLP_LEVEL"],
            kind: Kind::Str,
            default: "white",
            doc: "Marking of everything imported: `white`/`clear`, `green`, `amber`, `amber+strict`, `red`.",
        },
        KeyDef::request_timeout("PT2M", "Timeout of the feed download."),
        KeyDef {
            key: "max_feed_bytes",
            env_aliases: &[],
            // A levels file is a few hundred KiB; the whole blocklist about 3 MiB.
            kind: Kind::Int(Range::new(KIB, GIB)),
            default: "67108864",
            doc: "A feed larger than this (64 MiB) is refused, before its body when the server says its length.",
        },
        KeyDef {
            key: "max_ips",
            env_aliases: &[],
            kind: Kind::Int(Range::new(1, 100_000_000)),
            default: "1000000",
            doc: "Addresses one run imports at most (networks expanded); past it the run stops and its work says why.",
        },
    ],
};

/// `ipsum:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpsumConfig {
    pub enabled: bool,
    pub api_base_url: UrlSetting,
    pub connector: ConnectorBlock,
    pub api_key: Option<Secret>,
    pub default_x_opencti_score: i64,
    pub tlp_level: TlpLevel,
    pub request_timeout: IsoDuration,
    pub max_feed_bytes: u64,
    pub max_ips: u64,
}

impl Default for IpsumConfig {
    fn default() -> Self {
        IpsumConfig {
            enabled: false,
            api_base_url: DEFAULT_FEED.into(),
            connector: ConnectorBlock::default(),
            api_key: None,
            default_x_opencti_score: 60,
            tlp_level: TlpLevel(Tlp::Clear),
            request_timeout: IsoDuration(Duration::from_secs(120)),
            max_feed_bytes: DEFAULT_MAX_FEED_BYTES as u64,
            max_ips: DEFAULT_MAX_IPS as u64,
        }
    }
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

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, String> {
        let connector = IpsumConnector::new(self, ctx)?;
        Ok(Hosted::Import(Arc::new(connector)))
    }
}
