//! __Title__'s API: `GET <api_base_url>/lookup/<value>` with the key in `X-API-Key`; 404 means
//! "not found". Failures are worded for the work, never with the key.

use crate::config::Secret;
use crate::connectors::{BuildContext, ConnectorError};
use crate::upstream::cache::AnswerCache;
use crate::upstream::http::{self, UpstreamError};
use crate::upstream::ratelimit::Gate;

use super::config::__Name__Config;
use super::mapping::Found;

/// What a lookup gave.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Answer {
    Found(Found),
    /// HTTP 404: __Title__ knows nothing of the value.
    NotFound,
}

/// The __Title__ HTTP client.
pub struct __Name__Client {
    http: reqwest::Client,
    base: reqwest::Url,
    api_key: Secret,
    max_answer: usize,
    /// Answers by looked-up value (`__name__.cache.*`).
    cache: AnswerCache<Answer>,
    /// `__name__.rate_limit`, and the pause a 429 puts on every lookup.
    gate: Gate,
}

impl __Name__Client {
    pub fn new(config: &__Name__Config, ctx: &BuildContext<'_>) -> Result<Self, String> {
        Ok(__Name__Client {
            http: ctx.http(config.request_timeout.0)?,
            base: reqwest::Url::parse(&config.api_base_url).map_err(|e| e.to_string())?,
            api_key: config
                .api_key
                .clone()
                .ok_or("__name__.api_key is required")?,
            max_answer: ctx.settings.max_answer_bytes,
            cache: ctx.cache(&config.cache),
            gate: ctx.gate(config.rate_limit),
        })
    }

    /// Looks `value` up, through the cache.
    pub async fn lookup(&self, value: &str) -> Result<Answer, ConnectorError> {
        self.cache
            .get_or_fetch(value, || self.fetch(value))
            .await
    }

    /// One lookup of `example.com`, not cached (`check-config --online`): "not found" is an
    /// accepted key too.
    pub async fn probe(&self) -> Result<Answer, ConnectorError> {
        self.fetch("example.com").await
    }

    async fn fetch(&self, value: &str) -> Result<Answer, ConnectorError> {
        let url = http::join_segments(&self.base, &["lookup", value]);
        let builder = self
            .http
            .get(url)
            .header("X-API-Key", self.api_key.expose());
        let result = http::json_body(self.gate.send(builder).await, self.max_answer).await;
        match result {
            Ok(body) => serde_json::from_value(body).map(Answer::Found).map_err(|e| {
                ConnectorError::Rejected(format!("__Title__ answered an unexpected shape: {e}"))
            }),
            Err(UpstreamError::Status { status: 404, .. }) => Ok(Answer::NotFound),
            Err(error) => {
                let hint = match &error {
                    UpstreamError::Status {
                        status: 401 | 403, ..
                    } => " (check __name__.api_key)",
                    _ => "",
                };
                Err(ConnectorError::from_upstream(
                    &error,
                    format!("__Title__: {error}{hint}"),
                ))
            }
        }
    }
}
