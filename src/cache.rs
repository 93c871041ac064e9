//! The upstream answer cache of an enrichment connector: answers kept in memory, keyed by the
//! looked-up value, for `<connector>.cache.ttl` and at most `<connector>.cache.capacity` of
//! them. A hit makes no upstream call; concurrent lookups of one key make one call; errors
//! are never kept, and "not found" answers only for [`NOT_FOUND_TTL`] (or the TTL if shorter):
//! the upstream may learn of the value soon.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use crate::config::IsoDuration;

/// `<connector>.cache` in the YAML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long an answer is reused; zero turns the cache off.
    pub ttl: IsoDuration,
    /// Answers kept at most (least recently used go first).
    pub capacity: u64,
}

impl CacheConfig {
    /// A cache keeping answers for `ttl` (zero: off), 10,000 of them at most.
    pub const fn keeping_for(ttl: Duration) -> Self {
        CacheConfig {
            ttl: IsoDuration(ttl),
            capacity: 10_000,
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

/// Each answer's lifetime: the TTL, or [`NOT_FOUND_TTL`] for a "not found".
struct Lifetime<V> {
    ttl: Duration,
    is_not_found: Option<fn(&V) -> bool>,
}

impl<V> moka::Expiry<String, V> for Lifetime<V> {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &V,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let not_found = self.is_not_found.is_some_and(|f| f(value));
        Some(if not_found {
            self.ttl.min(NOT_FOUND_TTL)
        } else {
            self.ttl
        })
    }
}

/// A cache of upstream answers of type `V` (clones share it).
#[derive(Clone)]
pub struct AnswerCache<V: Clone + Send + Sync + 'static> {
    connector: &'static str,
    inner: Option<moka::future::Cache<String, V>>,
}

impl<V: Clone + Send + Sync + 'static> AnswerCache<V> {
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
        let on = !config.ttl.0.is_zero() && config.capacity > 0;
        AnswerCache {
            connector,
            inner: on.then(|| {
                moka::future::Cache::builder()
                    .max_capacity(config.capacity)
                    .expire_after(Lifetime {
                        ttl: config.ttl.0,
                        is_not_found,
                    })
                    .build()
            }),
        }
    }

    /// The cached answer for `key`, or `fetch`'s (kept only when it succeeded).
    pub async fn get_or_fetch<E, F, Fut>(&self, key: &str, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Clone + Send + Sync + 'static,
    {
        match &self.inner {
            None => fetch().await,
            Some(cache) => {
                let fetched = std::sync::atomic::AtomicBool::new(false);
                let answer = cache
                    .try_get_with(key.to_string(), async {
                        fetched.store(true, std::sync::atomic::Ordering::Relaxed);
                        fetch().await
                    })
                    .await
                    .map_err(|e| (*e).clone());
                let hit = !fetched.load(std::sync::atomic::Ordering::Relaxed);
                crate::metrics::UPSTREAM.cache_lookup(self.connector, hit);
                answer
            }
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
        let lifetime = Lifetime::<u32> {
            ttl: config.ttl.0,
            is_not_found: Some(|v| *v == 0),
        };
        let now = std::time::Instant::now();
        let key = "k".to_string();
        use moka::Expiry;
        assert_eq!(
            lifetime.expire_after_create(&key, &0, now),
            Some(NOT_FOUND_TTL)
        );
        assert_eq!(
            lifetime.expire_after_create(&key, &7, now),
            Some(Duration::from_secs(86400))
        );
        let short = Lifetime::<u32> {
            ttl: Duration::from_secs(10),
            is_not_found: Some(|v| *v == 0),
        };
        assert_eq!(
            short.expire_after_create(&key, &0, now),
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
