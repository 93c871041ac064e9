//! The IPsum feed download: conditional GET (ETag / Last-Modified), a size cap, the body's
//! SHA-256, failures classified in the connector's wording.

use sha2::{Digest, Sha256};

use super::state::IpsumState;
use crate::config::Secret;
use crate::connectors::ConnectorError;
use crate::upstream::http::{self, UpstreamError};

/// The feed's HTTP client.
#[derive(Clone)]
pub struct FeedClient {
    pub(super) http: reqwest::Client,
    /// Counts the calls under the section (`upstream_calls{connector="ipsum"}`).
    pub(super) calls: http::Counted,
    pub(super) url: reqwest::Url,
    pub(super) api_key: Option<Secret>,
    pub(super) max_bytes: usize,
    /// A local copy of the feed to read instead of downloading it (one-shot imports).
    pub(super) file: Option<std::path::PathBuf>,
}

/// A downloaded feed.
pub struct Download {
    pub body: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sha256: String,
}

impl FeedClient {
    /// Downloads the feed; `None` when the server says it has not changed.
    pub async fn download(&self, state: &IpsumState) -> Result<Option<Download>, ConnectorError> {
        if let Some(path) = &self.file {
            return self.read_file(path).map(Some);
        }
        let mut request = self.http.get(self.url.clone());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        // A stored value that is no header value (a state edited by hand) is not sent: the
        // download is then unconditional rather than failing every run.
        for (key, stored, header) in [
            ("etag", state.etag(), reqwest::header::IF_NONE_MATCH),
            (
                "last_modified",
                state.last_modified(),
                reqwest::header::IF_MODIFIED_SINCE,
            ),
        ] {
            match stored.map(reqwest::header::HeaderValue::from_str) {
                Some(Ok(value)) => request = request.header(header, value),
                Some(Err(_)) => tracing::warn!(
                    connector = "ipsum",
                    key,
                    "The stored state's value is no valid header; downloading unconditionally."
                ),
                None => {}
            }
        }
        let response = self.calls.send(request).await.map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            let mut text = format!(
                "IPsum feed download failed: HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            if matches!(status.as_u16(), 401 | 403) {
                text.push_str(" (check ipsum.api_key)");
            }
            return Err(ConnectorError::from_upstream(
                &UpstreamError::status(&response),
                text,
            ));
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let bytes = http::read_capped(response, self.max_bytes, crate::memory::Weight::Raw)
            .await
            .map_err(|e| match e {
                UpstreamError::TooLarge { limit } => ConnectorError::Rejected(format!(
                    "IPsum feed is larger than {limit} bytes (ipsum.max_feed_bytes)"
                )),
                other => ConnectorError::from_upstream(
                    &other,
                    format!("IPsum feed download failed: {other}"),
                ),
            })?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(Download {
            body: String::from_utf8_lossy(&bytes).into_owned(),
            etag,
            last_modified,
            sha256,
        }))
    }
}

impl FeedClient {
    /// A local feed file, with the same size cap as a download.
    /// `check-config --online`: the feed answers (its headers only; the body is not read).
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        if let Some(path) = &self.file {
            let length = std::fs::metadata(path)
                .map_err(|e| {
                    ConnectorError::Rejected(format!(
                        "cannot read the feed {}: {e}",
                        path.display()
                    ))
                })?
                .len();
            return Ok(format!("feed file readable ({length} bytes)"));
        }
        let mut request = self.http.get(self.url.clone());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = self.calls.send(request).await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let error = http::UpstreamError::status(&response);
            return Err(ConnectorError::from_upstream(
                &error,
                format!("IPsum feed answered HTTP {}", status.as_u16()),
            ));
        }
        Ok(match response.content_length() {
            Some(n) => format!("feed answers (HTTP {}, {n} bytes)", status.as_u16()),
            None => format!("feed answers (HTTP {})", status.as_u16()),
        })
    }

    fn read_file(&self, path: &std::path::Path) -> Result<Download, ConnectorError> {
        let shown = path.display();
        let too_large = || {
            ConnectorError::Rejected(format!(
                "IPsum feed is larger than {} bytes (ipsum.max_feed_bytes)",
                self.max_bytes
            ))
        };
        let length = std::fs::metadata(path)
            .map_err(|e| ConnectorError::Rejected(format!("cannot read the feed {shown}: {e}")))?
            .len();
        if length > self.max_bytes as u64 {
            return Err(too_large());
        }
        let bytes = std::fs::read(path)
            .map_err(|e| ConnectorError::Rejected(format!("cannot read the feed {shown}: {e}")))?;
        Ok(Download {
            sha256: Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            etag: None,
            last_modified: None,
        })
    }
}

fn transport(error: reqwest::Error) -> ConnectorError {
    let error = UpstreamError::transport(error);
    ConnectorError::from_upstream(&error, format!("IPsum feed download failed: {error}"))
}
