//! IPsum scheduled importer: the IPsum malicious-IP feed → IPv4/IPv6 observables, Indicators
//! and based-on relationships. Spec: `shared/spec/connectors/ipsum.md`; the seed (what users
//! asked for) adds the Indicators, the relationships and the count-based score.

pub mod config;
pub mod feed;
pub mod mapping;
pub mod state;

use async_trait::async_trait;
use serde_json::Value;

use std::sync::Arc;

use crate::connectors::{BuildContext, ConnectorError, FeedSource, ImportConnector, ImportContext};
use crate::opencti::prepared::Prepared;
use crate::stix::{Author, Tlp};
use feed::FeedClient;
use state::IpsumState;

pub use config::{IpsumConfig, SPEC};
pub use mapping::{Feed, FeedIp, Marks, Parsed, Tally, objects_for, parse, score_for};

/// The reference's default feed: IPs on at least 5 blacklists.
pub const DEFAULT_FEED: &str =
    "https://raw.githubusercontent.com/stamparm/ipsum/refs/heads/master/levels/5.txt";
/// IPs per chunk: each chunk (3 objects an IP, plus author and marking) is built, sent and
/// dropped before the next, so the whole bundle never exists in memory.
pub const CHUNK_IPS: usize = 2_000;

const AUTHOR: &str = "IPsum";
const AUTHOR_DESCRIPTION: &str =
    "IPsum is a threat intelligence feed based on 30+ different publicly available lists.";

/// The IPsum importer.
#[derive(Clone)]
pub struct IpsumConnector {
    feed: FeedClient,
    name: String,
    marks: Marks,
    max_ips: usize,
    /// Author and marking, made once per process (as the reference does).
    author: Value,
    marking: Value,
}

impl IpsumConnector {
    pub fn new(config: &IpsumConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let author = Author::organization(AUTHOR, Some(AUTHOR_DESCRIPTION));
        let tlp: Tlp = config.tlp_level.0;
        Ok(IpsumConnector {
            feed: FeedClient {
                http: ctx.http(config.request_timeout.0)?,
                // No rate limit (one download a period), but counted like every upstream call.
                calls: ctx.counted(),
                url: reqwest::Url::parse(&config.api_base_url).map_err(|e| e.to_string())?,
                api_key: config.api_key.clone().filter(|k| !k.is_blank()),
                max_bytes: usize::try_from(config.max_feed_bytes).unwrap_or(usize::MAX),
                file: None,
            },
            max_ips: usize::try_from(config.max_ips).unwrap_or(usize::MAX),
            name: ctx.settings.name.clone(),
            marks: Marks {
                author_id: author.id().to_string(),
                tlp,
                default_score: config.default_x_opencti_score.clamp(0, 100) as u8,
            },
            author: author.object(),
            marking: tlp.stix2_object(&crate::stix::now()),
        })
    }

    /// The objects for one IP: observable, indicator, based-on.
    pub fn objects_for(&self, ip: &FeedIp, now: &str) -> [Value; 3] {
        objects_for(ip, &self.marks, now)
    }

    /// The same, serialised once (what a run sends).
    pub fn prepared_for(&self, ip: &FeedIp, now: &str) -> [Prepared; 3] {
        mapping::prepared_for(ip, &self.marks, now)
    }

    /// One chunk as a run sends it: each IP's three objects, then the author and the marking.
    pub fn chunk(&self, ips: &[FeedIp], now: &str) -> Vec<Prepared> {
        let mut objects = Vec::with_capacity(ips.len() * 3 + 2);
        for ip in ips {
            objects.extend(self.prepared_for(ip, now));
        }
        objects.push(Prepared::from_value(&self.author));
        objects.push(Prepared::from_value(&self.marking));
        objects
    }
}

#[async_trait]
impl ImportConnector for IpsumConnector {
    fn work_name(&self) -> Option<String> {
        // The reference's work name.
        Some("Connector IPSum".into())
    }

    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        self.feed.probe().await
    }

    fn with_source(&self, source: &FeedSource) -> Result<Arc<dyn ImportConnector>, String> {
        let mut importer = self.clone();
        match source {
            FeedSource::Url(url) => {
                importer.feed.url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
            }
            FeedSource::File(path) => importer.feed.file = Some(path.clone()),
        }
        Ok(Arc::new(importer))
    }

    async fn run(&self, ctx: &mut dyn ImportContext) -> Result<String, ConnectorError> {
        let started = chrono::Utc::now();
        let last_run = started.format("%Y-%m-%d %H:%M:%S").to_string();
        let mut state = IpsumState::read(ctx.state());
        match state.last_run_shown() {
            Some(lr) => tracing::info!(connector = "ipsum", last_run = %lr, "Connector last run."),
            None => tracing::info!(connector = "ipsum", "Connector has never run."),
        }
        state.started(last_run.clone());
        let Some(download) = self.feed.download(&state).await? else {
            ctx.set_state(state.to_value());
            return Ok(format!(
                "{} connector successfully run, storing last_run as {last_run}: the feed has not changed (HTTP 304), nothing sent",
                self.name
            ));
        };
        if state.feed_sha256() == Some(download.sha256.as_str()) {
            ctx.set_state(state.to_value());
            return Ok(format!(
                "{} connector successfully run, storing last_run as {last_run}: the feed is unchanged since the last run, nothing sent",
                self.name
            ));
        }
        let now = crate::stix::now();
        let mut feed = Feed::new(&download.body);
        let (mut sent, mut imported) = (0, 0);
        loop {
            let room = CHUNK_IPS.min(self.max_ips - imported);
            let chunk: Vec<FeedIp> = feed.by_ref().take(room).collect();
            if chunk.is_empty() {
                break;
            }
            imported += chunk.len();
            sent += ctx.send_prepared(self.chunk(&chunk, &now)).await?;
            if imported == self.max_ips && feed.next().is_some() {
                // The rest of the feed is not read; the state stays as it was, so the feed
                // is not taken as imported.
                return Err(ConnectorError::Rejected(format!(
                    "{} stopped after {imported} IPs ({sent} bundles sent): the feed holds more than ipsum.max_ips ({}) addresses",
                    self.name, self.max_ips
                )));
            }
        }
        let parsed = feed.tally;
        if parsed.junk > 0 {
            tracing::warn!(connector = "ipsum", junk = parsed.junk, examples = ?parsed.junk_examples, "Skipped lines that are not IPs.");
        }
        tracing::info!(
            connector = "ipsum",
            ips = imported,
            private = parsed.private,
            junk = parsed.junk,
            "Feed imported."
        );
        state.imported(&download);
        ctx.set_state(state.to_value());
        Ok(format!(
            "{} connector successfully run, storing last_run as {last_run}: {} IPs imported ({sent} bundles sent), {} lines skipped ({} private, {} not IPs)",
            self.name,
            imported,
            parsed.skipped(),
            parsed.private,
            parsed.junk
        ))
    }
}

#[cfg(test)]
mod tests;
