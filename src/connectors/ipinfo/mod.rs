//! IPinfo enrichment: IPv4-Addr / IPv6-Addr → Country and City locations, autonomous
//! system, privacy labels. Spec: `shared/spec/connectors/ipinfo.md`.
//!
//! Deliberate deviations (README, "Deviations from the official connectors"): the token
//! travels in an `Authorization: Bearer` header; sparse answers give what they can; bogons
//! and private addresses finish with "not routable" instead of an error; privacy labels
//! go on the enriched observable only and are merged with its labels.

pub mod countries;
mod mapping;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{
    ConnectorKind, ConnectorSettings, IsoDuration, KeyDef, Kind, Secret, SectionSpec, TlpSetting,
    check_url,
};
use crate::connectors::{
    ConnectorError, EnrichmentConnector, EnrichmentRequest, Hosted, Outcome, sent_message,
};
use crate::http::{self, UpstreamError};
use crate::stix::Tlp;

pub use mapping::{Mapped, map_response};

/// The `ipinfo` section's shape.
pub const SPEC: SectionSpec = SectionSpec {
    section: "ipinfo",
    kind: ConnectorKind::Enrichment,
    default_name: "IPInfo",
    default_scope: "IPv4-Addr,IPv6-Addr",
    default_auto: true,
    default_api_base_url: "https://ipinfo.io",
    api_base_url_aliases: &[],
    default_duration_period: "",
    keys: &[
        KeyDef {
            key: "token",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "IPinfo API token (required).",
        },
        KeyDef {
            key: "max_tlp",
            env_aliases: &[],
            kind: Kind::Tlp,
            default: "TLP:AMBER",
            doc: "Highest TLP of an observable that may be sent to IPinfo.",
        },
        KeyDef {
            key: "use_asn_name",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Name the autonomous system by its owner (`Google LLC`) instead of `AS15169`.",
        },
        KeyDef {
            key: "request_timeout",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "PT30S",
            doc: "Timeout of one IPinfo request.",
        },
    ],
};

/// `ipinfo:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpinfoSection {
    pub enabled: bool,
    pub api_base_url: String,
    pub connector: crate::config::ConnectorBlock,
    pub token: Option<Secret>,
    pub max_tlp: TlpSetting,
    pub use_asn_name: bool,
    pub request_timeout: IsoDuration,
}

impl Default for IpinfoSection {
    fn default() -> Self {
        IpinfoSection {
            enabled: false,
            api_base_url: SPEC.default_api_base_url.into(),
            connector: Default::default(),
            token: None,
            max_tlp: TlpSetting(Tlp::Amber),
            use_asn_name: true,
            request_timeout: IsoDuration(Duration::from_secs(30)),
        }
    }
}

impl crate::connectors::Section for IpinfoSection {
    crate::section_accessors!(SPEC);
    fn validate(&self) -> Vec<String> {
        IpinfoSection::validate(self)
    }
    fn build(&self) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
        build(self)
    }
}

impl IpinfoSection {
    /// Section checks beyond types.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self
            .token
            .as_ref()
            .is_none_or(|t| t.is_blank() || t.expose() == "ChangeMe")
        {
            errors.push(
                "ipinfo.token (env IPINFO_TOKEN): required when ipinfo.enabled is true".into(),
            );
        }
        if let Err(e) = check_url("ipinfo.api_base_url", &self.api_base_url) {
            errors.push(e);
        }
        if let Err(mut e) = self.connector.resolve(&SPEC, true) {
            errors.append(&mut e);
        }
        errors
    }
}

/// Builds the connector from its section.
pub fn build(section: &IpinfoSection) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
    let settings = section.connector.resolve(&SPEC, true)?;
    let connector = IpinfoConnector::new(section).map_err(|e| vec![format!("ipinfo: {e}")])?;
    Ok((settings, Hosted::Enrichment(std::sync::Arc::new(connector))))
}

/// The IPinfo connector.
pub struct IpinfoConnector {
    client: reqwest::Client,
    base_url: reqwest::Url,
    token: Secret,
    max_tlp: Tlp,
    use_asn_name: bool,
}

impl IpinfoConnector {
    pub fn new(section: &IpinfoSection) -> Result<Self, String> {
        let token = section.token.clone().ok_or("ipinfo.token is required")?;
        Ok(IpinfoConnector {
            client: http::client(section.request_timeout.0, None).map_err(|e| e.to_string())?,
            base_url: reqwest::Url::parse(&section.api_base_url).map_err(|e| e.to_string())?,
            token,
            max_tlp: section.max_tlp.0,
            use_asn_name: section.use_asn_name,
        })
    }

    /// `GET <base>/<ip>/json` with the token in a Bearer header.
    async fn lookup(&self, ip: &str) -> Result<Value, ConnectorError> {
        let url = http::join_segments(&self.base_url, &[ip, "json"]);
        let response = self
            .client
            .get(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let body = http::json_body(response).await.map_err(|e| match e {
            UpstreamError::Status { status, reason, .. } => status_error(status, &reason),
            UpstreamError::Transport(_) => {
                ConnectorError::Retryable("API connection error.".into())
            }
            UpstreamError::NotJson(_) => {
                ConnectorError::Rejected("Invalid JSON in response.".into())
            }
        })?;
        // Some IPinfo errors come back with HTTP 200 and a `status` in the body.
        if let (Some(status), Some(_)) = (
            body.get("status").and_then(Value::as_u64),
            body.get("error"),
        ) {
            let status = u16::try_from(status).unwrap_or(500);
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Unknown")
                .to_string();
            return Err(status_error(status, &reason));
        }
        Ok(body)
    }
}

/// The reference's wording for each HTTP failure; 429 and 5xx are retried.
fn status_error(status: u16, reason: &str) -> ConnectorError {
    match status {
        401 | 403 => ConnectorError::Misconfigured(format!(
            "Invalid API Token, Error {status}. Reason: {reason}"
        )),
        429 => ConnectorError::Retryable(format!(
            "IpInfo Rate limit exceeded, Error 429. Reason: {reason} (the IPinfo quota is exhausted)"
        )),
        s if s >= 500 => {
            ConnectorError::Retryable(format!("Unexpected HTTP Error {s}. Reason: {reason}"))
        }
        s => ConnectorError::Rejected(format!("Unexpected HTTP Error {s}. Reason: {reason}")),
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
        let body = self.lookup(&value).await?;
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
}

#[cfg(test)]
mod tests;
