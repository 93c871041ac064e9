//! The one GraphQL client all connectors share. Every operation text is a constant listed
//! in [`OPERATIONS`] (the 7.x variants in [`super::dialect`]), so a test validates each
//! against the platform schema of each version. The client records the platform version
//! each `about` answers and speaks the matching [`Dialect`].

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Secret;
use crate::upstream::http::UpstreamError;

use super::dialect::{Dialect, VersionCell};
pub use super::error::OpenctiError;
pub use super::escape::push_json_string;

/// The operations, at their old paths.
pub use super::ops::*;
pub use super::types::{
    Connection, ConnectorInfo, EntityRead, PlaybookStep, QueueConfig, RegisterInput, Registration,
};

pub use crate::config::limits::{DEFAULT_MAX_ANSWER_BYTES, DEFAULT_REQUEST_TIMEOUT};

/// Every operation text the client can send.
pub const OPERATIONS: &[&str] = &[
    HEALTH_CHECK,
    WHOAMI,
    REGISTER_CONNECTOR,
    PING_CONNECTOR,
    WORK_ADD,
    WORK_TO_RECEIVED,
    WORK_TO_PROCESSED,
    ADD_EXPECTATIONS,
    READ_ENTITY,
    READ_MARKING,
    READ_QUEUE_DETAILS,
    READ_SCHEDULE,
    WORK_PING,
    STIX_BUNDLE_PUSH,
    PLAYBOOK_STEP_EXECUTION,
];

/// The shared GraphQL client. Cheap to clone.
#[derive(Clone)]
pub struct OpenctiClient {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    draft_id: Option<String>,
    /// Answers larger than this are refused.
    max_answer: usize,
    /// How long one call may take.
    timeout: Duration,
    /// The platform version last read from `about` (shared by every clone).
    pub(super) version: Arc<VersionCell>,
}

impl std::fmt::Debug for OpenctiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenctiClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OpenctiClient {
    /// A client for `<url>/graphql`.
    pub fn new(url: &str, token: Secret, ssl_verify: bool) -> reqwest::Result<Self> {
        Self::with_egress(url, token, ssl_verify, None)
    }

    /// A client for `<url>/graphql` with `egress`'s trust and proxies.
    pub fn with_egress(
        url: &str,
        token: Secret,
        ssl_verify: bool,
        egress: Option<&crate::upstream::http::Egress>,
    ) -> reqwest::Result<Self> {
        Self::with_timeout(url, token, ssl_verify, egress, DEFAULT_REQUEST_TIMEOUT)
    }

    /// [`OpenctiClient::with_egress`] whose calls each give up after `timeout`.
    pub fn with_timeout(
        url: &str,
        token: Secret,
        ssl_verify: bool,
        egress: Option<&crate::upstream::http::Egress>,
        timeout: Duration,
    ) -> reqwest::Result<Self> {
        let http = crate::upstream::http::builder(timeout, egress)
            .danger_accept_invalid_certs(!ssl_verify)
            .build()?;
        Ok(OpenctiClient {
            http,
            endpoint: format!("{}/graphql", url.trim_end_matches('/')),
            token,
            draft_id: None,
            max_answer: DEFAULT_MAX_ANSWER_BYTES,
            timeout,
            version: Arc::default(),
        })
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The platform version last read from `about`, if any.
    pub fn platform_version(&self) -> Option<String> {
        self.version.get()
    }

    /// The dialect spoken now: from the version last read, 6.x until one is.
    pub fn dialect(&self) -> Dialect {
        self.version.dialect()
    }

    /// The dialect, reading `about` first when no version is known yet (a daemon started
    /// while the platform was down). A failed read leaves 6.x: the caller's own call will
    /// meet the same failure and retry.
    pub async fn read_dialect(&self) -> Dialect {
        if self.platform_version().is_none() {
            let _ = self.health_check().await;
        }
        self.dialect()
    }

    /// The same client refusing answers larger than `bytes`.
    pub fn with_max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// The same client acting inside a draft workspace (`opencti-draft-id`).
    pub fn in_draft(&self, draft_id: Option<&str>) -> Self {
        let mut c = self.clone();
        c.draft_id = draft_id.filter(|d| !d.is_empty()).map(str::to_string);
        c
    }

    /// Sends one operation and returns `data`; `errors` in a 200 answer are errors.
    pub async fn execute(&self, query: &str, variables: Value) -> Result<Value, OpenctiError> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))
            .map_err(|e| OpenctiError::Request(e.to_string()))?;
        self.execute_body(body).await
    }

    /// Sends one operation's JSON body (`{"query": …, "variables": …}`) and returns `data`.
    pub(super) async fn execute_body(&self, body: Vec<u8>) -> Result<Value, OpenctiError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(draft) = &self.draft_id {
            request = request.header("opencti-draft-id", draft);
        }
        let response = request.send().await.map_err(|e| {
            let (builder, connect) = (e.is_builder(), e.is_connect());
            let text = crate::upstream::http::describe(&e.without_url());
            if builder {
                OpenctiError::Request(text)
            } else if connect {
                OpenctiError::Unreachable(text)
            } else {
                OpenctiError::Transport(text)
            }
        })?;
        let status = response.status();
        let text = crate::upstream::http::text_capped(
            response,
            self.max_answer,
            crate::memory::Weight::Tree,
        )
        .await
        .map_err(|e| match e {
            UpstreamError::Transport(t) => OpenctiError::Transport(t),
            other => OpenctiError::Decode(other.to_string()),
        })?;
        if !status.is_success() {
            return Err(OpenctiError::Http {
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        let mut body: Value = serde_json::from_str(&text)
            .map_err(|e| OpenctiError::Decode(format!("not JSON: {e}")))?;
        if let Some(first) = body
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            let message = first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string();
            let name = first
                .get("name")
                .or_else(|| first.pointer("/extensions/code"))
                .and_then(Value::as_str)
                .unwrap_or("ERROR")
                .to_string();
            return Err(OpenctiError::GraphQl { name, message });
        }
        Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    pub(super) async fn field<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Result<T, OpenctiError> {
        let mut data = self.execute(query, variables).await?;
        let value = data.get_mut(field).map(Value::take).unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| OpenctiError::Decode(format!("{field}: {e}")))
    }
}
