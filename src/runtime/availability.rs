//! Whether OpenCTI is available, for the whole process.
//!
//! A call that fails in a way that may mean the platform is down (a refused connection, a
//! timeout, a 5xx or 429 from the platform or the ingress before it) is not taken as a
//! failure of the message at once: [`Availability::answers`] asks the platform's `about`
//! first. When `about` answers too, the platform refused this one request, which counts
//! against the message's retry budget. When it does not, the platform is down: every
//! connector stops consuming, every message in flight is given back, and a single probe
//! loop asks `about` again with capped backoff until it answers.
//!
//! Every `about` that answers re-reads the platform's version (the client records it), so a
//! platform upgraded from 6.x to 7.x during an outage is spoken to in 7.x once it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retry::Backoff;
use crate::metrics::Metrics;
use crate::opencti::{OpenctiClient, OpenctiError};

/// Probes while the platform is down: 1 s, 2 s, ... up to 30 s between them.
pub const PROBE_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
/// The longest one probe may take (shorter when the client's own timeout is).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// A probe's answer is reused by callers that fail within this long of it.
const PROBE_FRESH: Duration = Duration::from_secs(1);

/// An outage: since when, and the failure that revealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub since: chrono::DateTime<chrono::Utc>,
    pub reason: String,
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unavailable since {} ({})",
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.reason
        )
    }
}

/// OpenCTI's availability, shared by every connector of the process.
pub struct Availability {
    /// `None` while the platform is available.
    state: watch::Sender<Option<Outage>>,
    /// The last probe: when, and whether `about` answered.
    last_probe: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// A probe loop is waiting for the platform.
    recovering: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Availability {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.set_platform_unavailable(None);
        Arc::new(Availability {
            state: watch::Sender::new(None),
            last_probe: tokio::sync::Mutex::new(None),
            recovering: AtomicBool::new(false),
            metrics,
        })
    }

    /// Whether the platform is known to be down.
    pub fn is_down(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// The current outage, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.state.borrow().clone()
    }

    /// After `error` from a call to `client`'s platform: whether the platform still answers
    /// (`about`). Callers that fail at the same time share one probe. When it does not
    /// answer, the platform is marked down and a probe loop waits for it.
    pub async fn answers(self: &Arc<Self>, client: &OpenctiClient, error: &OpenctiError) -> bool {
        if self.is_down() {
            return false;
        }
        let answers = {
            let mut last = self.last_probe.lock().await;
            match *last {
                Some((at, answered)) if at.elapsed() < PROBE_FRESH => answered,
                _ => {
                    let answered = probe(client).await;
                    *last = Some((Instant::now(), answered));
                    answered
                }
            }
        };
        if !answers {
            self.mark_down(client, error.to_string());
        }
        answers
    }

    /// Marks the platform down (once) and starts the probe loop that waits for it.
    fn mark_down(self: &Arc<Self>, client: &OpenctiClient, reason: String) {
        let outage = Outage {
            since: chrono::Utc::now(),
            reason,
        };
        let changed = self.state.send_if_modified(|state| {
            if state.is_some() {
                return false;
            }
            *state = Some(outage.clone());
            true
        });
        if !changed {
            return;
        }
        tracing::error!(error = %outage.reason, "OpenCTI is unavailable (its `about` does not answer either); every connector pauses and gives its messages back until it answers.");
        self.metrics
            .set_platform_unavailable(Some(outage.to_string()));
        if !self.recovering.swap(true, Ordering::SeqCst) {
            let (this, client) = (self.clone(), client.clone());
            tokio::spawn(async move { this.recover(client).await });
        }
    }

    /// Probes with capped backoff until the platform answers, then marks it available. The
    /// probe that answers has re-read the platform's version: the dialect follows it.
    async fn recover(&self, client: OpenctiClient) {
        let mut backoff = PROBE_BACKOFF;
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            if probe(&client).await {
                break;
            }
        }
        *self.last_probe.lock().await = Some((Instant::now(), true));
        let since = self.outage().map(|o| o.since);
        self.recovering.store(false, Ordering::SeqCst);
        self.state.send_replace(None);
        self.metrics.set_platform_unavailable(None);
        let seconds = since.map_or(0, |s| (chrono::Utc::now() - s).num_seconds());
        let version: String = client
            .platform_version()
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect();
        tracing::info!(
            seconds,
            %version,
            dialect = client.dialect().label(),
            "OpenCTI answers again; the connectors resume consuming."
        );
    }

    /// Resolves once the platform is down (at once when it is).
    pub async fn went_down(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Waits until the platform is available; false when `stop` fired first.
    pub async fn wait_up(&self, stop: &CancellationToken) -> bool {
        let mut rx = self.state.subscribe();
        tokio::select! {
            r = rx.wait_for(Option::is_none) => r.is_ok(),
            _ = stop.cancelled() => false,
        }
    }
}

/// One `about`, bounded.
async fn probe(client: &OpenctiClient) -> bool {
    let bound = PROBE_TIMEOUT.min(client.timeout());
    matches!(
        tokio::time::timeout(bound, client.health_check()).await,
        Ok(Ok(_))
    )
}
