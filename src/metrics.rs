//! Prometheus metrics: one counter family of events per connector, an `up` gauge per
//! connector (1 while registered and serving), the time of the last successful import, and
//! the upstream families ([`UPSTREAM`]) every connector's gate and cache count into.
//!
//! Where pycti 7's metric handler (`pycti/connector/opencti_metric_handler.py`) counts the
//! same thing, the family has its name, under the `opencti_connectors` namespace and with a
//! `connector` label: `bundles_sent_total`, `records_sent_total`, `runs_total`,
//! `ping_api_total`, `ping_api_errors_total`, `errors_total`, `client_errors_total` and the
//! `state` enum (`idle`, `running`, `stopped`).

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod pycti;
mod upstream;

use pycti::Pycti;
pub use upstream::{CallGuard, UPSTREAM, Upstream};

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
    RunSucceeded,
    RunFailed,
    /// A run held back while the push queue was over its threshold.
    RunBuffered,
    /// The supervisor restarted the connector.
    Restart,
    /// A message given back to its queue unprocessed (OpenCTI down, the drain deadline, held
    /// too long, RabbitMQ not taking a publish).
    GivenBack,
    /// A message that crashed the process twice, failed without a third attempt.
    Poison,
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
            Event::RunSucceeded => "runs_succeeded",
            Event::RunFailed => "runs_failed",
            Event::RunBuffered => "runs_buffered",
            Event::Restart => "restarts",
            Event::GivenBack => "messages_given_back",
            Event::Poison => "poison_messages",
        }
    }

    /// Whether pycti would count it in `errors_total`.
    fn is_error(self) -> bool {
        matches!(
            self,
            Event::EnrichmentFailed
                | Event::MessageMalformed
                | Event::Panic
                | Event::RunFailed
                | Event::Poison
        )
    }
}

/// pycti's `state` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Running,
    Stopped,
}

impl State {
    const ALL: [State; 3] = [State::Idle, State::Running, State::Stopped];

    fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Running => "running",
            State::Stopped => "stopped",
        }
    }
}

fn connector_label(connector: &str) -> Labels {
    vec![("connector".into(), connector.into())]
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    events: Family<Labels, Counter>,
    up: Family<Labels, Gauge>,
    last_import: Family<Labels, Gauge>,
    requests: Family<Labels, Gauge>,
    import_lock: Family<Labels, Gauge>,
    /// 1 while OpenCTI answers; with why it does not, when it does not.
    platform_available: Gauge,
    platform_outage: Mutex<Option<String>>,
    /// The memory budget, and what requests hold of it.
    memory_budget: Gauge,
    memory_held: Gauge,
    pycti: Arc<Pycti>,
}

