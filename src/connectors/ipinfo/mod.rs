//! IPinfo enrichment: IPv4-Addr / IPv6-Addr → Country and City locations, autonomous
//! system, privacy labels. Spec: `shared/spec/connectors/ipinfo.md`.
//!
//! Deliberate deviations (README, "Deviations from the official connectors"): the token
//! travels in an `Authorization: Bearer` header; sparse answers give what they can; bogons
//! and private addresses finish with "not routable" instead of an error; privacy labels
//! go on the enriched observable only and are merged with its labels.

pub mod client;
pub mod config;
pub mod countries;
mod mapping;
pub mod plans;

use std::net::IpAddr;

use async_trait::async_trait;
use serde_json::Value;

use crate::connectors::BuildContext;
use crate::connectors::{
    ConnectorError, EnrichmentConnector, EnrichmentRequest, Outcome, sent_message,
};
use crate::stix::Tlp;
use crate::upstream::cache::AnswerCache;
use client::IpinfoClient;

pub use client::status_error;
pub use config::{IpinfoConfig, SPEC};
pub use mapping::{Mapped, essentials, map_response};

/// The IPinfo connector.
pub struct IpinfoConnector {
    client: IpinfoClient,
    cache: AnswerCache<Value>,
    max_tlp: Tlp,
    use_asn_name: bool,
}

impl IpinfoConnector {
    pub fn new(config: &IpinfoConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let token = config.token.clone().ok_or("ipinfo.token is required")?;
        let http = ctx.http(config.request_timeout.0)?;
        let base_url = reqwest::Url::parse(config.base_url()).map_err(|e| e.to_string())?;
        Ok(IpinfoConnector {
            client: IpinfoClient::new(
                http,
                base_url,
                token,
                ctx.settings.max_answer_bytes,
                ctx.gate(config.rate_limit),
            )
            .with_api(config.api),
            cache: ctx.cache(&config.cache),
            max_tlp: config.max_tlp.0,
            use_asn_name: config.use_asn_name,
        })
    }
}

/// Addresses IPinfo can say nothing about: private, loopback, link-local, CGNAT, multicast,
/// unspecified, IPv6 unique-local. Documentation ranges are left to IPinfo's bogon answer.
pub fn non_routable_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_private() {
                Some("private")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || v4.is_broadcast() {
                Some("unspecified")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("shared address space (CGNAT)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg0 & 0xfe00 == 0xfc00 {
                Some("unique local")
            } else if seg0 & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if let Some(v4) = v6.to_ipv4_mapped() {
                non_routable_reason(IpAddr::V4(v4))
            } else {
                None
            }
        }
    }
}

#[async_trait]
impl EnrichmentConnector for IpinfoConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        Some(self.max_tlp)
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let value = request
            .value()
            .ok_or_else(|| {
                ConnectorError::Rejected("The observable has no value to look up".into())
            })?
            .trim()
            .to_string();
        let ip: IpAddr = value
            .parse()
            .map_err(|_| ConnectorError::Rejected(format!("`{value}` is not an IP address")))?;
        if let Some(reason) = non_routable_reason(ip) {
            return Ok(Outcome::Done(format!(
                "{value} is not routable ({reason}): nothing to look up"
            )));
        }
        let body = self
            .cache
            .get_or_fetch(&value, || self.client.lookup(&value))
            .await?;
        if body.get("bogon").and_then(Value::as_bool) == Some(true) {
            return Ok(Outcome::Done(format!(
                "{value} is not routable (IPinfo answered bogon)"
            )));
        }
        let mapped = map_response(request, &body, self.use_asn_name, &crate::stix::now());
        for note in &mapped.notes {
            tracing::warn!(connector = "ipinfo", ip = %value, note = %note, "Partial IPinfo answer.");
        }
        if mapped.added == 0 {
            return Ok(Outcome::Done(format!(
                "IPinfo has no location, AS or privacy data for {value}"
            )));
        }
        Ok(Outcome::Bundle {
            objects: mapped.objects,
            message: Box::new(sent_message),
        })
    }

    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        self.client.lookup(PROBE_IP).await?;
        Ok(format!("token accepted (one lookup of {PROBE_IP})"))
    }
}

/// The address `check-config --online` looks up.
const PROBE_IP: &str = "8.8.8.8";

#[cfg(test)]
mod tests;
