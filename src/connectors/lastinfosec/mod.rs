//! LastInfoSec (Gatewatcher) enrichment: StixFile / Domain-Name / Hostname / Url → the STIX
//! 2.1 bundle the LastInfoSec API returns, plus the "Last Info Sec" external reference on the
//! enriched observable. Spec: `shared/spec/connectors/lastinfosec.md`.

pub mod client;
pub mod config;
mod mapping;

use async_trait::async_trait;

use crate::connectors::BuildContext;
use crate::connectors::{
    ConnectorError, EnrichmentConnector, EnrichmentRequest, Outcome, sent_message,
};
use crate::opencti::prepared::Prepared;
use crate::stix::Tlp;
use client::{Answer, LastinfosecClient};

pub use client::status_text;
pub use config::{Endpoint, LastinfosecConfig, SPEC};
pub use mapping::{
    EXTERNAL_REFERENCE_URL, Found, strongest_hash, upstream_objects, with_external_reference,
};

/// The LastInfoSec connector.
pub struct LastinfosecConnector {
    client: LastinfosecClient,
    max_tlp: Tlp,
}

impl LastinfosecConnector {
    pub fn new(config: &LastinfosecConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        // `lastinfosec.proxy_http` / `proxy_https` override the daemon's proxies.
        let egress = config.egress(ctx.egress)?;
        Ok(LastinfosecConnector {
            client: LastinfosecClient {
                http: ctx.http_with(config.request_timeout.0, &egress)?,
                base: reqwest::Url::parse(&config.api_base_url).map_err(|e| e.to_string())?,
                api_key: config
                    .api_key_cti
                    .clone()
                    .ok_or("lastinfosec.api_key_cti is required")?,
                endpoint: config.endpoint,
                max_answer: ctx.settings.max_answer_bytes,
                cache: ctx.cache_with_not_found(&config.cache, |answer| {
                    matches!(answer, Answer::NotFound)
                }),
                gate: ctx.gate(config.rate_limit),
            },
            max_tlp: config.max_tlp.0,
        })
    }
}

#[async_trait]
impl EnrichmentConnector for LastinfosecConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        Some(self.max_tlp)
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let (value, body) = match self.client.lookup(request).await? {
            (value, Answer::Found(body)) => (value, body),
            (value, Answer::NotFound) => return Ok(Outcome::Done(format!("{value} not found..."))),
        };
        let Some((upstream, dropped)) = upstream_objects(body, Some(&request.entity_id)) else {
            return Ok(Outcome::Done(format!(
                "{value} not found... (LastInfoSec returned no bundle)"
            )));
        };
        if upstream.is_empty() {
            return Ok(Outcome::Done(format!(
                "{value} not found... (LastInfoSec returned an empty bundle{})",
                if dropped > 0 {
                    format!(", {dropped} malformed object(s) dropped")
                } else {
                    String::new()
                }
            )));
        }
        // The platform's entity with the reference first; an upstream copy of the entity
        // would replace it (the splitter keeps the last one), so upstream_objects left it out.
        let mut objects: Vec<Prepared> =
            with_external_reference(&request.stix_objects, &request.entity_id)
                .iter()
                .map(Prepared::from_value)
                .collect();
        objects.extend(upstream);
        Ok(Outcome::Prepared {
            objects,
            message: Box::new(sent_message),
        })
    }

    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        let answer = match self.client.probe().await? {
            Answer::Found(_) => "found",
            Answer::NotFound => "not found",
        };
        Ok(format!("API key accepted (example.com: {answer})"))
    }
}

#[cfg(test)]
mod tests;
