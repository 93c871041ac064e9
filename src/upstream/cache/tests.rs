//! Unit tests of `cache`.

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
    let cache = AnswerCache::<u32>::new("test", &CacheConfig::keeping_for(Duration::from_secs(60)));
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
