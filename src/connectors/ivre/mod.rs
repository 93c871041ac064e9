//! IVRE enrichment over IVRE's web API: autonomous-system, domain-name, ipv4/ipv6-addr,
//! mac-addr and x509-certificate observables, from three sources — data (MaxMind `/ipdata`,
//! or IVRE's GeoLite2 files read locally with `maxmind://`), passive (`/passive`) and scans
//! (`/scans` or `/view`). Spec: `shared/spec/connectors/ivre.md`.

pub mod client;
pub mod collect;
pub mod config;
pub mod endpoint;
pub mod mapping;
pub mod maxmind;
pub mod query;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::connectors::BuildContext;
use crate::connectors::{ConnectorError, EnrichmentConnector, EnrichmentRequest, Outcome};
use crate::stix::{Author, Tlp};
use client::{Endpoint, IvreClient, IvreError};
use collect::{Collector, norm_domain};
use mapping::EntityKind;
use maxmind::MaxMindData;

pub use config::{DataUrl, IvreConfig, SPEC, ScansRoute};
pub use mapping::cert_hash;

/// Where the data purpose reads from.
enum DataSource {
    /// `/ipdata/<ip>` on IVRE's web API.
    Web(Endpoint),
    /// GeoLite2 files read locally.
    MaxMind(Arc<MaxMindData>),
}

/// The IVRE connector.
pub struct IvreConnector {
    client: IvreClient,
    data: Option<DataSource>,
    passive: Option<Endpoint>,
    scans: Option<Endpoint>,
    config: IvreConfig,
    author: Author,
}

/// What one source did.
enum SourceResult {
    Ok(String),
    Failed(IvreError),
    NotApplicable,
}

/// The entity as the sources query it.
struct Target<'a> {
    kind: EntityKind,
    /// The observable's `value` as stored.
    value: &'a str,
    /// The normalised domain name (for domains).
    name: String,
    /// What the filters look for.
    key: String,
    number: Option<u64>,
    hash: Option<(&'static str, String)>,
}

impl IvreConnector {
    pub fn new(config: &IvreConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let settings = ctx.settings;
        let name = settings.name.as_str();
        let purposes = config.purposes();
        let used = |purpose| match purpose {
            "data" => config.use_data,
            "passive" => config.use_passive,
            _ => config.use_scans,
        };
        for (purpose, why) in purposes.unusable() {
            if used(purpose) {
                tracing::error!(connector = "ivre", purpose, reason = %why, "IVRE purpose disabled.");
            }
        }
        let data = match purposes.data {
            Ok(DataUrl::Web(endpoint)) => Some(DataSource::Web(endpoint)),
            // The files are read (and so checked) only when the data source is used.
            Ok(DataUrl::MaxMind(dir)) if config.use_data => {
                let data = MaxMindData::open(&dir, config.maxmind_check_interval.0)
                    .map_err(|e| format!("db_url_data: {e}"))?;
                Some(DataSource::MaxMind(Arc::new(data)))
            }
            Ok(DataUrl::MaxMind(_)) | Err(_) => None,
        };
        let (passive, scans) = (purposes.passive.ok(), purposes.scans.ok());
        let description = format!("IVRE instance {name}\nSee <https://ivre.rocks/>");
        Ok(IvreConnector {
            client: IvreClient::new(
                IvreClient::http(ctx.http_builder(config.http_timeout.0), config.verify_tls)
                    .map_err(|e| e.to_string())?,
                config.page_size,
                config.max_records,
                settings.max_answer_bytes,
                ctx.cache_with_not_found(&config.cache, client::nothing_known),
                ctx.gate(config.rate_limit),
            ),
            data,
            passive,
            scans,
            config: config.clone(),
            author: Author::organization(name, Some(&description)),
        })
    }

