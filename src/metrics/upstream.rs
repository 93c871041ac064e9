//! The upstream families: calls, latency, in flight, gate waits, cache lookups; process-wide.

use super::*;

/// Upstream calls and answers, process-wide: the gates and caches are built with the
/// configuration, before any [`Metrics`], and every [`Metrics`] exposes these.
pub struct Upstream {
    calls: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    in_flight: Family<Labels, Gauge>,
    waits: Family<Labels, Counter>,
    wait_seconds: Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>,
    cache: Family<Labels, Counter>,
    client_errors: Family<Labels, Counter>,
}

/// The upstream families.
pub static UPSTREAM: LazyLock<Upstream> = LazyLock::new(|| Upstream {
    calls: Family::default(),
    // 5 ms .. about 20 s.
    latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 13))),
    in_flight: Family::default(),
    waits: Family::default(),
    wait_seconds: Family::default(),
    cache: Family::default(),
    client_errors: Family::default(),
});

impl Upstream {
    /// One call starts; the guard ends it (in flight until dropped).
    pub fn call(&'static self, connector: &'static str) -> CallGuard {
        self.in_flight
            .get_or_create(&connector_label(connector))
            .inc();
        CallGuard {
            connector,
            started: std::time::Instant::now(),
        }
    }

    /// A request held back by the bucket or a 429 pause for `waited`.
    pub fn waited(&self, connector: &str, waited: Duration) {
        self.waits.get_or_create(&connector_label(connector)).inc();
        self.wait_seconds
            .get_or_create(&connector_label(connector))
            .inc_by(waited.as_secs_f64());
    }

    /// A cache lookup: a hit or a miss.
    pub fn cache_lookup(&self, connector: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&vec![
                ("connector".into(), connector.into()),
                ("result".into(), result.into()),
            ])
            .inc();
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "upstream_calls",
            "Upstream API calls by connector and status class (2xx, 4xx, 429, 5xx, error)",
            self.calls.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Upstream API call latency, until the answer's headers",
            self.latency.clone(),
        );
        registry.register(
            "upstream_in_flight",
            "Upstream API calls in flight",
            self.in_flight.clone(),
        );
        registry.register(
            "rate_limit_waits",
            "Upstream calls held back by the rate limit or a 429 pause",
            self.waits.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time upstream calls spent held back by the rate limit or a 429 pause",
            self.wait_seconds.clone(),
        );
        registry.register(
            "cache_lookups",
            "Upstream cache lookups by result (hit, miss)",
            self.cache.clone(),
        );
        registry.register(
            "client_errors",
            "Upstream API calls that failed: no answer or an HTTP error (pycti's client_errors_total)",
            self.client_errors.clone(),
        );
    }
}

/// One upstream call in flight.
pub struct CallGuard {
    connector: &'static str,
    started: std::time::Instant,
}

impl CallGuard {
    /// The call ended with `status` (`None`: no answer).
    pub fn finish(self, status: Option<u16>) {
        let class = match status {
            None => "error",
            Some(429) => "429",
            Some(s) => match s / 100 {
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                _ => "5xx",
            },
        };
        UPSTREAM
            .calls
            .get_or_create(&vec![
                ("connector".into(), self.connector.into()),
                ("status".into(), class.into()),
            ])
            .inc();
        UPSTREAM
            .latency
            .get_or_create(&connector_label(self.connector))
            .observe(self.started.elapsed().as_secs_f64());
        if status.is_none_or(|s| s >= 400) {
            UPSTREAM
                .client_errors
                .get_or_create(&connector_label(self.connector))
                .inc();
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        UPSTREAM
            .in_flight
            .get_or_create(&connector_label(self.connector))
            .dec();
    }
}
