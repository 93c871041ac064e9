//! Which proxy, if any, a request goes through: `proxy.http_proxy`, `proxy.https_proxy`,
//! `proxy.all_proxy` and `proxy.no_proxy`, read from `http_proxy`/`HTTP_PROXY`,
//! `https_proxy`/`HTTPS_PROXY`, `all_proxy`/`ALL_PROXY`, `no_proxy`/`NO_PROXY` (the lowercase
//! name first, as curl reads them).
//!
//! As curl applies them: an `http://` target goes through the HTTP proxy, an `https://` one
//! through the HTTPS proxy (a `CONNECT` tunnel), either falls back to the "all" proxy, and a
//! host matched by `no_proxy` goes direct: a domain matches itself and its subdomains (a
//! leading dot changes nothing), an IP address or CIDR block matches the addresses in it, `*`
//! matches everything. A proxy URL without a scheme is `http://`. The matching is
//! hyper-util's (reqwest's own); the one function [`Proxies::route`] decides for every
//! client and for what `check-config --online` prints.
//!
//! A proxy's credentials (`http://user:password@proxy:3128`) are sent as
//! `Proxy-Authorization: Basic`, and never shown: [`ProxyUrl`] prints as
//! `http://**redacted**@proxy:3128`.

use std::fmt;
use std::sync::Arc;

use hyper_util::client::proxy::matcher::Matcher;

use crate::config::Secret;

/// A proxy: its URL (credentials included) and the setting it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    url: reqwest::Url,
    /// The key that set it (`proxy.https_proxy`), for what `check-config` prints.
    pub from: &'static str,
}

impl ProxyUrl {
    /// Parses a proxy setting. The error never quotes the value (it may hold a password).
    pub fn parse(value: &str, from: &'static str) -> Result<ProxyUrl, String> {
        let value = value.trim();
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{value}")
        };
        let expected = "expected http://[user:password@]host[:port] or https://…";
        let url = reqwest::Url::parse(&with_scheme)
            .map_err(|_| format!("not a proxy URL; {expected}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the proxy's scheme is not supported; expected one of: http, https ({expected})"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("the proxy URL has no host; {expected}"));
        }
        Ok(ProxyUrl { url, from })
    }

    /// The URL with its credentials, for the client only.
    pub fn expose(&self) -> &reqwest::Url {
        &self.url
    }

    /// `scheme://host:port`, credentials replaced by `**redacted**`.
    pub fn redacted(&self) -> String {
        let mut shown = format!("{}://", self.url.scheme());
        if !self.url.username().is_empty() || self.url.password().is_some() {
            shown.push_str("**redacted**@");
        }
        // Checked in `parse`: a proxy URL has a host.
        shown.push_str(self.url.host_str().unwrap_or_default());
        if let Some(port) = self.url.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The proxy settings of one client.
#[derive(Clone, Default)]
pub struct Proxies {
    http: Option<ProxyUrl>,
    https: Option<ProxyUrl>,
    no_proxy: String,
    /// Built from `no_proxy` alone: says whether a host is excluded.
    excluded: Option<Arc<Matcher>>,
    everything_excluded: bool,
}

impl fmt::Debug for Proxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxies")
            .field("http", &self.http)
            .field("https", &self.https)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Direct,
    Via(&'a ProxyUrl),
}

impl fmt::Display for Route<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct => f.write_str("direct"),
            Route::Via(proxy) => write!(f, "through {proxy} ({})", proxy.from),
        }
    }
}

/// A placeholder proxy for the matcher that only answers "excluded or not".
const PROBE: &str = "http://proxy.invalid";

impl Proxies {
    /// The settings of `proxy.*`; each error names its key, never its value.
    pub fn from_settings(
        http: Option<&Secret>,
        https: Option<&Secret>,
        all: Option<&Secret>,
        no_proxy: Option<&str>,
    ) -> Result<Proxies, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let mut parse = |value: Option<&Secret>, key: &'static str| {
            let value = value.filter(|v| !v.is_blank())?;
            ProxyUrl::parse(value.expose(), key)
                .map_err(|e| errors.push((key, e)))
                .ok()
        };
        let http = parse(http, "proxy.http_proxy");
        let https = parse(https, "proxy.https_proxy");
        let all = parse(all, "proxy.all_proxy");
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Proxies {
            http: http.or_else(|| all.clone()),
            https: https.or(all),
            ..Proxies::default()
        }
        .excluding(no_proxy.unwrap_or_default()))
    }

    /// The same settings with `http` and `https` replacing the proxy of their scheme where
    /// set (LastInfoSec's `proxy_http`/`proxy_https`); `no_proxy` still applies.
    pub fn overridden(&self, http: Option<ProxyUrl>, https: Option<ProxyUrl>) -> Proxies {
        Proxies {
            http: http.or_else(|| self.http.clone()),
            https: https.or_else(|| self.https.clone()),
            ..self.clone()
        }
    }

    /// The same settings, with `no_proxy` the hosts that go direct.
    fn excluding(mut self, no_proxy: &str) -> Proxies {
        self.no_proxy = no_proxy.trim().to_string();
        self.everything_excluded = self.no_proxy.split(',').any(|h| h.trim() == "*");
        self.excluded = Some(Arc::new(
            Matcher::builder()
                .all(PROBE)
                .no(self.no_proxy.as_str())
                .build(),
        ));
        self
    }

    /// Whether any proxy is configured.
    pub fn any(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// Where a request to `url` goes.
    pub fn route(&self, url: &reqwest::Url) -> Route<'_> {
        let proxy = match url.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        };
        let Some(proxy) = proxy else {
            return Route::Direct;
        };
        if self.everything_excluded || self.is_excluded(url) {
            return Route::Direct;
        }
        Route::Via(proxy)
    }

    fn is_excluded(&self, url: &reqwest::Url) -> bool {
        let Some(matcher) = &self.excluded else {
            return false;
        };
        // The matcher needs only the scheme and the host (`host_str` keeps IPv6 brackets).
        let Some(host) = url.host_str() else {
            return false;
        };
        match format!("http://{host}/").parse::<http::Uri>() {
            Ok(uri) => matcher.intercept(&uri).is_none(),
            Err(_) => false,
        }
    }

    /// Applies these settings to a client: only them, never the process environment (the
    /// configuration has read it already, and `check-config` shows what it decided).
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        if !self.any() {
            return builder.no_proxy();
        }
        let proxies = self.clone();
        builder.proxy(reqwest::Proxy::custom(move |url| {
            match proxies.route(url) {
                Route::Direct => None,
                Route::Via(proxy) => Some(proxy.expose().clone()),
            }
        }))
    }
}

#[cfg(test)]
mod tests;
