//! The IVRE web API client (spec §2 and §4.1–4.2): purpose URLs compatible with IVRE's own
//! HTTP backend (`#k=v` fragment → headers, userinfo → Basic auth), `f=` JSON filters,
//! `q=skip:S limit:P` paging until an empty page, tolerant JSON / NDJSON framing.

use chrono::{DateTime, NaiveDateTime, Timelike};
use serde_json::Value;

use crate::connectors::ConnectorError;
use crate::upstream::http::UpstreamError;

pub use super::endpoint::{Endpoint, pct_encode};

/// A failed IVRE request: the message (with a hint for the operator) and, through the one
/// classifier, what the runtime should do with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IvreError(pub ConnectorError);

impl From<crate::memory::MemoryError> for IvreError {
    fn from(error: crate::memory::MemoryError) -> Self {
        IvreError(error.into())
    }
}

impl IvreError {
    /// A failure that another attempt would not fix (a malformed answer, a missing URL).
    pub fn rejected(message: impl Into<String>) -> Self {
        IvreError(ConnectorError::Rejected(message.into()))
    }
}

fn hint(status: u16) -> &'static str {
    match status {
        400 => {
            "Referer/CSRF check failed: set ivre.referer (one of the server's WEB_ALLOWED_REFERERS) or ivre.api_key"
        }
        401 | 403 => "authentication failed: check ivre.api_key or the credentials in the URL",
        404 => "module not exposed (WEB_MODULES) or wrong base URL",
        429 => "API key quota exceeded",
        500 => "unsupported filter or server error",
        _ => "unexpected answer",
    }
}

/// The IVRE HTTP client.
#[derive(Clone)]
pub struct IvreClient {
    http: reqwest::Client,
    pub page_size: u64,
    pub max_records: u64,
    max_answer: usize,
    /// `/ipdata` answers and record lists by query (`ivre.cache`).
    cache: crate::upstream::cache::AnswerCache<Value>,
    /// `ivre.rate_limit`, and the pause a 429 puts on every request (shared by clones).
    gate: std::sync::Arc<crate::upstream::ratelimit::Gate>,
}

/// Nothing known (no ipdata, no record) is a "not found", which the cache keeps briefly.
pub fn nothing_known(answer: &Value) -> bool {
    answer.is_null() || answer.as_array().is_some_and(Vec::is_empty)
}

impl IvreClient {
    /// A client over `http` (made by [`IvreClient::http`]) sending through `gate`
    /// (`ivre.rate_limit`), `/ipdata` answers and record lists kept in `cache` (`ivre.cache`,
    /// with [`nothing_known`] as its "not found").
    pub fn new(
        http: reqwest::Client,
        page_size: u64,
        max_records: u64,
        max_answer: usize,
        cache: crate::upstream::cache::AnswerCache<Value>,
        gate: crate::upstream::ratelimit::Gate,
    ) -> Self {
        IvreClient {
            http,
            page_size: page_size.max(1),
            max_records,
            max_answer,
            cache,
            gate: std::sync::Arc::new(gate),
        }
    }

    /// IVRE's HTTP client from the daemon's `builder`: certificates checked unless
    /// `verify_tls` is off, and no redirects.
    pub fn http(
        builder: reqwest::ClientBuilder,
        verify_tls: bool,
    ) -> reqwest::Result<reqwest::Client> {
        // No redirects: the endpoint's headers (X-API-Key, the fragment's) must never reach
        // another host; a 3xx is reported like any other unexpected answer.
        builder
            .danger_accept_invalid_certs(!verify_tls)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }

    /// GET `<base><path_and_query>`. Failures are classified once: transport errors, 408,
    /// 429 and 5xx are retryable by the runtime, 401/403 are misconfiguration.
    async fn get(&self, endpoint: &Endpoint, path_and_query: &str) -> Result<String, IvreError> {
        let url = format!("{}{path_and_query}", endpoint.base);
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json");
        for (k, v) in &endpoint.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        if let Some((user, pass)) = &endpoint.basic {
            request = request.basic_auth(user, Some(pass.expose()));
        }
        let response = self.gate.send(request).await.map_err(|e| {
            let error = UpstreamError::transport(e);
            IvreError(ConnectorError::from_upstream(&error, error.to_string()))
        })?;
        let status = response.status();
        let failure = (!status.is_success()).then(|| UpstreamError::status(&response));
        let body = crate::upstream::http::text_capped(
            response,
            self.max_answer,
            crate::memory::Weight::Tree,
        )
        .await
        .map_err(|error| {
            let message = format!("reading the answer failed: {error}");
            IvreError(ConnectorError::from_upstream(&error, message))
        })?;
        if let Some(error) = failure {
            let snippet: String = body
                .chars()
                .take(200)
                .collect::<String>()
                .replace(|c: char| c.is_control(), " ");
            tracing::warn!(connector = "ivre", status = status.as_u16(), body = %snippet, "IVRE answered with an error.");
            let message = format!("HTTP {} ({})", status.as_u16(), hint(status.as_u16()));
            return Err(IvreError(ConnectorError::from_upstream(&error, message)));
        }
        Ok(body)
    }

