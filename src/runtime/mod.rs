//! The connector runtime: one supervised task per connector, each registering, pinging and
//! running its loop (enrichment consumer or import scheduler) until shutdown.

pub mod availability;
pub mod delivery;
pub mod enrichment;
pub mod import;
mod presence;
pub mod retry;
pub mod send;
pub mod state;

/// The import lock, at its old path.
pub use import::lock;
pub use presence::register_input;
use presence::{final_ping, pinging, register};

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::amqp::BrokerAddress;
use crate::config::{ConnectorSettings, Mode, MqConfig};
use crate::connectors::Hosted;
use crate::metrics::{Event, Metrics};
use crate::opencti::OpenctiClient;
use crate::opencti::client::{QueueConfig, RegisterInput, Registration};
use crate::opencti::dialect::{Dialect, Register7x};
use retry::{RESTART_BACKOFF, RetryPolicy};
use state::StateCell;

/// Two-stage shutdown: `stop` ends intake; `abort` (at the drain deadline) ends in-flight work,
/// which is then requeued.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
    /// For an importer under the import lock: fired (with `stop` and `abort`) when this
    /// replica lost the lock, so a run cut short says why.
    pub lock_lost: Option<CancellationToken>,
    /// For an importer under the import lock: fired (with `stop` and `abort`) when its run
    /// made no progress for too long and this replica gives the lock up.
    pub stalled: Option<CancellationToken>,
}

impl Shutdown {
    /// Whether the lock was lost or given up: the state is no longer this replica's to ping.
    pub fn lock_gone(&self) -> bool {
        [&self.lock_lost, &self.stalled]
            .into_iter()
            .flatten()
            .any(CancellationToken::is_cancelled)
    }
}

/// What all connectors share.
pub struct Platform {
    pub client: OpenctiClient,
    pub mq: MqConfig,
    /// What amqps trusts (`tls.*` and the system store).
    pub egress: Option<crate::upstream::http::Egress>,
    pub ping_interval: Duration,
    pub retry: RetryPolicy,
    /// The retry budget of one message or run (`daemon.max_retry_duration`).
    pub max_retry: Duration,
    /// How long a message may stay unacked before it is given back: under the broker's
    /// `consumer_timeout`, past which it would close the channel
    /// ([`crate::config::hold_limit`]).
    pub hold_limit: Duration,
    /// How long a publish may go unconfirmed before its message is given back.
    pub publish_timeout: Duration,
    /// How often a work is pinged while its message is processed (pycti: 5 minutes).
    pub work_ping_interval: Duration,
    pub metrics: Arc<Metrics>,
    /// Whether importers take the import lock (one scheduler across replicas).
    pub import_lock: bool,
    /// Whether OpenCTI answers; every connector pauses while it does not.
    pub availability: Arc<availability::Availability>,
    /// Messages suspected of crashing the process run alone: they hold this exclusively,
    /// every other message and import run holds it shared.
    pub isolation: Arc<tokio::sync::RwLock<()>>,
    /// The memory budget every request's large buffers are charged to
    /// (`daemon.memory_budget`).
    pub memory: Arc<crate::memory::MemoryBudget>,
}

/// One registered connector.
pub struct ConnectorRun {
    pub settings: ConnectorSettings,
    pub platform: Arc<Platform>,
    pub registration: Registration,
    pub queues: QueueConfig,
    pub broker: BrokerAddress,
    pub state: Arc<StateCell>,
    pub metrics: Arc<Metrics>,
    /// An importer's run: whether one is in progress and when it last moved.
    pub progress: Arc<import::Progress>,
}

/// Runs every connector until `shutdown.stop`, then drains for at most `drain` before
/// firing `shutdown.abort`. Returns when every connector has stopped.
pub async fn run(
    platform: Arc<Platform>,
    connectors: Vec<(ConnectorSettings, Hosted)>,
    shutdown: Shutdown,
    drain: Duration,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (settings, hosted) in connectors {
        tasks.spawn(supervise(
            platform.clone(),
            settings,
            hosted,
            shutdown.clone(),
        ));
    }
    let deadline = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.stop.cancelled().await;
            tokio::time::sleep(drain).await;
            if !shutdown.abort.is_cancelled() {
                tracing::warn!(
                    seconds = drain.as_secs_f64(),
                    "Drain deadline reached; requeueing in-flight messages."
                );
            }
            shutdown.abort.cancel();
        })
    };
    // Every wait below the connectors is raced against `abort`; this is the backstop for
    // anything that still does not return: `HARD_STOP` after the drain deadline, the
    // connectors are dropped where they stand (their messages are redelivered).
    let hard_stop = async {
        shutdown.abort.cancelled().await;
        tokio::time::sleep(HARD_STOP).await;
    };
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = hard_stop => {
            tracing::error!(seconds = HARD_STOP.as_secs(), "Connectors still running after the drain deadline; stopping them.");
            tasks.abort_all();
        }
    }
    deadline.abort();
}

