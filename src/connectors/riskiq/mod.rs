//! RiskIQ PassiveTotal enrichment: IPv4-Addr / Domain-Name → passive-DNS resolutions.
//! Spec: `shared/spec/connectors/riskiq.md`. The API is being folded into Microsoft Defender
//! Threat Intelligence, hence the configurable base URL.

mod mapping;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::{
    ConnectorKind, ConnectorSettings, IsoDuration, KeyDef, Kind, Secret, SectionSpec, TlpSetting,
    check_url,
};
use crate::connectors::{ConnectorError, EnrichmentConnector, EnrichmentRequest, Hosted, Outcome};
use crate::http::{self, UpstreamError};
use crate::stix::Tlp;
pub use mapping::{AUTHOR, Mapped, author, map_records, parse_time, py_isoformat, stix_time};

/// The reference's wording when nothing was found.
pub const NOTHING_FOUND: &str = "[CONNECTOR] No information found";

/// The `riskiq` section's shape.
pub const SPEC: SectionSpec = SectionSpec {
    section: "riskiq",
    kind: ConnectorKind::Enrichment,
    default_name: "RiskIQ PassiveTotal",
    default_scope: "IPv4-Addr,Domain-Name",
    default_auto: false,
    default_api_base_url: "https://api.riskiq.net/pt",
    api_base_url_aliases: &[],
    default_duration_period: "",
    keys: &[
        KeyDef {
            key: "username",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "PassiveTotal account e-mail (HTTP Basic user; required).",
        },
        KeyDef {
            key: "api_key",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "PassiveTotal API key (HTTP Basic password; required).",
        },
        KeyDef {
            key: "max_tlp",
            env_aliases: &[],
            kind: Kind::Tlp,
            default: "",
            doc: "Highest TLP sent to PassiveTotal; unset means no restriction (as the reference).",
        },
        KeyDef {
            key: "import_last_seen_time_window",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "P30D",
            doc: "Only resolutions seen within this window (sent to the API as `start`).",
        },
        KeyDef {
            key: "quota_check_interval",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "PT10M",
            doc: "Read `/v2/account/quota` at most this often; counted down locally in between.",
        },
        KeyDef {
            key: "request_timeout",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "PT30S",
            doc: "Timeout of one PassiveTotal request.",
        },
    ],
};

/// `riskiq:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskiqSection {
    pub enabled: bool,
    pub api_base_url: String,
    pub connector: crate::config::ConnectorBlock,
    pub username: Option<Secret>,
    pub api_key: Option<Secret>,
    pub max_tlp: Option<TlpSetting>,
    pub import_last_seen_time_window: IsoDuration,
    pub quota_check_interval: IsoDuration,
    pub request_timeout: IsoDuration,
}

impl Default for RiskiqSection {
    fn default() -> Self {
        RiskiqSection {
            enabled: false,
            api_base_url: SPEC.default_api_base_url.into(),
            connector: Default::default(),
            username: None,
            api_key: None,
            max_tlp: None,
            import_last_seen_time_window: IsoDuration(Duration::from_secs(30 * 86400)),
            quota_check_interval: IsoDuration(Duration::from_secs(600)),
            request_timeout: IsoDuration(Duration::from_secs(30)),
        }
    }
}

impl crate::connectors::Section for RiskiqSection {
    crate::section_accessors!(SPEC);
    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, value) in [("username", &self.username), ("api_key", &self.api_key)] {
            if value
                .as_ref()
                .is_none_or(|v| v.is_blank() || v.expose() == "ChangeMe")
            {
                errors.push(format!(
                    "riskiq.{key} (env RISKIQ_{}): required when riskiq.enabled is true",
                    key.to_uppercase()
                ));
            }
        }
        if let Err(e) = check_url("riskiq.api_base_url", &self.api_base_url) {
            errors.push(e);
        }
        if let Err(mut e) = self.connector.resolve(&SPEC, true) {
            errors.append(&mut e);
        }
        errors
    }
    fn build(&self) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
        let settings = self.connector.resolve(&SPEC, true)?;
        let connector = RiskiqConnector::new(self, &settings.scope)
            .map_err(|e| vec![format!("riskiq: {e}")])?;
        Ok((settings, Hosted::Enrichment(std::sync::Arc::new(connector))))
    }
}

/// The last quota reading, counted down locally.
#[derive(Debug, Clone)]
struct Quota {
    read_at: Instant,
    used: Option<u64>,
    limit: Option<u64>,
    next_reset: Option<String>,
}

impl Quota {
    fn exhausted(&self) -> bool {
        matches!((self.used, self.limit), (Some(u), Some(l)) if u >= l)
    }
}

/// The RiskIQ PassiveTotal connector.
pub struct RiskiqConnector {
    client: reqwest::Client,
    base: reqwest::Url,
    username: Secret,
    api_key: Secret,
    max_tlp: Option<Tlp>,
    window: Duration,
    quota_interval: Duration,
    /// Lower-cased entity types handled (the reference checks the scope in code).
    scopes: Vec<String>,
    quota: Mutex<Option<Quota>>,
}

