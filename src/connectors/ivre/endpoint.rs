//! One purpose's endpoint, as IVRE's own HTTP backend reads its URL: `#k=v` fragment →
//! headers, userinfo → Basic auth, the rest the base URL.

use crate::config::Secret;

/// One purpose's endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub(super) base: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) basic: Option<(String, Secret)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.base)
    }
}

/// Percent-decodes a fragment component.
fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            // On bytes: a multi-byte character after `%` must not split a char boundary.
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub fn pct_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Endpoint {
    /// Parses a purpose URL. `Err` says why the purpose is unusable (e.g. `mongodb://`).
    pub fn parse(
        url: &str,
        referer: Option<&str>,
        api_key: Option<&Secret>,
    ) -> Result<Endpoint, String> {
        let mut parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
            let shown = crate::config::UrlSetting::from(url).redacted();
            format!("`{shown}` is not a URL: {e}")
        })?;
        if parsed.scheme() == "maxmind" {
            return Err(
                "`maxmind://` serves the data purpose only (ivre.db_url_data); this purpose needs IVRE's web API (http/https)"
                    .into(),
            );
        }
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(format!(
                "`{}://` URLs need IVRE's Python library; this connector talks to IVRE's web API (http/https)",
                parsed.scheme()
            ));
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(fragment) = parsed.fragment() {
            for pair in fragment.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                headers.push((pct_decode(k), pct_decode(v)));
            }
        }
        parsed.set_fragment(None);
        let basic = if !parsed.username().is_empty() {
            let user = pct_decode(parsed.username());
            let pass = Secret::new(pct_decode(parsed.password().unwrap_or("")));
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            Some((user, pass))
        } else {
            None
        };
        fn set(headers: &mut Vec<(String, String)>, name: &str, value: String) {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            headers.push((name.to_string(), value));
        }
        if let Some(r) = referer {
            set(&mut headers, "Referer", r.to_string());
        } else if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("referer"))
        {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let default = format!(
                "{}://{}{port}/",
                parsed.scheme(),
                parsed.host_str().unwrap_or("")
            );
            set(&mut headers, "Referer", default);
        }
        if let Some(key) = api_key {
            set(&mut headers, "X-API-Key", key.expose().to_string());
        }
        Ok(Endpoint {
            base: parsed.as_str().trim_end_matches('/').to_string(),
            headers,
            basic,
        })
    }

    /// The Referer this endpoint sends (for tests and logs).
    pub fn referer(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("referer"))
            .map(|(_, v)| v.as_str())
    }
}
