//! __Title__ enrichment: an observable's value → its __Title__ score, labels and description on
//! the observable. Made by `scripts/new-connector`: replace the upstream call (`client.rs`)
//! and the mapping (`mapping.rs`) with the real ones, keeping their shape.

pub mod client;
pub mod config;
mod mapping;

use async_trait::async_trait;

use crate::connectors::{
    BuildContext, ConnectorError, EnrichmentConnector, EnrichmentRequest, Outcome, sent_message,
};
use crate::stix::Tlp;
use client::{Answer, __Name__Client};

pub use config::{__Name__Config, SPEC};
pub use mapping::{Found, enriched};

/// The __Title__ connector.
pub struct __Name__Connector {
    client: __Name__Client,
    max_tlp: Tlp,
}

impl __Name__Connector {
    pub fn new(config: &__Name__Config, ctx: &BuildContext<'_>) -> Result<Self, String> {
        Ok(__Name__Connector {
            client: __Name__Client::new(config, ctx)?,
            max_tlp: config.max_tlp.0,
        })
    }
}

#[async_trait]
impl EnrichmentConnector for __Name__Connector {
    fn max_tlp(&self) -> Option<Tlp> {
        Some(self.max_tlp)
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let value = request
            .observable_value
            .clone()
            .or_else(|| request.value().map(str::to_string))
            .ok_or_else(|| ConnectorError::Rejected("the entity has no value to look up".into()))?;
        match self.client.lookup(&value).await? {
            Answer::NotFound => Ok(Outcome::Done(format!("{value} not found in __Title__"))),
            Answer::Found(found) => Ok(Outcome::Bundle {
                objects: enriched(&request.stix_objects, &request.entity_id, &found),
                message: Box::new(sent_message),
            }),
        }
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
