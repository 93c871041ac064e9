//! The upstream answer cache of an enrichment connector: answers kept in memory, keyed by the
//! looked-up value, for `<connector>.cache.ttl`, at most `<connector>.cache.capacity` of them
//! and `<connector>.cache.max_bytes` in all. A hit makes no upstream call; concurrent lookups
//! of one key make one call; errors are never kept, and "not found" answers only for
//! [`NOT_FOUND_TTL`] (or the TTL if shorter): the upstream may learn of the value soon.
//!
//! Answers are kept as their compact JSON text (a parsed `serde_json::Value` takes several
//! times the room) and parsed again on a hit, which costs microseconds.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::IsoDuration;

/// `<connector>.cache` in the YAML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long an answer is reused; zero turns the cache off.
    pub ttl: IsoDuration,
    /// Answers kept at most (least recently used go first).
    pub capacity: u64,
    /// Bytes of answers (their JSON text) kept at most.
    pub max_bytes: u64,
}

/// The default of `cache.max_bytes`: 8 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;

impl CacheConfig {
    /// A cache keeping answers for `ttl` (zero: off), 10,000 of them and 8 MiB at most.
    pub const fn keeping_for(ttl: Duration) -> Self {
        CacheConfig {
            ttl: IsoDuration(ttl),
            capacity: 10_000,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig::keeping_for(Duration::ZERO)
    }
}

/// How long a "not found" answer is kept at most.
pub const NOT_FOUND_TTL: Duration = Duration::from_secs(300);

/// One kept answer: its JSON text and when it expires (`None`: past the end of the
/// monotonic clock, so never while this process runs).
#[derive(Clone)]
struct Entry {
    json: Arc<[u8]>,
    expires: Option<Instant>,
}

/// When an answer kept for `lifetime` from `now` expires. The TTL's range keeps this far
/// from the clock's end; past it, the answer simply never expires rather than panicking.
fn expiry(now: Instant, lifetime: Duration) -> Option<Instant> {
    now.checked_add(lifetime)
}

/// Whether an answer expiring at `expires` is still good at `now`.
fn fresh(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_none_or(|at| at > now)
}

/// The number of entries the cache is sized for up front; more fit (the weights bound them),
/// this only keeps a large `capacity` from reserving memory it may never use.
const PRESIZED_ENTRIES: u64 = 16_384;

/// An answer's lifetime: the TTL, or [`NOT_FOUND_TTL`] for a "not found" (never longer than
/// the TTL).
fn lifetime(ttl: Duration, not_found: bool) -> Duration {
    if not_found {
        ttl.min(NOT_FOUND_TTL)
    } else {
        ttl
    }
}

/// Entries weigh their bytes, and at least `max_bytes / capacity`: neither bound can be
/// passed.
#[derive(Clone)]
struct ByBytes {
    floor: u64,
}

impl quick_cache::Weighter<String, Entry> for ByBytes {
    fn weight(&self, key: &String, entry: &Entry) -> u64 {
        let bytes = entry.json.len().saturating_add(key.len());
        u64::try_from(bytes).unwrap_or(u64::MAX).max(self.floor)
    }
}

type Inner = quick_cache::sync::Cache<String, Entry, ByBytes>;

/// A cache of upstream answers of type `V` (clones share it).
#[derive(Clone)]
pub struct AnswerCache<V> {
    connector: &'static str,
    inner: Option<Arc<Inner>>,
    ttl: Duration,
    is_not_found: Option<fn(&V) -> bool>,
}

impl<V: Serialize + DeserializeOwned + Send + Sync + 'static> AnswerCache<V> {
    /// `connector`'s cache (its hits and misses are counted under that name).
    pub fn new(connector: &'static str, config: &CacheConfig) -> Self {
        Self::build(connector, config, None)
    }

    /// The same, keeping answers `is_not_found` says are "not found" for
    /// [`NOT_FOUND_TTL`] at most.
    pub fn with_not_found(
        connector: &'static str,
        config: &CacheConfig,
        is_not_found: fn(&V) -> bool,
    ) -> Self {
        Self::build(connector, config, Some(is_not_found))
    }

    fn build(
        connector: &'static str,
        config: &CacheConfig,
        is_not_found: Option<fn(&V) -> bool>,
    ) -> Self {
        let on = !config.ttl.0.is_zero() && config.capacity > 0 && config.max_bytes > 0;
        // At least 1: an entry weighing nothing would escape the byte bound.
        let floor = (config.max_bytes / config.capacity.max(1)).max(1);
        let items = usize::try_from(config.capacity.min(PRESIZED_ENTRIES)).unwrap_or(1);
        AnswerCache {
            connector,
            inner: on.then(|| {
                Arc::new(Inner::with_weighter(
                    items,
                    config.max_bytes,
                    ByBytes { floor },
                ))
            }),
            ttl: config.ttl.0,
            is_not_found,
        }
    }

    /// The cached answer for `key`, or `fetch`'s (kept only when it succeeded).
    pub async fn get_or_fetch<E, F, Fut>(&self, key: &str, fetch: F) -> Result<V, E>
    where
        E: From<crate::memory::MemoryError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let Some(cache) = &self.inner else {
            return fetch().await;
        };
        // One upstream call for concurrent lookups of a key: the first gets the guard and
        // fetches, the others wait for its entry (or, when it failed, take the guard next).
        let mut fetch = Some(fetch);
        loop {
            match cache.get_value_or_guard_async(key).await {
                Ok(entry) if fresh(entry.expires, Instant::now()) => {
                    // Read back, the answer is as large as a fetched one: charged the same.
                    let weight = crate::memory::Weight::Tree.of(entry.json.len() as u64);
                    if let Err(error) = crate::memory::reserve(weight, weight).await {
                        return Err(E::from(error));
                    }
                    if let Ok(answer) = serde_json::from_slice(&entry.json) {
                        crate::metrics::UPSTREAM.cache_lookup(self.connector, true);
                        return Ok(answer);
                    }
                    // Written by `to_vec` below, so it reads back; if one ever did not,
                    // asking again is the safe way out.
                    cache.remove(key);
                }
                Ok(_expired) => {
                    cache.remove(key);
                }
                Err(guard) => {
                    crate::metrics::UPSTREAM.cache_lookup(self.connector, false);
                    let Some(fetch) = fetch.take() else {
                        unreachable!("a lookup takes the guard once: it returns after")
                    };
                    let answer = fetch().await?;
                    let not_found = self.is_not_found.is_some_and(|f| f(&answer));
                    let entry = Entry {
                        json: serde_json::to_vec(&answer).unwrap_or_default().into(),
                        expires: expiry(Instant::now(), lifetime(self.ttl, not_found)),
                    };
                    let _ = guard.insert(entry);
                    return Ok(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