    /// `/ipdata/<addr>`: `None` for IVRE's `null`. The path is built from the parsed
    /// address, so nothing in the observable's value can add a query, a fragment or a path.
    pub async fn ipdata(
        &self,
        endpoint: &Endpoint,
        addr: &str,
    ) -> Result<Option<Value>, IvreError> {
        let ip: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| IvreError::rejected(format!("`{addr}` is not an IP address")))?;
        let key = format!("{}|ipdata|{ip}", endpoint.base);
        let answer = self
            .cache
            .get_or_fetch(&key, || async {
                Ok::<_, IvreError>(
                    self.fetch_ipdata(endpoint, ip)
                        .await?
                        .unwrap_or(Value::Null),
                )
            })
            .await?;
        Ok(Some(answer).filter(|v| !v.is_null()))
    }

    async fn fetch_ipdata(
        &self,
        endpoint: &Endpoint,
        ip: std::net::IpAddr,
    ) -> Result<Option<Value>, IvreError> {
        let body = self.get(endpoint, &format!("/ipdata/{ip}")).await?;
        match serde_json::from_str::<Value>(body.trim()) {
            Ok(Value::Null) => Ok(None),
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) => Err(IvreError::rejected(
                "ipdata answered something that is not an object",
            )),
            Err(e) => Err(IvreError::rejected(format!(
                "ipdata answered invalid JSON: {e}"
            ))),
        }
    }

    /// `check-config --online`: `/ipdata/8.8.8.8` on the data endpoint, not cached.
    pub async fn probe_ipdata(&self, endpoint: &Endpoint) -> Result<&'static str, IvreError> {
        let found = self.fetch_ipdata(endpoint, [8, 8, 8, 8].into()).await?;
        Ok(if found.is_some() {
            "8.8.8.8 known"
        } else {
            "8.8.8.8 unknown"
        })
    }

    /// `check-config --online`: `<route>/count` (a bare integer), not cached.
    pub async fn count(&self, endpoint: &Endpoint, route: &str) -> Result<u64, IvreError> {
        let body = self.get(endpoint, &format!("/{route}/count")).await?;
        body.trim().parse().map_err(|_| {
            IvreError::rejected(format!(
                "{route}/count answered something that is not a count"
            ))
        })
    }

    /// Every record of `route` matching `filter`, paged until an empty page, at most
    /// `max_records` of them; a page equal to the previous one (a server that ignores
    /// `skip:`) ends the paging too.
    pub async fn list(
        &self,
        endpoint: &Endpoint,
        route: &str,
        filter: &Value,
    ) -> Result<Vec<Value>, IvreError> {
        let key = format!("{}|{route}|{filter}", endpoint.base);
        let records = self
            .cache
            .get_or_fetch(&key, || async {
                Ok::<_, IvreError>(Value::Array(
                    self.fetch_list(endpoint, route, filter).await?,
                ))
            })
            .await?;
        Ok(match records {
            Value::Array(records) => records,
            _ => Vec::new(),
        })
    }

    async fn fetch_list(
        &self,
        endpoint: &Endpoint,
        route: &str,
        filter: &Value,
    ) -> Result<Vec<Value>, IvreError> {
        let f = pct_encode(&filter.to_string());
        let mut records: Vec<Value> = Vec::new();
        let mut skip = 0u64;
        let mut previous_len = 0;
        loop {
            let q = pct_encode(&format!("skip:{skip} limit:{}", self.page_size));
            let body = self.get(endpoint, &format!("/{route}?f={f}&q={q}")).await?;
            let page = parse_records(&body)?;
            if page.is_empty() {
                break;
            }
            if previous_len == page.len() && records[records.len() - previous_len..] == page[..] {
                tracing::warn!(
                    connector = "ivre",
                    route,
                    skip,
                    "IVRE answered the previous page again; stopped paging."
                );
                break;
            }
            skip = skip.saturating_add(page.len() as u64);
            previous_len = page.len();
            records.extend(page);
            if self.max_records > 0 && records.len() as u64 >= self.max_records {
                tracing::warn!(
                    connector = "ivre",
                    route,
                    max_records = self.max_records,
                    "Stopped paging at ivre.max_records."
                );
                records.truncate(self.max_records as usize);
                break;
            }
        }
        Ok(records)
    }
}

/// A JSON array (IVRE's `json` framing) or NDJSON, whatever the Content-Type says.
pub fn parse_records(body: &str) -> Result<Vec<Value>, IvreError> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(a)) => Ok(a),
            _ => Err(IvreError::rejected("the answer is not a JSON array")),
        };
    }
    trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                IvreError::rejected(format!("the answer is neither JSON nor NDJSON: {e}"))
            })
        })
        .collect()
}

/// An IVRE time: integer or float epoch (UTC) or `YYYY-MM-DD HH:MM:SS[.ffffff]`, to whole seconds.
pub fn parse_time(v: &Value) -> Option<NaiveDateTime> {
    let t = match v {
        Value::Number(n) => DateTime::from_timestamp(n.as_f64()?.floor() as i64, 0)?.naive_utc(),
        Value::String(s) => NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()?,
        _ => return None,
    };
    t.with_nanosecond(0)
}

/// RFC 3339 UTC, whole seconds.
pub fn format_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
