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
use std::time::Duration;

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

/// One kept answer: its JSON text, and whether it is a "not found".
#[derive(Clone)]
struct Entry {
    json: Arc<[u8]>,
    not_found: bool,
}

/// Each answer's lifetime: the TTL, or [`NOT_FOUND_TTL`] for a "not found".
struct Lifetime {
    ttl: Duration,
}

impl moka::Expiry<String, Entry> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(if entry.not_found {
            self.ttl.min(NOT_FOUND_TTL)
        } else {
            self.ttl
        })
    }
}

/// A cache of upstream answers of type `V` (clones share it).
#[derive(Clone)]
pub struct AnswerCache<V> {
    connector: &'static str,
    inner: Option<moka::future::Cache<String, Entry>>,
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
        // Weighed by bytes, each at least budget / capacity: neither bound can be passed.
        let floor = u32::try_from(config.max_bytes / config.capacity.max(1)).unwrap_or(u32::MAX);
        AnswerCache {
            connector,
            inner: on.then(|| {
                moka::future::Cache::builder()
                    .max_capacity(config.max_bytes)
                    .weigher(move |key: &String, entry: &Entry| {
                        let bytes = entry.json.len().saturating_add(key.len());
                        u32::try_from(bytes).unwrap_or(u32::MAX).max(floor)
                    })
                    .expire_after(Lifetime { ttl: config.ttl.0 })
                    .build()
            }),
            is_not_found,
        }
    }

    /// The cached answer for `key`, or `fetch`'s (kept only when it succeeded).
    pub async fn get_or_fetch<E, F, Fut>(&self, key: &str, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let Some(cache) = &self.inner else {
            return fetch().await;
        };
        if let Some(entry) = cache.get(key).await
            && let Ok(answer) = serde_json::from_slice(&entry.json)
        {
            crate::metrics::UPSTREAM.cache_lookup(self.connector, true);
            return Ok(answer);
        }
        // One upstream call for concurrent lookups of a key: the first fetches, the others
        // wait for its entry. The fetched answer itself is returned, not a copy of it.
        let fetched: std::sync::Mutex<Option<V>> = std::sync::Mutex::new(None);
        let fetch = std::sync::Mutex::new(Some(fetch));
        let take = || fetch.lock().unwrap_or_else(|e| e.into_inner()).take();
        let entry = cache
            .try_get_with(key.to_string(), async {
                // The init runs at most once per lookup, so the fetch is still there.
                let Some(fetch) = take() else {
                    unreachable!("the init runs once")
                };
                let answer = fetch().await?;
                let json: Arc<[u8]> = serde_json::to_vec(&answer).unwrap_or_default().into();
                let not_found = self.is_not_found.is_some_and(|f| f(&answer));
                *fetched.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
                Ok(Entry { json, not_found })
            })
            .await
            .map_err(|e: Arc<E>| (*e).clone());
        let mine = fetched.lock().unwrap_or_else(|e| e.into_inner()).take();
        crate::metrics::UPSTREAM.cache_lookup(self.connector, mine.is_none());
        match (mine, entry) {
            (Some(answer), _) => Ok(answer),
            (None, Ok(entry)) => match serde_json::from_slice(&entry.json) {
                Ok(answer) => Ok(answer),
                // Answers are written by `to_vec` above, so they read back; if one ever did
                // not, asking again is the safe way out.
                Err(_) => {
                    cache.invalidate(key).await;
                    match take() {
                        Some(fetch) => fetch().await,
                        None => unreachable!("another lookup's entry: ours never ran"),
                    }
                }
            },
            (None, Err(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_hit_makes_no_call_and_errors_are_not_kept() {
        let cache =
            AnswerCache::<u32>::new("test", &CacheConfig::keeping_for(Duration::from_secs(60)));
        let calls = AtomicUsize::new(0);
        // The call happens when the future runs, as an HTTP request does.
        let fetch = |answer: Result<u32, String>| async {
            calls.fetch_add(1, Ordering::SeqCst);
            answer
        };
        assert_eq!(
            cache.get_or_fetch("a", || fetch(Err("503".into()))).await,
            Err("503".into())
        );
        assert_eq!(cache.get_or_fetch("a", || fetch(Ok(7))).await, Ok(7));
        assert_eq!(
            cache.get_or_fetch("a", || fetch(Ok(8))).await,
            Ok(7),
            "a hit"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let off = AnswerCache::<u32>::new("test", &CacheConfig::default());
        assert_eq!(
            off.get_or_fetch("a", || fetch(Ok(1))).await,
            Ok::<_, String>(1)
        );
        assert_eq!(
            off.get_or_fetch("a", || fetch(Ok(2))).await,
            Ok::<_, String>(2)
        );
    }

    #[tokio::test]
    async fn not_found_answers_are_kept_briefly() {
        let config = CacheConfig::keeping_for(Duration::from_secs(86400));
        let lifetime = Lifetime { ttl: config.ttl.0 };
        let now = std::time::Instant::now();
        let key = "k".to_string();
        let entry = |not_found| Entry {
            json: Arc::from(&b"0"[..]),
            not_found,
        };
        use moka::Expiry;
        assert_eq!(
            lifetime.expire_after_create(&key, &entry(true), now),
            Some(NOT_FOUND_TTL)
        );
        assert_eq!(
            lifetime.expire_after_create(&key, &entry(false), now),
            Some(Duration::from_secs(86400))
        );
        let short = Lifetime {
            ttl: Duration::from_secs(10),
        };
        assert_eq!(
            short.expire_after_create(&key, &entry(true), now),
            Some(Duration::from_secs(10)),
            "never longer than the TTL"
        );
        // And through the cache: a "not found" is still a hit within its lifetime.
        let cache = AnswerCache::<u32>::with_not_found("test", &config, |v| *v == 0);
        let first = cache.get_or_fetch("k", || async { Ok::<_, ()>(0) }).await;
        let second = cache.get_or_fetch("k", || async { Ok::<_, ()>(5) }).await;
        assert_eq!((first, second), (Ok(0), Ok(0)));
    }

    #[tokio::test]
    async fn the_cache_holds_neither_more_answers_nor_more_bytes_than_configured() {
        let calls = AtomicUsize::new(0);
        let fill = |cache: AnswerCache<String>, size: usize| {
            let calls = &calls;
            async move {
                for i in 0..200 {
                    let _ = cache
                        .get_or_fetch(&format!("k{i}"), || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, ()>("x".repeat(size))
                        })
                        .await;
                }
                cache.inner.as_ref().unwrap().run_pending_tasks().await;
                let inner = cache.inner.as_ref().unwrap();
                (inner.entry_count(), inner.weighted_size())
            }
        };
        let config = CacheConfig {
            ttl: IsoDuration(Duration::from_secs(60)),
            capacity: 50,
            max_bytes: 100_000,
        };
        // Small answers: the count bounds.
        let (count, _) = fill(AnswerCache::new("test", &config), 10).await;
        assert!(count <= 50, "{count} answers");
        // Large answers: the bytes bound.
        let (count, bytes) = fill(AnswerCache::new("test", &config), 10_000).await;
        assert!(
            bytes <= 100_000 && count <= 10,
            "{count} answers, {bytes} bytes"
        );
        // And a hit reads the answer back.
        let cache = AnswerCache::<String>::new("test", &config);
        let first = cache
            .get_or_fetch("a", || async { Ok::<_, ()>("v".into()) })
            .await;
        let hit = cache
            .get_or_fetch("a", || async { Ok::<_, ()>("w".into()) })
            .await;
        assert_eq!((first, hit), (Ok("v".into()), Ok("v".into())));
    }

    #[tokio::test]
    async fn popular_lookups_cost_one_call_each() {
        // 3,000 requests, Zipf-distributed over 500 IPs (as auto-enrichment makes them), with
        // the default capacity: one upstream call per distinct IP.
        let cache = AnswerCache::<u32>::new(
            "test",
            &CacheConfig::keeping_for(Duration::from_secs(86400)),
        );
        let calls = AtomicUsize::new(0);
        let weights: Vec<f64> = (1..=500).map(|rank| 1.0 / rank as f64).collect();
        let total: f64 = weights.iter().sum();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            // xorshift: a fixed, reproducible sequence.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut pick = (seed % 1_000_000) as f64 / 1_000_000.0 * total;
            let rank = weights
                .iter()
                .position(|w| {
                    pick -= w;
                    pick <= 0.0
                })
                .unwrap_or(499);
            let _ = cache
                .get_or_fetch(&format!("10.0.{}.{}", rank / 256, rank % 256), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(1)
                })
                .await;
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls <= 500, "{calls} upstream calls for 3,000 requests");
    }
}