    /// The entity's kind and query keys, or the work message when IVRE cannot enrich it.
    fn target<'a>(request: &'a EnrichmentRequest) -> Result<Target<'a>, String> {
        let entity = &request.stix_entity;
        let stix_type = request.stix_type();
        let kind = EntityKind::of(stix_type)
            .ok_or_else(|| format!("IVRE: entity type `{stix_type}` not supported"))?;
        let value = entity
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == EntityKind::Ip && value.contains('/') {
            return Err(format!(
                "IVRE: {value} is a network; IVRE is queried for single addresses"
            ));
        }
        let name = norm_domain(value);
        let key = match kind {
            EntityKind::Domain => name.clone(),
            EntityKind::Mac => value.to_lowercase(),
            _ => value.to_string(),
        };
        let hash = if kind == EntityKind::Cert {
            let hash = cert_hash(entity, request.observable_value.as_deref());
            if hash.is_none() {
                tracing::warn!(connector = "ivre", entity = %request.entity_id, "Cannot process X509-Certificate observable without a usable hash.");
            }
            hash
        } else {
            None
        };
        Ok(Target {
            kind,
            value,
            name,
            key,
            number: entity.get("number").and_then(Value::as_u64),
            hash,
        })
    }

    /// MaxMind data for an IP, from IVRE's web API or the local files.
    async fn data_source(&self, c: &mut Collector, obs: &str, value: &str) -> SourceResult {
        let answer = match &self.data {
            None => return SourceResult::Failed(IvreError::rejected("no usable data URL")),
            Some(DataSource::Web(endpoint)) => self.client.ipdata(endpoint, value).await,
            Some(DataSource::MaxMind(files)) => local_ipdata(files, value).await,
        };
        match answer {
            Ok(None) => SourceResult::Ok("no data".into()),
            Ok(Some(info)) => {
                let before = c.added();
                mapping::data_record(c, obs, &info);
                SourceResult::Ok(format!("{} objects", c.added() - before))
            }
            Err(e) => SourceResult::Failed(e),
        }
    }

    /// Every record of `route` for `filters` (`Err`: the source does not apply).
    async fn list_source(
        &self,
        endpoint: &Option<Endpoint>,
        route: &str,
        filters: Result<Vec<Value>, String>,
        mut map: impl FnMut(&Value),
    ) -> SourceResult {
        let Ok(filters) = filters else {
            return SourceResult::NotApplicable;
        };
        let Some(endpoint) = endpoint else {
            return SourceResult::Failed(IvreError::rejected(format!("no usable {route} URL")));
        };
        // All or nothing: a source that fails part-way contributes no records.
        let mut all = Vec::new();
        for f in filters {
            match self.client.list(endpoint, route, &f).await {
                Ok(list) => all.extend(list),
                Err(e) => return SourceResult::Failed(e),
            }
        }
        all.iter().for_each(&mut map);
        let n = all.len();
        SourceResult::Ok(format!("{n} record{}", if n == 1 { "" } else { "s" }))
    }

    /// Queries each applicable source, mapping what it returns into `c`.
    async fn run_sources(
        &self,
        t: &Target<'_>,
        c: &mut Collector,
        obs: &str,
    ) -> Vec<(&'static str, SourceResult)> {
        let cfg = &self.config;
        let data = if cfg.use_data && t.kind == EntityKind::Ip {
            self.data_source(c, obs, t.value).await
        } else {
            SourceResult::NotApplicable
        };
        let off = || Err(String::new());
        let passive_filters = if cfg.use_passive {
            query::passive_filters(cfg, t.kind, &t.key, &t.hash)
        } else {
            off()
        };
        let passive = self
            .list_source(&self.passive, "passive", passive_filters, |r| {
                mapping::passive_record(c, t.kind, obs, &t.name, r)
            })
            .await;
        let scans_filters = if cfg.use_scans {
            query::scans_filters(cfg, t.kind, &t.key, t.number, &t.hash)
        } else {
            off()
        };
        let route = cfg.scans_route.as_str();
        let scans = self
            .list_source(&self.scans, route, scans_filters, |r| {
                mapping::scans_record(c, t.kind, obs, &t.name, r)
            })
            .await;
        vec![("data", data), ("passive", passive), ("scans", scans)]
    }
}

/// `/ipdata`'s answer from the local GeoLite2 files (on the blocking pool: a due check may
/// re-open a file). Not cached: a lookup costs microseconds, and a replaced file shows at once.
async fn local_ipdata(files: &Arc<MaxMindData>, addr: &str) -> Result<Option<Value>, IvreError> {
    let ip: std::net::IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| IvreError::rejected(format!("`{addr}` is not an IP address")))?;
    let files = Arc::clone(files);
    tokio::task::spawn_blocking(move || files.ipdata(ip))
        .await
        .map_err(|e| IvreError::rejected(format!("MaxMind lookup failed: {e}")))?
        .map_err(IvreError::rejected)
}

