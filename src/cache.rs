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
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A fetch's failure in these tests.
    #[derive(Debug, PartialEq)]
    struct Failed(String);

    impl From<crate::memory::MemoryError> for Failed {
        fn from(error: crate::memory::MemoryError) -> Self {
            Failed(error.to_string())
        }
    }

    #[tokio::test]
    async fn a_hit_makes_no_call_and_errors_are_not_kept() {
        let cache =
            AnswerCache::<u32>::new("test", &CacheConfig::keeping_for(Duration::from_secs(60)));
        let calls = AtomicUsize::new(0);
        // The call happens when the future runs, as an HTTP request does.
        let fetch = |answer: Result<u32, Failed>| async {
            calls.fetch_add(1, Ordering::SeqCst);
            answer
        };
        assert_eq!(
            cache
                .get_or_fetch("a", || fetch(Err(Failed("503".into()))))
                .await,
            Err(Failed("503".into()))
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
            Ok::<_, Failed>(1)
        );
        assert_eq!(
            off.get_or_fetch("a", || fetch(Ok(2))).await,
            Ok::<_, Failed>(2)
        );
    }

    #[tokio::test]
    async fn not_found_answers_are_kept_briefly() {
        let config = CacheConfig::keeping_for(Duration::from_secs(86400));
        assert_eq!(lifetime(config.ttl.0, true), NOT_FOUND_TTL);
        assert_eq!(lifetime(config.ttl.0, false), Duration::from_secs(86400));
        assert_eq!(
            lifetime(Duration::from_secs(10), true),
            Duration::from_secs(10),
            "never longer than the TTL"
        );
        // And through the cache: a "not found" is still a hit within its lifetime.
        let cache = AnswerCache::<u32>::with_not_found("test", &config, |v| *v == 0);
        let first = cache
            .get_or_fetch("k", || async { Ok::<_, Failed>(0) })
            .await;
        let second = cache
            .get_or_fetch("k", || async { Ok::<_, Failed>(5) })
            .await;
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
                            Ok::<_, Failed>("x".repeat(size))
                        })
                        .await;
                }
                let inner = cache.inner.as_ref().unwrap();
                (inner.len() as u64, inner.weight())
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
            .get_or_fetch("a", || async { Ok::<_, Failed>("v".into()) })
            .await;
        let hit = cache
            .get_or_fetch("a", || async { Ok::<_, Failed>("w".into()) })
            .await;
        assert_eq!((first, hit), (Ok("v".into()), Ok("v".into())));
    }

    #[tokio::test]
    async fn expired_answers_are_fetched_again_and_concurrent_lookups_share_one_call() {
        let config = CacheConfig {
            ttl: IsoDuration(Duration::from_millis(50)),
            ..CacheConfig::keeping_for(Duration::ZERO)
        };
        let cache = AnswerCache::<u32>::new("test", &config);
        let calls = AtomicUsize::new(0);
        let slow = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, Failed>(calls.load(Ordering::SeqCst) as u32)
        };
        let (a, b) = tokio::join!(cache.get_or_fetch("k", slow), cache.get_or_fetch("k", slow));
        assert_eq!((a, b, calls.load(Ordering::SeqCst)), (Ok(1), Ok(1), 1));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            cache.get_or_fetch("k", slow).await,
            Ok(2),
            "expired: asked again"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any TTL, the end of time included: the expiry is exact when the clock can hold
        /// it, "never" when it cannot, and never a panic.
        #[test]
        fn any_ttl_gives_an_expiry_without_panicking(
            secs in proptest::prelude::any::<u64>(),
            nanos in 0u32..1_000_000_000,
            not_found in proptest::prelude::any::<bool>(),
        ) {
            let ttl = Duration::new(secs, nanos);
            let now = Instant::now();
            let life = lifetime(ttl, not_found);
            proptest::prop_assert!(life <= ttl);
            match expiry(now, life) {
                Some(at) => {
                    proptest::prop_assert_eq!(at - now, life);
                    proptest::prop_assert_eq!(fresh(Some(at), now), !life.is_zero());
                }
                None => proptest::prop_assert!(fresh(None, now)),
            }
        }

        /// Any settings, far outside the key table's ranges too: a miss then a lookup of the
        /// same key answer, from the cache when it is on and holds the answer.
        #[test]
        fn any_cache_settings_serve_answers_without_panicking(
            secs in proptest::prop_oneof![proptest::prelude::any::<u64>(), 0u64..100_000],
            capacity in proptest::prop_oneof![proptest::prelude::any::<u64>(), 0u64..100],
            max_bytes in proptest::prop_oneof![proptest::prelude::any::<u64>(), 0u64..100],
        ) {
            let config = CacheConfig { ttl: IsoDuration(Duration::from_secs(secs)), capacity, max_bytes };
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (first, second) = runtime.block_on(async {
                let cache = AnswerCache::<u32>::new("test", &config);
                let first = cache.get_or_fetch("k", || async { Ok::<_, Failed>(1) }).await;
                let second = cache.get_or_fetch("k", || async { Ok::<_, Failed>(2) }).await;
                (first, second)
            });
            proptest::prop_assert_eq!(first, Ok(1));
            let off = secs == 0 || capacity == 0 || max_bytes == 0;
            if off {
                proptest::prop_assert_eq!(second, Ok(2), "an off cache asks every time");
            } else {
                proptest::prop_assert!(second == Ok(1) || second == Ok(2));
            }
        }
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
                    Ok::<_, Failed>(1)
                })
                .await;
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls <= 500, "{calls} upstream calls for 3,000 requests");
    }
}
