//! IPsum scheduled importer: the IPsum malicious-IP feed → IPv4/IPv6 observables, Indicators
//! and based-on relationships. Spec: `shared/spec/connectors/ipsum.md`; the seed (what users
//! asked for) adds the Indicators, the relationships and the count-based score.

pub mod feed;

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{
    ConnectorKind, ConnectorSettings, IsoDuration, KeyDef, Kind, Secret, SectionSpec, check_url,
};
use crate::connectors::{ConnectorError, Hosted, ImportConnector, ImportContext};
use crate::http;
use crate::stix::{Identity, Indicator, Observable, Relationship, Tlp, to_object};
pub use feed::{FeedIp, Parsed, parse};

/// The reference's default feed: IPs on at least 5 blacklists.
pub const DEFAULT_FEED: &str =
    "https://raw.githubusercontent.com/stamparm/ipsum/refs/heads/master/levels/5.txt";
/// IPs per chunk: each chunk (3 objects an IP, plus author and marking) is built, sent and
/// dropped before the next, so the whole bundle never exists in memory.
pub const CHUNK_IPS: usize = 2_000;
/// The feed download is refused above this size.
pub const MAX_FEED_BYTES: usize = 64 * 1024 * 1024;

const AUTHOR: &str = "IPsum";
const AUTHOR_DESCRIPTION: &str =
    "IPsum is a threat intelligence feed based on 30+ different publicly available lists.";

/// The `ipsum` section's shape.
pub const SPEC: SectionSpec = SectionSpec {
    section: "ipsum",
    kind: ConnectorKind::Import,
    default_name: "IPsum",
    default_scope: "ipsum",
    default_auto: false,
    default_api_base_url: DEFAULT_FEED,
    api_base_url_aliases: &["CONNECTOR_IPSUM_API_BASE_URL"],
    default_duration_period: "PT6H",
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
            kind: Kind::Int,
            default: "60",
            doc: "Score of every IP when the feed has no counts; the score of count 5 otherwise (0–100).",
        },
        KeyDef {
            key: "tlp_level",
            env_aliases: &["CONNECTOR_IPSUM_TLP_LEVEL"],
            kind: Kind::Str,
            default: "white",
            doc: "Marking of everything imported: `white`/`clear`, `green`, `amber`, `amber+strict`, `red`.",
        },
        KeyDef {
            key: "request_timeout",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "PT2M",
            doc: "Timeout of the feed download.",
        },
    ],
};

/// `ipsum:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpsumSection {
    pub enabled: bool,
    pub api_base_url: String,
    pub connector: crate::config::ConnectorBlock,
    pub api_key: Option<Secret>,
    pub default_x_opencti_score: i64,
    pub tlp_level: String,
    pub request_timeout: IsoDuration,
}

impl Default for IpsumSection {
    fn default() -> Self {
        IpsumSection {
            enabled: false,
            api_base_url: DEFAULT_FEED.into(),
            connector: Default::default(),
            api_key: None,
            default_x_opencti_score: 60,
            tlp_level: "white".into(),
            request_timeout: IsoDuration(Duration::from_secs(120)),
        }
    }
}

impl crate::connectors::Section for IpsumSection {
    crate::section_accessors!(SPEC);
    fn validate(&self) -> Vec<String> {
        IpsumSection::validate(self)
    }
    fn build(&self) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
        build(self)
    }
}

impl IpsumSection {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = check_url("ipsum.api_base_url", &self.api_base_url) {
            errors.push(e);
        }
        if !(0..=100).contains(&self.default_x_opencti_score) {
            errors.push(format!(
                "ipsum.default_x_opencti_score: {} is not a score; expected 0 to 100",
                self.default_x_opencti_score
            ));
        }
        if Tlp::parse_level(&self.tlp_level).is_none() {
            errors.push(format!(
                "ipsum.tlp_level (env IPSUM_TLP_LEVEL): `{}` is not a TLP level; expected one of: white, clear, green, amber, amber+strict, red",
                self.tlp_level
            ));
        }
        if let Err(mut e) = self.connector.resolve(&SPEC, false) {
            errors.append(&mut e);
        }
        errors
    }
}