/// How often a work is pinged while its message is processed.
pub const WORK_PING_INTERVAL: Duration = Duration::from_secs(300);
/// How long after the drain deadline connectors may take before they are dropped.
pub const HARD_STOP: Duration = Duration::from_secs(5);
/// A connector that ran this long before failing was healthy: its restart backoff restarts.
pub const HEALTHY_PERIOD: Duration = Duration::from_secs(60);

/// The delay before restarting a connector that ran for `ran_for`.
fn restart_delay(backoff: &mut retry::Backoff, ran_for: Duration) -> Duration {
    if ran_for >= HEALTHY_PERIOD {
        *backoff = RESTART_BACKOFF;
    }
    backoff.next_delay()
}

/// Keeps one connector running: restarts it with capped backoff when it fails or panics,
/// so one connector never takes the others down.
async fn supervise(
    platform: Arc<Platform>,
    settings: ConnectorSettings,
    hosted: Hosted,
    shutdown: Shutdown,
) {
    let connector = settings.key;
    let kinds_agree = matches!(
        (&hosted, settings.mode),
        (Hosted::Enrichment(_), Mode::Enrichment { .. }) | (Hosted::Import(_), Mode::Import { .. })
    );
    if !kinds_agree {
        tracing::error!(
            connector,
            "The connector's kind does not match its settings; not starting it."
        );
        platform.metrics.set_up(connector, false);
        return;
    }
    let mut backoff = RESTART_BACKOFF;
    loop {
        let started = std::time::Instant::now();
        let task = tokio::spawn(run_connector(
            platform.clone(),
            settings.clone(),
            hosted.clone(),
            shutdown.clone(),
        ));
        match task.await {
            Ok(()) if shutdown.stop.is_cancelled() => break,
            Ok(()) => tracing::error!(connector, "Connector loop ended unexpectedly; restarting."),
            Err(e) => {
                tracing::error!(connector, error = %e, "Connector task panicked; restarting.")
            }
        }
        platform.metrics.set_up(connector, false);
        platform.metrics.count(connector, Event::Restart);
        let delay = restart_delay(&mut backoff, started.elapsed());
        if !retry::sleep(delay, &shutdown.stop).await {
            break;
        }
    }
    platform.metrics.set_up(connector, false);
    platform
        .metrics
        .set_state(connector, crate::metrics::State::Stopped);
    tracing::info!(connector, "Connector stopped.");
}

/// Registers (retrying until it works or shutdown), then pings and runs the loop.
async fn run_connector(
    platform: Arc<Platform>,
    settings: ConnectorSettings,
    hosted: Hosted,
    shutdown: Shutdown,
) {
    let connector = settings.key;
    let Some(registration) = register(&platform, &settings, &shutdown).await else {
        return;
    };
    tracing::info!(connector, id = %registration.id, name = %settings.name, kind = settings.connector_type(), "Connector registered.");
    let state = StateCell::new(state::parse_state(registration.connector_state.as_deref()));
    let broker = BrokerAddress::resolve(&registration.config.connection, &platform.mq)
        .trusting(platform.egress.as_ref());
    let run = Arc::new(ConnectorRun {
        queues: registration.config.clone(),
        broker,
        state,
        metrics: platform.metrics.clone(),
        progress: Arc::default(),
        settings,
        platform: platform.clone(),
        registration,
    });
    let sender = Arc::new(send::Sender::new(
        run.settings.id.to_string(),
        run.settings.queue_protocol,
        run.queues.clone(),
        run.broker.clone(),
        run.registration.connector_user_id.clone(),
        platform.publish_timeout,
    ));
    match (hosted, run.settings.mode) {
        (Hosted::Enrichment(c), Mode::Enrichment { concurrency, .. }) => {
            let ctx = Arc::new(enrichment::EnrichmentContext {
                run: run.clone(),
                connector: c,
                sender,
            });
            pinging(
                &run,
                None,
                enrichment::run(ctx, concurrency, shutdown.clone()),
            )
            .await;
            final_ping(&run).await;
        }
        (
            Hosted::Import(c),
            Mode::Import {
                period,
                queue_threshold,
            },
        ) => {
            let schedule = import::Schedule {
                period,
                queue_threshold,
            };
            // An importer is up while its scheduler runs or stands by.
            platform.metrics.set_up(connector, true);
            if platform.import_lock {
                import::import_under_lock(&run, c, sender, schedule, &shutdown).await;
            } else {
                let scheduler =
                    import::run(run.clone(), c, sender, schedule, shutdown.clone(), None);
                pinging(&run, None, scheduler).await;
                final_ping(&run).await;
            }
            platform.metrics.set_up(connector, false);
        }
        // `supervise` refuses a connector whose kind and settings disagree.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_backoff_restarts_after_a_healthy_period() {
        let mut backoff = RESTART_BACKOFF;
        let quick = Duration::from_millis(10);
        let delays: Vec<u64> = (0..4)
            .map(|_| restart_delay(&mut backoff, quick).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8], "crash loops back off");
        assert_eq!(restart_delay(&mut backoff, HEALTHY_PERIOD).as_secs(), 1);
        assert_eq!(restart_delay(&mut backoff, quick).as_secs(), 2);
    }
}
