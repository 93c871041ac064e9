//! What building a connector is handed: [`BuildContext`], its resolved settings and the
//! daemon's egress, and from them the upstream plumbing ready-made (HTTP clients, the answer
//! cache, the rate-limit gate, counted calls), each named after the connector's section so
//! its metrics carry that label and no connector spells its own name.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ConnectorSettings;
use crate::upstream::cache::{AnswerCache, CacheConfig};
use crate::upstream::http::{self, Counted, Egress};
use crate::upstream::ratelimit::Gate;

/// What building a connector is handed: its resolved settings, and what its clients trust
/// and which proxies they use (the daemon's `tls.*` and `proxy.*`; `None`: the web PKI,
/// direct). The egress is handed here, not carried in the settings, so `config` stays
/// below the upstream plumbing.
pub struct BuildContext<'a> {
    pub settings: &'a ConnectorSettings,
    pub egress: Option<&'a Egress>,
}

impl<'a> BuildContext<'a> {
    /// The context of the connector `settings` describe, its clients going out through
    /// `egress`.
    pub fn new(settings: &'a ConnectorSettings, egress: Option<&'a Egress>) -> Self {
        BuildContext { settings, egress }
    }

    /// The connector's section (`ipinfo`): the `connector` label of its metrics.
    fn section(&self) -> &'static str {
        self.settings.key
    }

    /// An HTTP client with `timeout` (connecting in at most 10 s of it), the daemon's
    /// User-Agent, trust and proxies.
    pub fn http(&self, timeout: Duration) -> Result<reqwest::Client, String> {
        http::client(timeout, self.egress).map_err(|e| e.to_string())
    }

    /// The same client going out through `egress` instead of the daemon's (a section with
    /// its own proxies).
    pub fn http_with(&self, timeout: Duration, egress: &Egress) -> Result<reqwest::Client, String> {
        http::client(timeout, Some(egress)).map_err(|e| e.to_string())
    }

    /// The builder of [`BuildContext::http`]'s client, for a connector with settings of its
    /// own (IVRE: `verify_tls`, no redirects).
    pub fn http_builder(&self, timeout: Duration) -> reqwest::ClientBuilder {
        http::builder(timeout, self.egress)
    }

    /// The connector's answer cache (`<section>.cache`), its lookups counted under the
    /// section.
    pub fn cache<V>(&self, config: &CacheConfig) -> AnswerCache<V>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        AnswerCache::new(self.section(), config)
    }

    /// The same, keeping the answers `is_not_found` says are "not found" only briefly
    /// ([`crate::upstream::cache::NOT_FOUND_TTL`]).
    pub fn cache_with_not_found<V>(
        &self,
        config: &CacheConfig,
        is_not_found: fn(&V) -> bool,
    ) -> AnswerCache<V>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        AnswerCache::with_not_found(self.section(), config, is_not_found)
    }

    /// The connector's gate: `per_second` requests a second at most (`<section>.rate_limit`;
    /// 0: no limit) and the pause a 429 puts on them all; its calls and waits counted under
    /// the section.
    pub fn gate(&self, per_second: f64) -> Gate {
        Gate::new(self.section(), per_second)
    }

    /// The connector's calls counted under the section, for a connector without a gate.
    pub fn counted(&self) -> Counted {
        Counted::new(self.section())
    }
}

/// Why a connector could not be built (a client, a URL): a start-up error, which the
/// registry prefixes with the section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl From<String> for BuildError {
    fn from(message: String) -> Self {
        BuildError(message)
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> Self {
        BuildError(message.to_string())
    }
}