/// Builds the importer from its section.
pub fn build(section: &IpsumSection) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
    let settings = section.connector.resolve(&SPEC, false)?;
    let connector = IpsumConnector::new(section, settings.name.clone())
        .map_err(|e| vec![format!("ipsum: {e}")])?;
    Ok((settings, Hosted::Import(std::sync::Arc::new(connector))))
}

/// The score of an IP seen on `count` blacklists: the configured default at count 5 (the
/// recommended level), 10 points per count above or below, within 10..=100.
pub fn score_for(count: Option<u32>, default: u8) -> u8 {
    match count {
        None => default,
        Some(c) => (i64::from(default) + (i64::from(c) - 5) * 10).clamp(10, 100) as u8,
    }
}

/// The IPsum importer.
pub struct IpsumConnector {
    client: reqwest::Client,
    url: reqwest::Url,
    api_key: Option<Secret>,
    score: u8,
    tlp: Tlp,
    name: String,
    /// Author and marking, made once per process (as the reference does).
    author: Value,
    marking: Value,
}

/// The external reference every object carries.
fn external_reference() -> Value {
    json!({
        "source_name": "IPsum",
        "description": "All lists are automatically retrieved and parsed on a daily (24h) basis.",
        "url": "https://github.com/stamparm/ipsum/tree/master",
    })
}

impl IpsumConnector {
    pub fn new(section: &IpsumSection, name: String) -> Result<Self, String> {
        let now = crate::stix::now();
        let tlp = Tlp::parse_level(&section.tlp_level).ok_or("invalid tlp_level")?;
        Ok(IpsumConnector {
            client: http::client(section.request_timeout.0, None).map_err(|e| e.to_string())?,
            url: reqwest::Url::parse(&section.api_base_url).map_err(|e| e.to_string())?,
            api_key: section.api_key.clone().filter(|k| !k.is_blank()),
            score: section.default_x_opencti_score.clamp(0, 100) as u8,
            tlp,
            name,
            author: to_object(&Identity::organization(
                AUTHOR,
                Some(AUTHOR_DESCRIPTION),
                &now,
            )),
            marking: tlp.stix2_object(&now),
        })
    }

    /// The objects for one IP: observable, indicator, based-on.
    pub fn objects_for(&self, ip: &FeedIp, now: &str) -> [Value; 3] {
        let (stix_type, main_type) = if ip.ip.is_ipv4() {
            ("ipv4-addr", "IPv4-Addr")
        } else {
            ("ipv6-addr", "IPv6-Addr")
        };
        let value = ip.ip.to_string();
        let score = score_for(ip.count, self.score);
        let author_id = self.author["id"].as_str().unwrap_or_default().to_string();
        let marking_id = self.tlp.marking_id().to_string();
        let mut observable = Observable::new(stix_type, value.clone());
        observable.object_marking_refs = vec![marking_id.clone()];
        observable.x_opencti_created_by_ref = Some(author_id.clone());
        observable.x_opencti_score = Some(score);
        let mut observable = to_object(&observable);
        observable["x_opencti_external_references"] = json!([external_reference()]);

        let mut indicator = Indicator::new(
            value.clone(),
            format!("[{stix_type}:value = '{value}']"),
            now,
        );
        indicator.created_by_ref = Some(author_id.clone());
        indicator.object_marking_refs = vec![marking_id.clone()];
        indicator.x_opencti_score = Some(score);
        indicator.x_opencti_main_observable_type = Some(main_type.into());
        if let Some(c) = ip.count {
            indicator.description = Some(format!("Listed on {c} IPsum blacklist(s)."));
        }
        let mut indicator = to_object(&indicator);
        indicator["external_references"] = json!([external_reference()]);

        let mut rel = Relationship::new(
            "based-on",
            indicator["id"].as_str().unwrap_or_default(),
            observable["id"].as_str().unwrap_or_default(),
            now,
        );
        rel.created_by_ref = Some(author_id);
        rel.object_marking_refs = vec![marking_id];
        [observable, indicator, to_object(&rel)]
    }

