//! LastInfoSec's API: the request for an entity (either endpoint style), and failures in the
//! reference's wording with the key redacted.

use serde_json::{Value, json};

use super::config::Endpoint;
use super::mapping::{Found, strongest_hash};
use crate::config::Secret;
use crate::connectors::{ConnectorError, EnrichmentRequest};
use crate::memory::Weight;
use crate::upstream::http::{self, UpstreamError};

/// What a lookup gave.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Answer {
    /// The API's answer: its first bundle's objects, as text.
    Found(Found),
    /// HTTP 422: LastInfoSec knows nothing of the value.
    NotFound,
}

/// The LastInfoSec HTTP client.
pub struct LastinfosecClient {
    pub(super) http: reqwest::Client,
    pub(super) base: reqwest::Url,
    pub(super) api_key: Secret,
    pub(super) endpoint: Endpoint,
    pub(super) max_answer: usize,
    /// Answers by looked-up value (off unless `lastinfosec.cache.ttl` is set).
    pub(super) cache: crate::upstream::cache::AnswerCache<Answer>,
    /// `lastinfosec.rate_limit`, and the pause a 429 puts on every lookup.
    pub(super) gate: crate::upstream::ratelimit::Gate,
}

impl LastinfosecClient {
    /// The value the reference sends, and the request to send it with.
    fn request(
        &self,
        request: &EnrichmentRequest,
    ) -> Result<(String, reqwest::RequestBuilder), ConnectorError> {
        let entity = &request.stix_entity;
        let stix_type = entity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value = request
            .observable_value
            .clone()
            .or_else(|| {
                if stix_type == "file" {
                    strongest_hash(entity)
                } else {
                    None
                }
            })
            .or_else(|| {
                entity
                    .get("value")
                    .or_else(|| entity.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                ConnectorError::Rejected("The observable has no value to look up".into())
            })?;
        let auth = [("api_key", self.api_key.expose()), ("platform", "opencti")];
        let builder = match self.endpoint {
            Endpoint::Search => {
                let url = http::join_segments(&self.base, &["stix21", "search", ""]);
                self.http
                    .post(url)
                    .query(&auth)
                    .json(&json!({ "value": value }))
            }
            Endpoint::HashHost => {
                let (route, key) = if stix_type == "file" {
                    (
                        "search_hash",
                        strongest_hash(entity).unwrap_or_else(|| value.clone()),
                    )
                } else if stix_type == "url" {
                    let host = reqwest::Url::parse(&value)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string));
                    (
                        "search_host",
                        host.ok_or_else(|| {
                            ConnectorError::Rejected(format!("`{value}` has no host to look up"))
                        })?,
                    )
                } else {
                    ("search_host", value.clone())
                };
                let url = http::join_segments(&self.base, &["stix21", route, &key]);
                self.http.get(url).query(&auth)
            }
        };
        Ok((value, builder))
    }

    /// Looks `request`'s entity up; returns the value sent and the answer.
    pub async fn lookup(
        &self,
        request: &EnrichmentRequest,
    ) -> Result<(String, Answer), ConnectorError> {
        let (value, builder) = self.request(request)?;
        let answer = self
            .cache
            .get_or_fetch(&value, || self.send(builder))
            .await?;
        Ok((value, answer))
    }

    /// One lookup of `example.com`, not cached (`check-config --online`): "not found" is
    /// an accepted key too.
    pub async fn probe(&self) -> Result<Answer, ConnectorError> {
        let request = EnrichmentRequest {
            observable_value: Some("example.com".into()),
            stix_entity: json!({"type": "domain-name", "value": "example.com"}),
            ..Default::default()
        };
        let (_, builder) = self.request(&request)?;
        self.send(builder).await
    }

    /// Sends one lookup.
    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Answer, ConnectorError> {
        let response = self.gate.send(builder).await.map_err(|e| {
            let error = UpstreamError::transport(e);
            ConnectorError::from_upstream(&error, format!("LastInfoSec is unreachable: {error}"))
        })?;
        let status = response.status();
        if status.as_u16() == 422 {
            return Ok(Answer::NotFound);
        }
        if !status.is_success() {
            let text = status_text(status, response.url());
            let error = UpstreamError::status(&response);
            let message = match status.as_u16() {
                401 | 403 => format!(
                    "{text} (LastInfoSec refused the API key: check lastinfosec.api_key_cti)"
                ),
                _ => text,
            };
            return Err(ConnectorError::from_upstream(&error, message));
        }
        // Read and parsed lean: each object stays its JSON text.
        let bytes = http::read_capped(response, self.max_answer, Weight::Lean)
            .await
            .map_err(|e| ConnectorError::from_upstream(&e, format!("LastInfoSec: {e}")))?;
        let found = Found::parse(&bytes).map_err(|_| {
            ConnectorError::Rejected("LastInfoSec answered with something that is not JSON".into())
        })?;
        Ok(Answer::Found(found))
    }
}

/// The reference's error text, with the key redacted from the URL.
pub fn status_text(status: reqwest::StatusCode, url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            (
                k.to_string(),
                if k == "api_key" {
                    "**redacted**".to_string()
                } else {
                    v.to_string()
                },
            )
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    let kind = if status.is_server_error() {
        "Server Error"
    } else {
        "Client Error"
    };
    format!(
        "{} {kind}: {} for url: {shown}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}
