//! Shared upstream HTTP plumbing: client construction, URL building, response decoding.
//! Error texts never contain the request URL (which could carry a key) or headers.

use std::time::Duration;

use serde_json::Value;

use crate::memory::{self, Weight};

/// An upstream call that did not give JSON.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connection, DNS, TLS failure or timeout.
    #[error("{0}")]
    Transport(String),
    /// A non-2xx answer.
    #[error("HTTP {status} {reason}")]
    Status {
        status: u16,
        reason: String,
        /// The start of the body, for the connector's message.
        body: String,
        /// `Retry-After` in seconds or as an HTTP date.
        retry_after: Option<Duration>,
    },
    /// A 2xx answer whose body is not JSON.
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    /// An answer larger than the daemon reads.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The request could not be built (a header value that is not one): not transient.
    #[error("the request could not be built: {0}")]
    Request(String),
    /// The memory budget has no room for the answer now, or never will.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

pub use crate::config::limits::DEFAULT_MAX_UPSTREAM_BYTES;

pub mod proxy;
pub mod trust;

pub use proxy::{Proxies, ProxyUrl, Route};
pub use trust::{MAX_CA_FILE_BYTES, Trust, TrustError};

/// The User-Agent of every upstream call.
pub const USER_AGENT: &str = concat!("opencti-connectors/", env!("CARGO_PKG_VERSION"));

/// How the daemon reaches the network: what it trusts ([`Trust`]) and which proxies it goes
/// through ([`Proxies`]). Built once from the configuration; every HTTP client and amqps
/// take it.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    pub trust: Trust,
    pub proxies: Proxies,
}

/// Sends one upstream request of `connector`, counted in the upstream metrics (calls by
/// status class, latency, in flight).
pub async fn send_counted(
    connector: &'static str,
    request: reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    let call = crate::metrics::UPSTREAM.call(connector);
    let response = request.send().await;
    call.finish(response.as_ref().ok().map(|r| r.status().as_u16()));
    response
}

/// A connector's upstream calls, counted under its name as [`send_counted`] does: what a
/// connector without a rate-limit gate sends through (a gate counts its own).
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    connector: &'static str,
}

impl Counted {
    /// The calls of `connector`, counted under that name.
    pub fn new(connector: &'static str) -> Self {
        Counted { connector }
    }

    /// Sends `request`, counted.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        send_counted(self.connector, request).await
    }
}

/// A rustls client builder with a timeout (connecting takes at most 10 s of it), the
/// daemon's User-Agent, and `egress`'s trust and proxies (`None`: the web PKI, direct).
pub fn builder(timeout: Duration, egress: Option<&Egress>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(USER_AGENT);
    match egress {
        Some(egress) => egress.proxies.apply(egress.trust.apply(builder)),
        None => builder.no_proxy(),
    }
}

/// A rustls client with a timeout, a recognisable User-Agent, and `egress`'s trust and
/// proxies.
pub fn client(timeout: Duration, egress: Option<&Egress>) -> reqwest::Result<reqwest::Client> {
    builder(timeout, egress).build()
}

/// `base` with `segments` appended as path segments (each percent-encoded as needed).
pub fn join_segments(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

/// Describes a transport error without its URL.
pub fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_decode() {
        "could not decode the answer"
    } else {
        "request failed"
    };
    let source = std::error::Error::source(error)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    format!("{kind}{source}").replace(|c: char| c.is_control(), " ")
}

impl UpstreamError {
    /// A transport failure, described without its URL (a request that could not be built
    /// is not a transport failure: it would fail the same way again).
    pub fn transport(error: reqwest::Error) -> Self {
        let builder = error.is_builder();
        let text = describe(&error.without_url());
        if builder {
            UpstreamError::Request(text)
        } else {
            UpstreamError::Transport(text)
        }
    }

    /// A non-2xx answer whose body was not read.
    pub fn status(response: &reqwest::Response) -> Self {
        let status = response.status();
        UpstreamError::Status {
            status: status.as_u16(),
            reason: reason(status).to_string(),
            body: String::new(),
            retry_after: retry_after(response.headers()),
        }
    }
}

/// The canonical reason phrase of `status` (`Unknown` for unregistered codes).
pub fn reason(status: reqwest::StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Unknown")
}