    /// Downloads the feed; `None` when the server says it has not changed.
    async fn download(&self, state: Option<&Value>) -> Result<Option<Download>, ConnectorError> {
        let mut request = self.client.get(self.url.clone());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        if let Some(etag) = state.and_then(|s| s.get("etag")).and_then(Value::as_str) {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = state
            .and_then(|s| s.get("last_modified"))
            .and_then(Value::as_str)
        {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
        let response = request.send().await.map_err(|e| {
            ConnectorError::Retryable(format!(
                "IPsum feed download failed: {}",
                http::describe(&e.without_url())
            ))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            let text = format!(
                "IPsum feed download failed: HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            return Err(match status.as_u16() {
                401 | 403 => ConnectorError::Misconfigured(format!("{text} (check ipsum.api_key)")),
                429 | 500.. => ConnectorError::Retryable(text),
                _ => ConnectorError::Rejected(text),
            });
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let bytes = response.bytes().await.map_err(|e| {
            ConnectorError::Retryable(format!(
                "IPsum feed download failed: {}",
                http::describe(&e.without_url())
            ))
        })?;
        if bytes.len() > MAX_FEED_BYTES {
            return Err(ConnectorError::Rejected(format!(
                "IPsum feed is larger than {MAX_FEED_BYTES} bytes"
            )));
        }
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(Download {
            body: String::from_utf8_lossy(&bytes).into_owned(),
            etag,
            last_modified,
            sha256,
        }))
    }
}

struct Download {
    body: String,
    etag: Option<String>,
    last_modified: Option<String>,
    sha256: String,
}

#[async_trait]
impl ImportConnector for IpsumConnector {
    fn work_name(&self) -> Option<String> {
        // The reference's work name.
        Some("Connector IPSum".into())
    }

    async fn run(&self, ctx: &mut dyn ImportContext) -> Result<String, ConnectorError> {
        let started = chrono::Utc::now();
        let last_run = started.format("%Y-%m-%d %H:%M:%S").to_string();
        let previous = ctx.state();
        match previous.as_ref().and_then(|s| s.get("last_run")) {
            Some(lr) => tracing::info!(connector = "ipsum", last_run = %lr, "Connector last run."),
            None => tracing::info!(connector = "ipsum", "Connector has never run."),
        }
        let mut state = match previous.clone() {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        state.insert("last_run".into(), json!(last_run));
        let Some(download) = self.download(previous.as_ref()).await? else {
            ctx.set_state(Value::Object(state));
            return Ok(format!(
                "{} connector successfully run, storing last_run as {last_run}: the feed has not changed (HTTP 304), nothing sent",
                self.name
            ));
        };
        if previous
            .as_ref()
            .and_then(|s| s.get("feed_sha256"))
            .and_then(Value::as_str)
            == Some(download.sha256.as_str())
        {
            ctx.set_state(Value::Object(state));
            return Ok(format!(
                "{} connector successfully run, storing last_run as {last_run}: the feed is unchanged since the last run, nothing sent",
                self.name
            ));
        }
        let parsed = parse(&download.body);
        drop(download.body);
        if parsed.junk > 0 {
            tracing::warn!(connector = "ipsum", junk = parsed.junk, examples = ?parsed.junk_examples, "Skipped lines that are not IPs.");
        }
        tracing::info!(
            connector = "ipsum",
            ips = parsed.ips.len(),
            private = parsed.private,
            junk = parsed.junk,
            "Feed parsed."
        );
        let now = crate::stix::now();
        let mut sent = 0;
        for chunk in parsed.ips.chunks(CHUNK_IPS) {
            let mut objects = Vec::with_capacity(chunk.len() * 3 + 2);
            for ip in chunk {
                objects.extend(self.objects_for(ip, &now));
            }
            objects.push(self.author.clone());
            objects.push(self.marking.clone());
            sent += ctx.send(objects).await?;
        }
        state.insert("feed_sha256".into(), json!(download.sha256));
        for (key, value) in [
            ("etag", download.etag),
            ("last_modified", download.last_modified),
        ] {
            match value {
                Some(v) => state.insert(key.into(), json!(v)),
                None => state.remove(key),
            };
        }
        ctx.set_state(Value::Object(state));
        Ok(format!(
            "{} connector successfully run, storing last_run as {last_run}: {} IPs imported ({sent} bundles sent), {} lines skipped ({} private, {} not IPs)",
            self.name,
            parsed.ips.len(),
            parsed.skipped(),
            parsed.private,
            parsed.junk
        ))
    }
}

#[cfg(test)]
mod tests;