/// One enrichment request being processed; dropping it ends it, panics included, and the
/// connector is `idle` again when it was the last one.
pub struct RequestGuard {
    in_flight: Gauge,
    pycti: Arc<Pycti>,
    connector: String,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.in_flight.dec() == 1 {
            self.pycti.set_state(&self.connector, State::Idle);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("opencti_connectors");
        let events = Family::<Labels, Counter>::default();
        let up = Family::<Labels, Gauge>::default();
        let last_import = Family::<Labels, Gauge>::default();
        let requests = Family::<Labels, Gauge>::default();
        let import_lock = Family::<Labels, Gauge>::default();
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
        registry.register(
            "import_lock_held",
            "1 while this replica holds the importer's lock and runs its imports, 0 on standby",
            import_lock.clone(),
        );
        let platform_available = Gauge::default();
        registry.register(
            "opencti_available",
            "1 while OpenCTI answers; 0 while it is down and every connector has paused",
            platform_available.clone(),
        );
        let (memory_budget, memory_held) = (Gauge::default(), Gauge::default());
        registry.register(
            "memory_budget_bytes",
            "The memory budget of every request's large buffers (daemon.memory_budget)",
            memory_budget.clone(),
        );
        registry.register(
            "memory_held_bytes",
            "What the requests in progress hold of the memory budget",
            memory_held.clone(),
        );
        let pycti = Arc::new(Pycti::default());
        pycti.register(&mut registry);
        UPSTREAM.register(&mut registry);
        Metrics {
            registry: Mutex::new(registry),
            events,
            up,
            last_import,
            requests,
            import_lock,
            platform_available,
            platform_outage: Mutex::new(None),
            memory_budget,
            memory_held,
            pycti,
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

    /// Counts one event (and one error in `errors_total` when it is one).
    pub fn count(&self, connector: &str, event: Event) {
        self.events
            .get_or_create(&Self::labels(connector, event))
            .inc();
        if event.is_error() {
            self.pycti
                .errors
                .get_or_create(&connector_label(connector))
                .inc();
        }
    }

    /// `bundles` bundles holding `records` objects were accepted by OpenCTI.
    pub fn sent(&self, connector: &str, bundles: usize, records: usize) {
        let labels = connector_label(connector);
        self.pycti
            .bundles_sent
            .get_or_create(&labels)
            .inc_by(bundles as u64);
        self.pycti
            .records_sent
            .get_or_create(&labels)
            .inc_by(records as u64);
    }

    /// One ping of the OpenCTI API, failed or not.
    pub fn ping(&self, connector: &str, ok: bool) {
        let labels = connector_label(connector);
        self.pycti.ping_api.get_or_create(&labels).inc();
        if !ok {
            self.pycti.ping_api_errors.get_or_create(&labels).inc();
        }
    }

    /// An import run starts: one more run, `running` until [`Metrics::set_state`].
    pub fn run_started(&self, connector: &str) {
        self.pycti
            .runs
            .get_or_create(&connector_label(connector))
            .inc();
        self.pycti.set_state(connector, State::Running);
    }

    /// Sets pycti's `state` of `connector`.
    pub fn set_state(&self, connector: &str, state: State) {
        self.pycti.set_state(connector, state);
    }

    /// Marks a connector up or down.
    pub fn set_up(&self, connector: &str, up: bool) {
        self.up
            .get_or_create(&vec![("connector".into(), connector.into())])
            .set(i64::from(up));
    }

    /// Whether this replica holds `connector`'s import lock.
    pub fn set_import_lock(&self, connector: &str, held: bool) {
        self.import_lock
            .get_or_create(&connector_label(connector))
            .set(i64::from(held));
    }

    /// Whether this replica holds `connector`'s import lock; `None` for a connector that
    /// takes no lock.
    pub fn import_lock(&self, connector: &str) -> Option<bool> {
        self.import_lock
            .get(&connector_label(connector))
            .map(|g| g.get() == 1)
    }

    /// The gauges of the memory budget: its size, and what requests hold of it.
    pub fn memory_gauges(&self) -> (Gauge, Gauge) {
        (self.memory_budget.clone(), self.memory_held.clone())
    }

    /// Records whether OpenCTI is available: `None` when it is, else what `/healthz` says.
    pub fn set_platform_unavailable(&self, outage: Option<String>) {
        self.platform_available.set(i64::from(outage.is_none()));
        *self
            .platform_outage
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = outage;
    }

    /// Why OpenCTI is unavailable, while it is.
    pub fn platform_unavailable(&self) -> Option<String> {
        self.platform_outage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An enrichment request of `connector` starts (one more run, `running`); in flight
    /// until the guard drops.
    pub fn request_started(&self, connector: &str) -> RequestGuard {
        let gauge = self
            .requests
            .get_or_create(&connector_label(connector))
            .clone();
        self.pycti
            .runs
            .get_or_create(&connector_label(connector))
            .inc();
        // `running` from the first request in flight to the last (the guard's drop).
        if gauge.inc() == 0 {
            self.pycti.set_state(connector, State::Running);
        }
        RequestGuard {
            in_flight: gauge,
            pycti: self.pycti.clone(),
            connector: connector.to_string(),
        }
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

#[cfg(test)]
mod tests;
