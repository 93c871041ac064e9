//! IPinfo's API: `GET <base>/<ip>/json` (or the `lite`/`lookup` plan's path) with the token in a Bearer header, failures in the
//! reference's wording.

use serde_json::Value;

use super::plans::{self, Api};
use crate::config::Secret;
use crate::connectors::ConnectorError;
use crate::upstream::http::{self, UpstreamError};
use crate::upstream::ratelimit::Gate;

/// The IPinfo HTTP client.
pub struct IpinfoClient {
    http: reqwest::Client,
    base_url: reqwest::Url,
    token: Secret,
    max_answer: usize,
    gate: Gate,
    api: Api,
}

impl IpinfoClient {
    /// A client of the legacy API sending through `gate` (`ipinfo.rate_limit`).
    pub fn new(
        http: reqwest::Client,
        base_url: reqwest::Url,
        token: Secret,
        max_answer: usize,
        gate: Gate,
    ) -> Self {
        IpinfoClient {
            http,
            base_url,
            token,
            max_answer,
            gate,
            api: Api::Legacy,
        }
    }

    /// The same client asking `api` (`ipinfo.api`).
    pub fn with_api(mut self, api: Api) -> Self {
        self.api = api;
        self
    }

    /// The answer for `ip`, in the legacy shape whatever the API asked, with only what the
    /// mapping reads.
    pub async fn lookup(&self, ip: &str) -> Result<Value, ConnectorError> {
        let url = http::join_segments(&self.base_url, &self.api.segments(ip));
        let request = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        let response = self.gate.send(request).await;
        let body = http::json_body(response, self.max_answer)
            .await
            .map_err(|e| ConnectorError::from_upstream(&e, wording(&e)))?;
        // Some IPinfo errors come back with HTTP 200 and a `status` in the body.
        if let (Some(status), Some(_)) = (
            body.get("status").and_then(Value::as_u64),
            body.get("error"),
        ) {
            let status = u16::try_from(status).unwrap_or(500);
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Unknown");
            return Err(status_error(status, reason));
        }
        Ok(super::mapping::essentials(plans::to_legacy(self.api, body)))
    }
}

/// An HTTP failure `status`, classified, in the reference's wording.
pub fn status_error(status: u16, reason: &str) -> ConnectorError {
    let error = UpstreamError::Status {
        status,
        reason: reason.to_string(),
        body: String::new(),
        retry_after: None,
    };
    ConnectorError::from_upstream(&error, wording(&error))
}

/// The reference's message for each failure.
fn wording(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Status {
            status: status @ (401 | 403),
            reason,
            ..
        } => format!("Invalid API Token, Error {status}. Reason: {reason}"),
        UpstreamError::Status {
            status: 429,
            reason,
            ..
        } => format!(
            "IpInfo Rate limit exceeded, Error 429. Reason: {reason} (the IPinfo quota is exhausted)"
        ),
        UpstreamError::Status { status, reason, .. } => {
            format!("Unexpected HTTP Error {status}. Reason: {reason}")
        }
        UpstreamError::Transport(_) => "API connection error.".into(),
        UpstreamError::NotJson(_) => "Invalid JSON in response.".into(),
        other => other.to_string(),
    }
}