/// The `Retry-After` of an answer: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Reads the body, refusing more than `limit` bytes: at once when `Content-Length` says so,
/// else as soon as the stream passes it. Memory stays bounded whatever the server sends.
///
/// The body is charged to the current request's memory budget before it is read: with a
/// known length, the request reserves `weight` times it at once (what the answer will cost
/// once parsed and sent); without, it is charged as it arrives (1 MiB at a time), and the
/// rest of the reservation is made once its length is known.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    weight: Weight,
) -> Result<Vec<u8>, UpstreamError> {
    const STEP: usize = 1024 * 1024;
    let mut body = match response.content_length() {
        Some(n) if n > limit as u64 => return Err(UpstreamError::TooLarge { limit }),
        Some(n) => {
            memory::reserve(weight.of(n), n).await?;
            // Allocated once: a body grown by doubling would hold up to three times its size.
            Vec::with_capacity(n as usize)
        }
        None => Vec::new(),
    };
    let known = response.content_length().is_some();
    let mut charged = 0;
    while let Some(chunk) = response.chunk().await.map_err(UpstreamError::transport)? {
        if body.len() + chunk.len() > limit {
            return Err(UpstreamError::TooLarge { limit });
        }
        if !known && body.len() + chunk.len() > charged {
            // What the buffer may reach by doubling, a step at a time.
            let next = (body.len() + chunk.len()).next_multiple_of(STEP);
            memory::charge(((next - charged) * 2) as u64).await?;
            charged = next;
        }
        body.extend_from_slice(&chunk);
    }
    if !known {
        memory::reserve(weight.of(body.len() as u64), 0).await?;
    }
    Ok(body)
}

/// [`read_capped`] as text (invalid UTF-8 replaced).
pub async fn text_capped(
    response: reqwest::Response,
    limit: usize,
    weight: Weight,
) -> Result<String, UpstreamError> {
    let bytes = read_capped(response, limit, weight).await?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads a JSON answer of at most `limit` bytes; non-2xx answers become `Status` with the
/// start of the body kept for messages.
pub async fn json_body(
    response: reqwest::Result<reqwest::Response>,
    limit: usize,
) -> Result<Value, UpstreamError> {
    let response = response.map_err(UpstreamError::transport)?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        // Only the start matters for the message; a failed read leaves it empty.
        let body = text_capped(response, 64 * 1024, Weight::Raw)
            .await
            .unwrap_or_default();
        return Err(UpstreamError::Status {
            status: status.as_u16(),
            reason: reason(status).to_string(),
            body: body.chars().take(500).collect(),
            retry_after,
        });
    }
    let bytes = read_capped(response, limit, Weight::Tree).await?;
    serde_json::from_slice(&bytes).map_err(|e| UpstreamError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every connection with `head` then `chunks`, chunked.
    async fn chunked_server(chunks: Vec<Vec<u8>>) -> String {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let chunks = chunks.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                    let _ = socket.write_all(head.as_bytes()).await;
                    for chunk in chunks {
                        let _ = socket
                            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                            .await;
                        let _ = socket.write_all(&chunk).await;
                        let _ = socket.write_all(b"\r\n").await;
                    }
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit_only() {
        let url = chunked_server(vec![vec![b'a'; 600], vec![b'b'; 600]]).await;
        let client = client(Duration::from_secs(5), None).unwrap();
        let get = || client.get(&url).send();
        let body = read_capped(get().await.unwrap(), 2000, Weight::Raw)
            .await
            .unwrap();
        assert_eq!(body.len(), 1200);
        let err = read_capped(get().await.unwrap(), 1000, Weight::Raw)
            .await
            .unwrap_err();
        assert!(
            matches!(err, UpstreamError::TooLarge { limit: 1000 }),
            "{err:?}"
        );
        // Content-Length over the limit: refused before reading.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let big = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n{";
                let _ = socket.write_all(head.as_bytes()).await;
                // Never sends the rest: only the header can end this read in time.
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
        let response = client.get(&big).send().await.unwrap();
        let err = json_body(Ok(response), 1 << 20).await.unwrap_err();
        assert!(matches!(err, UpstreamError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(reqwest::header::RETRY_AFTER, soon.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a past date: now"
        );
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn ipv6_addresses_stay_in_the_path() {
        let base = reqwest::Url::parse("https://ipinfo.io/").unwrap();
        let url = join_segments(&base, &["2001:db8::1", "json"]);
        assert_eq!(url.as_str(), "https://ipinfo.io/2001:db8::1/json");
        let base = reqwest::Url::parse("http://127.0.0.1:9000/prefix").unwrap();
        assert_eq!(
            join_segments(&base, &["a b"]).as_str(),
            "http://127.0.0.1:9000/prefix/a%20b"
        );
    }
}
