//! Prometheus metrics: one counter family of events per connector, an `up` gauge per
//! connector (1 while registered and serving), the time of the last successful import, and
//! the upstream families ([`UPSTREAM`]) every connector's gate and cache count into.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Everything the daemon counts per connector: the `event` label of
/// `opencti_connectors_events_total`. One name each, so a typo cannot start a new series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    EnrichmentSucceeded,
    EnrichmentFailed,
    /// A listen message that could not be parsed.
    MessageMalformed,
    /// The connector panicked on a message.
    Panic,
    /// An entity above the connector's max TLP.
    TlpRefused,
    /// Bundles sent to OpenCTI.
    BundlesSent,
    RunSucceeded,
    RunFailed,
    /// A run held back while the push queue was over its threshold.
    RunBuffered,
    /// The supervisor restarted the connector.
    Restart,
}

impl Event {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Event::EnrichmentSucceeded => "enrichments_succeeded",
            Event::EnrichmentFailed => "enrichments_failed",
            Event::MessageMalformed => "messages_malformed",
            Event::Panic => "panics",
            Event::TlpRefused => "tlp_refused",
            Event::BundlesSent => "bundles_sent",
            Event::RunSucceeded => "runs_succeeded",
            Event::RunFailed => "runs_failed",
            Event::RunBuffered => "runs_buffered",
            Event::Restart => "restarts",
        }
    }
}

fn connector_label(connector: &str) -> Labels {
    vec![("connector".into(), connector.into())]
}

/// Upstream calls and answers, process-wide: the gates and caches are built with the
/// configuration, before any [`Metrics`], and every [`Metrics`] exposes these.
pub struct Upstream {
    calls: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    in_flight: Family<Labels, Gauge>,
    waits: Family<Labels, Counter>,
    wait_seconds: Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>,
    cache: Family<Labels, Counter>,
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

    fn register(&self, registry: &mut Registry) {
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

/// The daemon's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    events: Family<Labels, Counter>,
    up: Family<Labels, Gauge>,
    last_import: Family<Labels, Gauge>,
    requests: Family<Labels, Gauge>,
}

/// One enrichment request being processed; dropping it ends it, panics included.
pub struct RequestGuard(Gauge);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("opencti_connectors");
        let events = Family::<Labels, Counter>::default();
        let up = Family::<Labels, Gauge>::default();
        let last_import = Family::<Labels, Gauge>::default();
        let requests = Family::<Labels, Gauge>::default();
        registry.register(
            "events",
            "Connector events (enrichments, bundles, refusals, runs)",
            events.clone(),
        );
        registry.register(
            "up",
            "1 while the connector is registered and serving",
            up.clone(),
        );
        registry.register(
            "last_import_success_timestamp_seconds",
            "Unix time of the connector's last successful import run",
            last_import.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Enrichment requests being processed",
            requests.clone(),
        );
        UPSTREAM.register(&mut registry);
        Metrics {
            registry: Mutex::new(registry),
            events,
            up,
            last_import,
            requests,
        }
    }
}

impl Metrics {
    fn labels(connector: &str, event: Event) -> Labels {
        vec![
            ("connector".into(), connector.into()),
            ("event".into(), event.name().into()),
        ]
    }

    /// Counts one event.
    pub fn count(&self, connector: &str, event: Event) {
        self.events
            .get_or_create(&Self::labels(connector, event))
            .inc();
    }

    /// Adds `n` to an event counter.
    pub fn add(&self, connector: &str, event: Event, n: u64) {
        self.events
            .get_or_create(&Self::labels(connector, event))
            .inc_by(n);
    }

    /// Marks a connector up or down.
    pub fn set_up(&self, connector: &str, up: bool) {
        self.up
            .get_or_create(&vec![("connector".into(), connector.into())])
            .set(i64::from(up));
    }

    /// An enrichment request of `connector` starts; in flight until the guard drops.
    pub fn request_started(&self, connector: &str) -> RequestGuard {
        let gauge = self
            .requests
            .get_or_create(&connector_label(connector))
            .clone();
        gauge.inc();
        RequestGuard(gauge)
    }

    /// An import run of `connector` succeeded now.
    pub fn import_succeeded(&self, connector: &str) {
        self.last_import
            .get_or_create(&connector_label(connector))
            .set(chrono::Utc::now().timestamp());
    }

    /// Whether every connector that reported is up.
    pub fn all_up(&self, connectors: &[&str]) -> bool {
        connectors.iter().all(|c| {
            self.up
                .get_or_create(&vec![("connector".into(), (*c).into())])
                .get()
                == 1
        })
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // The registry lock is never held across an await or a panic-prone call.
        let registry = self.registry.lock().expect("metrics registry lock");
        let _ = encode(&mut out, &registry);
        out
    }
}
