//! RiskIQ PassiveTotal enrichment: IPv4-Addr / Domain-Name → passive-DNS resolutions.
//! Spec: `shared/spec/connectors/riskiq.md`. The API is being folded into Microsoft Defender
//! Threat Intelligence, hence the configurable base URL.

pub mod client;
pub mod config;
mod mapping;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::connectors::BuildContext;
use crate::connectors::{ConnectorError, EnrichmentConnector, EnrichmentRequest, Outcome};
use crate::stix::{Author, Tlp};
use crate::upstream::cache::AnswerCache;
use client::RiskiqClient;

pub use client::status_error;
pub use config::{RiskiqConfig, SPEC};
pub use mapping::{AUTHOR, Mapped, author, map_records, parse_time, py_isoformat, stix_time};

/// The reference's wording when nothing was found.
pub const NOTHING_FOUND: &str = "[CONNECTOR] No information found";

/// The API's `start` for resolutions seen within `window` of `now`, in naive UTC (the API's
/// times). A window reaching before the first representable time asks for everything: no
/// window panics.
pub fn window_start(now: chrono::DateTime<chrono::Utc>, window: Duration) -> String {
    chrono::Duration::from_std(window)
        .ok()
        .and_then(|w| now.checked_sub_signed(w))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The RiskIQ PassiveTotal connector.
pub struct RiskiqConnector {
    client: RiskiqClient,
    /// Passive-DNS answers by looked-up value.
    cache: AnswerCache<Value>,
    author: Author,
    max_tlp: Tlp,
    window: Duration,
    /// Lower-cased entity types handled (the reference checks the scope in code).
    scopes: Vec<String>,
}

impl RiskiqConnector {
    pub fn new(config: &RiskiqConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let settings = ctx.settings;
        let http = ctx.http(config.request_timeout.0)?;
        let base = reqwest::Url::parse(&config.api_base_url).map_err(|e| e.to_string())?;
        let username = config
            .username
            .clone()
            .ok_or("riskiq.username is required")?;
        let api_key = config.api_key.clone().ok_or("riskiq.api_key is required")?;
        Ok(RiskiqConnector {
            client: RiskiqClient::new(
                http,
                base,
                username,
                api_key,
                config.quota_check_interval.0,
                settings.max_answer_bytes,
                ctx.gate(config.rate_limit),
            ),
            cache: ctx.cache(&config.cache),
            author: author(),
            max_tlp: config.max_tlp.0,
            window: config.import_last_seen_time_window.0,
            scopes: settings
                .scope
                .iter()
                .map(|s| s.replace(' ', "").to_lowercase())
                .collect(),
        })
    }
}

#[async_trait]
impl EnrichmentConnector for RiskiqConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        Some(self.max_tlp)
    }

    fn tlp_refused_message(&self) -> String {
        "[CONNECTOR] Do not send any data, TLP of the observable is greater than MAX TLP,the connector does not has access to this observable, please check the group of the connector user".into()
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let value = request
            .value()
            .ok_or_else(|| ConnectorError::Rejected("'value'".into()))?
            .to_string();
        let stix_type = request.stix_type().to_lowercase();
        if !self.scopes.contains(&stix_type) {
            return Ok(Outcome::Done(format!(
                "[CONNECTOR] Skip the following entity as it does not concern the initial scope found in the connector config: {{'entity_id': '{}'}}",
                request.entity_id
            )));
        }
        // A cached answer costs no quota and no call.
        let body = self
            .cache
            .get_or_fetch(&value, || async {
                self.client.check_quota().await?;
                let start = window_start(chrono::Utc::now(), self.window);
                self.client
                    .get(
                        &["v2", "dns", "passive"],
                        &[("query", value.as_str()), ("start", start.as_str())],
                    )
                    .await
            })
            .await?;
        let results = match body.get("results") {
            Some(Value::Array(r)) => r.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(ConnectorError::Rejected(
                    "RiskIQ PassiveTotal answered `results` that is not a list".into(),
                ));
            }
        };
        let now = crate::stix::now();
        let mapped = map_records(&request.entity_id, self.author.id(), &results, &now);
        if mapped.malformed > 0 {
            tracing::warn!(
                connector = "riskiq",
                malformed = mapped.malformed,
                "Skipped records without usable firstSeen/lastSeen."
            );
        }
        if mapped.handled == 0 {
            return Ok(Outcome::Done(NOTHING_FOUND.into()));
        }
        let mut objects = request.stix_objects.clone();
        objects.extend(mapped.objects);
        objects.push(self.author.object_at(&now));
        objects.push(Tlp::Clear.stix2_object(&now));
        Ok(Outcome::Bundle {
            objects,
            message: Box::new(move |n| {
                format!(
                    "[API] Observable found and knowledge added for type: {stix_type}, sending {n} stix bundle(s) for worker import"
                )
            }),
        })
    }
    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        self.client.quota_summary().await
    }
}

#[cfg(test)]
mod tests;