/// When every applicable source failed: one error for the runtime, the most actionable class
/// first (a retry may help; else fix the settings; else give up).
fn all_failed(summary: String, failures: &[&IvreError]) -> ConnectorError {
    let message = format!("IVRE: {summary}");
    let retry_after = failures
        .iter()
        .filter_map(|f| match &f.0 {
            ConnectorError::Retryable { retry_after, .. } => Some(*retry_after),
            _ => None,
        })
        .reduce(|a, b| a.max(b));
    match retry_after {
        Some(retry_after) => ConnectorError::Retryable {
            message,
            retry_after,
        },
        None if failures
            .iter()
            .any(|f| matches!(f.0, ConnectorError::Misconfigured(_))) =>
        {
            ConnectorError::Misconfigured(message)
        }
        None => ConnectorError::Rejected(message),
    }
}

#[async_trait]
impl EnrichmentConnector for IvreConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        self.config.max_tlp.map(|t| t.0)
    }

    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        let mut seen = Vec::new();
        match &self.data {
            Some(DataSource::Web(data)) => seen.push(format!(
                "data: {}",
                self.client.probe_ipdata(data).await.map_err(|e| e.0)?
            )),
            Some(DataSource::MaxMind(files)) => {
                let known = local_ipdata(files, "8.8.8.8").await.map_err(|e| e.0)?;
                let found = if known.is_some() { "known" } else { "unknown" };
                seen.push(format!("data: {}; 8.8.8.8 {found}", files.describe()));
            }
            None => {}
        }
        if let Some(passive) = &self.passive {
            let n = self
                .client
                .count(passive, "passive")
                .await
                .map_err(|e| e.0)?;
            seen.push(format!("passive: {n} records"));
        }
        if let Some(scans) = &self.scans {
            let route = self.config.scans_route.as_str();
            let n = self.client.count(scans, route).await.map_err(|e| e.0)?;
            seen.push(format!("{route}: {n} records"));
        }
        if seen.is_empty() {
            return Err(ConnectorError::Misconfigured(
                "IVRE: no source is enabled".into(),
            ));
        }
        Ok(seen.join(", "))
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let target = match Self::target(request) {
            Ok(t) => t,
            Err(message) => return Ok(Outcome::Done(message)),
        };
        let now = crate::stix::now();
        let obs = request.entity_id.clone();
        let mut c = Collector::new(self.author.id(), &now, &request.stix_entity, &obs)
            .known_by(request.observable_value.as_deref());
        let report = self.run_sources(&target, &mut c, &obs).await;

        let applicable: Vec<&(&str, SourceResult)> = report
            .iter()
            .filter(|(_, r)| !matches!(r, SourceResult::NotApplicable))
            .collect();
        if applicable.is_empty() {
            return Ok(Outcome::Done(format!(
                "IVRE: no source applies to {} with the current settings",
                request.stix_type()
            )));
        }
        let summary = applicable
            .iter()
            .map(|(source, r)| match r {
                SourceResult::Ok(s) => format!("{source} ok ({s})"),
                SourceResult::Failed(e) => format!("{source} failed ({e})"),
                SourceResult::NotApplicable => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let failures: Vec<&IvreError> = applicable
            .iter()
            .filter_map(|(_, r)| match r {
                SourceResult::Failed(e) => Some(e),
                _ => None,
            })
            .collect();
        if failures.len() == applicable.len() {
            return Err(all_failed(summary, &failures));
        }
        if c.added() == 0 {
            return Ok(Outcome::Done(format!("IVRE: {summary}; nothing found")));
        }
        let entity_id = request.stix_entity.get("id");
        let mut objects: Vec<Value> = request
            .stix_objects
            .iter()
            .filter(|o| o.get("id") != entity_id)
            .cloned()
            .collect();
        objects.extend(c.into_objects());
        objects.push(self.author.object_at(&now));
        Ok(Outcome::Bundle {
            objects,
            message: Box::new(move |n| {
                format!("IVRE: {summary}; sent {n} stix bundle(s) for worker import")
            }),
        })
    }
}

#[cfg(test)]
mod tests;