impl RiskiqConnector {
    pub fn new(section: &RiskiqSection, scope: &[String]) -> Result<Self, String> {
        Ok(RiskiqConnector {
            client: http::client(section.request_timeout.0, None).map_err(|e| e.to_string())?,
            base: reqwest::Url::parse(&section.api_base_url).map_err(|e| e.to_string())?,
            username: section
                .username
                .clone()
                .ok_or("riskiq.username is required")?,
            api_key: section
                .api_key
                .clone()
                .ok_or("riskiq.api_key is required")?,
            max_tlp: section.max_tlp.map(|t| t.0),
            window: section.import_last_seen_time_window.0,
            quota_interval: section.quota_check_interval.0,
            scopes: scope
                .iter()
                .map(|s| s.replace(' ', "").to_lowercase())
                .collect(),
            quota: Mutex::new(None),
        })
    }

    async fn get(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Value, ConnectorError> {
        let url = http::join_segments(&self.base, path);
        let response = self
            .client
            .get(url)
            .basic_auth(self.username.expose(), Some(self.api_key.expose()))
            .query(query)
            .send()
            .await;
        let body = http::json_body(response).await.map_err(|e| match e {
            UpstreamError::Transport(t) => {
                ConnectorError::Retryable(format!("RiskIQ PassiveTotal is unreachable: {t}"))
            }
            UpstreamError::NotJson(_) => ConnectorError::Rejected(
                "RiskIQ PassiveTotal answered with something that is not JSON".into(),
            ),
            UpstreamError::Status {
                status,
                reason,
                body,
            } => status_error(status, &reason, &body),
        })?;
        if let Some(message) = body.get("message").and_then(Value::as_str)
            && message.starts_with("quota_exceeded")
        {
            return Err(ConnectorError::Rejected(format!(
                "RiskIQ PassiveTotal quota exhausted: {message}"
            )));
        }
        Ok(body)
    }

    /// The quota gate: at most one quota call per interval; exhausted → fail without a lookup.
    async fn check_quota(&self) -> Result<(), ConnectorError> {
        let mut cached = self.quota.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|q| q.read_at.elapsed() < self.quota_interval);
        if !fresh {
            let body = self.get(&["v2", "account", "quota"], &[]).await?;
            let user = body.get("user");
            let number = |k: &str| {
                user.and_then(|u| u.get(k))
                    .and_then(|v| v.get("searchApi"))
                    .and_then(Value::as_u64)
            };
            let quota = Quota {
                read_at: Instant::now(),
                used: number("licenseCounts"),
                limit: number("licenseLimits"),
                next_reset: user
                    .and_then(|u| u.get("next_reset"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            if quota.used.is_none() || quota.limit.is_none() {
                tracing::warn!(
                    connector = "riskiq",
                    "The quota answer has no searchApi counts; looking up anyway."
                );
            }
            *cached = Some(quota);
        }
        // Just filled above when it was stale.
        let quota = cached.as_mut().expect("quota read");
        if quota.exhausted() {
            return Err(ConnectorError::Rejected(format!(
                "RiskIQ PassiveTotal quota exhausted until {}",
                quota.next_reset.as_deref().unwrap_or("the next reset")
            )));
        }
        // Count this lookup so an exhausted quota is noticed before the next reading.
        if let Some(used) = quota.used.as_mut() {
            *used += 1;
        }
        Ok(())
    }
}

/// HTTP failures: credentials, retryable, or the API's own message.
fn status_error(status: u16, reason: &str, body: &str) -> ConnectorError {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match status {
        401 | 403 => ConnectorError::Misconfigured(format!(
            "RiskIQ PassiveTotal refused the credentials (HTTP {status}{detail}): check riskiq.username and riskiq.api_key"
        )),
        429 => ConnectorError::Retryable(format!(
            "RiskIQ PassiveTotal rate limit (HTTP 429 {reason}){detail}"
        )),
        s if s >= 500 => ConnectorError::Retryable(format!(
            "RiskIQ PassiveTotal failed (HTTP {s} {reason}){detail}"
        )),
        s => ConnectorError::Rejected(format!(
            "RiskIQ PassiveTotal refused the request (HTTP {s} {reason}){detail}"
        )),
    }
}

#[async_trait]
impl EnrichmentConnector for RiskiqConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        self.max_tlp
    }

    fn tlp_refused_message(&self) -> String {
        "[CONNECTOR] Do not send any data, TLP of the observable is greater than MAX TLP,the connector does not has access to this observable, please check the group of the connector user".into()
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let value = request
            .value()
            .ok_or_else(|| ConnectorError::Rejected("'value'".into()))?
            .to_string();
        let stix_type = request
            .stix_entity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        if !self.scopes.contains(&stix_type) {
            return Ok(Outcome::Done(format!(
                "[CONNECTOR] Skip the following entity as it does not concern the initial scope found in the connector config: {{'entity_id': '{}'}}",
                request.entity_id
            )));
        }
        self.check_quota().await?;
        // The API's times are naive UTC, so the window is computed in UTC too.
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::days(30));
        let start = (chrono::Utc::now() - window)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let body = self
            .get(
                &["v2", "dns", "passive"],
                &[("query", value.as_str()), ("start", start.as_str())],
            )
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
        let mapped = map_records(&request.entity_id, &results, &now);
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
        objects.push(author(&now));
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
}

#[cfg(test)]
mod tests;
