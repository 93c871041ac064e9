//! PassiveTotal's API: Basic-authenticated GETs, the quota gate, failures in the connector's
//! wording.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::Secret;
use crate::connectors::ConnectorError;
use crate::upstream::http::{self, UpstreamError};
use crate::upstream::ratelimit::Gate;

/// A quota reading refused on is re-read first when it is older than this.
const QUOTA_RECHECK: Duration = Duration::from_secs(60);

/// The last quota reading, counted down locally.
#[derive(Debug, Clone)]
struct Quota {
    read_at: Instant,
    used: Option<u64>,
    limit: Option<u64>,
    next_reset: Option<String>,
    /// The API itself said the quota was used up (not only our local count).
    exhausted_when_read: bool,
}

impl Quota {
    fn exhausted(&self) -> bool {
        matches!((self.used, self.limit), (Some(u), Some(l)) if u >= l)
    }

    /// Whether the reading's `next_reset` (naive UTC) is in the past: the count has reset
    /// upstream, whatever the local countdown says.
    fn reset_passed(&self) -> bool {
        self.next_reset
            .as_deref()
            .and_then(super::parse_time)
            .is_some_and(|reset| reset <= chrono::Utc::now().naive_utc())
    }
}

/// The PassiveTotal HTTP client.
pub struct RiskiqClient {
    http: reqwest::Client,
    base: reqwest::Url,
    username: Secret,
    api_key: Secret,
    quota_interval: Duration,
    /// How old a reading may be before a refusal re-reads it ([`QUOTA_RECHECK`]).
    quota_recheck: Duration,
    quota: Mutex<Option<Quota>>,
    max_answer: usize,
    /// `riskiq.rate_limit`, and the pause a 429 puts on every request.
    gate: Gate,
}

impl RiskiqClient {
    /// A client sending through `gate` (`riskiq.rate_limit`, and the pause a 429 puts on
    /// every request).
    pub fn new(
        http: reqwest::Client,
        base: reqwest::Url,
        username: Secret,
        api_key: Secret,
        quota_interval: Duration,
        max_answer: usize,
        gate: Gate,
    ) -> Self {
        RiskiqClient {
            http,
            base,
            username,
            api_key,
            quota_interval,
            quota_recheck: QUOTA_RECHECK,
            quota: Mutex::new(None),
            max_answer,
            gate,
        }
    }

    /// The same client re-reading an exhausted quota after `recheck` (tests).
    pub fn with_quota_recheck(mut self, recheck: Duration) -> Self {
        self.quota_recheck = recheck;
        self
    }

    /// `GET <base>/<path>?<query>`.
    pub async fn get(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ConnectorError> {
        let url = http::join_segments(&self.base, path);
        let request = self
            .http
            .get(url)
            .basic_auth(self.username.expose(), Some(self.api_key.expose()))
            .query(query);
        let response = self.gate.send(request).await;
        let body = http::json_body(response, self.max_answer)
            .await
            .map_err(|e| ConnectorError::from_upstream(&e, wording(&e)))?;
        if let Some(message) = body.get("message").and_then(Value::as_str)
            && message.starts_with("quota_exceeded")
        {
            return Err(ConnectorError::Rejected(format!(
                "RiskIQ PassiveTotal quota exhausted: {message}"
            )));
        }
        Ok(body)
    }

    /// Reads the quota once, as `check-config --online` shows it.
    pub async fn quota_summary(&self) -> Result<String, ConnectorError> {
        let quota = self.read_quota().await?;
        Ok(match (quota.used, quota.limit) {
            (Some(used), Some(limit)) => format!(
                "credentials accepted; {used} of {limit} searches used (next reset {})",
                quota.next_reset.as_deref().unwrap_or("unknown")
            ),
            _ => "credentials accepted; the quota answer has no searchApi counts".into(),
        })
    }

    /// Reads `/v2/account/quota`.
    async fn read_quota(&self) -> Result<Quota, ConnectorError> {
        let body = self.get(&["v2", "account", "quota"], &[]).await?;
        let user = body.get("user");
        let number = |k: &str| {
            user.and_then(|u| u.get(k))
                .and_then(|v| v.get("searchApi"))
                .and_then(Value::as_u64)
        };
        let mut quota = Quota {
            read_at: Instant::now(),
            used: number("licenseCounts"),
            limit: number("licenseLimits"),
            next_reset: user
                .and_then(|u| u.get("next_reset"))
                .and_then(Value::as_str)
                .map(str::to_string),
            exhausted_when_read: false,
        };
        quota.exhausted_when_read = quota.exhausted();
        if quota.used.is_none() || quota.limit.is_none() {
            tracing::warn!(
                connector = "riskiq",
                "The quota answer has no searchApi counts; looking up anyway."
            );
        }
        Ok(quota)
    }

    /// The quota gate: at most one quota call per interval, counted down locally between;
    /// exhausted → fail without a lookup. Before refusing on a reading older than a minute,
    /// it is read again; a count that is only ours never refuses once `next_reset` passed.
    pub async fn check_quota(&self) -> Result<(), ConnectorError> {
        let mut cached = self.quota.lock().await;
        let stale = |q: &Option<Quota>| {
            q.as_ref()
                .is_none_or(|q| q.read_at.elapsed() >= self.quota_interval)
        };
        let recheck = |q: &Option<Quota>| {
            q.as_ref()
                .is_some_and(|q| q.exhausted() && q.read_at.elapsed() >= self.quota_recheck)
        };
        if stale(&cached) || recheck(&cached) {
            *cached = Some(self.read_quota().await?);
        }
        // Filled just above when it was missing.
        let quota = cached.as_mut().expect("quota read");
        let refuse = quota.exhausted() && (quota.exhausted_when_read || !quota.reset_passed());
        if refuse {
            return Err(ConnectorError::Rejected(format!(
                "RiskIQ PassiveTotal quota exhausted until {}",
                quota.next_reset.as_deref().unwrap_or("the next reset")
            )));
        }
        // Count this lookup so an exhausted quota is noticed before the next reading.
        if let Some(used) = quota.used.as_mut() {
            *used = used.saturating_add(1);
        }
        Ok(())
    }
}

/// An HTTP failure `status` with its `body`, classified, in the connector's wording.
pub fn status_error(status: u16, reason: &str, body: &str) -> ConnectorError {
    let error = UpstreamError::Status {
        status,
        reason: reason.to_string(),
        body: body.to_string(),
        retry_after: None,
    };
    ConnectorError::from_upstream(&error, wording(&error))
}

/// Credentials, rate limit, failure or the API's own message.
fn wording(error: &UpstreamError) -> String {
    let (status, reason, body) = match error {
        UpstreamError::Status {
            status,
            reason,
            body,
            ..
        } => (*status, reason, body),
        UpstreamError::Transport(t) => return format!("RiskIQ PassiveTotal is unreachable: {t}"),
        UpstreamError::NotJson(_) => {
            return "RiskIQ PassiveTotal answered with something that is not JSON".into();
        }
        other => return format!("RiskIQ PassiveTotal: {other}"),
    };
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
        401 | 403 => format!(
            "RiskIQ PassiveTotal refused the credentials (HTTP {status}{detail}): check riskiq.username and riskiq.api_key"
        ),
        429 => format!("RiskIQ PassiveTotal rate limit (HTTP 429 {reason}){detail}"),
        s if s >= 500 => format!("RiskIQ PassiveTotal failed (HTTP {s} {reason}){detail}"),
        s => format!("RiskIQ PassiveTotal refused the request (HTTP {s} {reason}){detail}"),
    }
}
