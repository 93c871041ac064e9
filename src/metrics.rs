//! Prometheus metrics: one counter family of events per connector, plus an `up` gauge per
//! connector (1 while registered and serving).

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// The daemon's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    events: Family<Labels, Counter>,
    up: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("opencti_connectors");
        let events = Family::<Labels, Counter>::default();
        let up = Family::<Labels, Gauge>::default();
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
        Metrics {
            registry: Mutex::new(registry),
            events,
            up,
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
