//! The scheduler: run at start (or when a takeover says), then every `duration_period` after
//! the end of the previous run; held back while the push queue is over its threshold; a run
//! given back is redone as soon as its cause clears.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::once::{Ran, run_once};
use crate::connectors::ImportConnector;
use crate::metrics::Event;
use crate::runtime::delivery::GiveBack;
use crate::runtime::retry::Backoff;
use crate::runtime::send::Sender;
use crate::runtime::{ConnectorRun, Shutdown};

/// An importer's schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The delay between the end of a run and the start of the next.
    pub period: std::time::Duration,
    /// Push-queue backlog (MB) at which scheduled runs are held back.
    pub queue_threshold: f64,
}

/// Whether a run is in progress and when it last moved (its work created, a chunk
/// accepted): the import lock's holder gives the lock up when its run stalls.
#[derive(Debug, Default)]
pub struct Progress {
    /// The last progress of the run in progress; `None` between runs.
    last: Mutex<Option<Instant>>,
}

impl Progress {
    pub(super) fn set(&self, value: Option<Instant>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }

    /// The run moved now.
    pub fn touch(&self) {
        self.set(Some(Instant::now()));
    }

    /// For how long the run in progress has not moved, when that is `limit` or more.
    pub fn stalled_for(&self, limit: Duration) -> Option<Duration> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.map(|t| t.elapsed()).filter(|idle| *idle >= limit)
    }
}

/// Redoing a run that RabbitMQ did not take: 30 s, 1 min, ... up to 10 min between tries.
const BROKER_REDO: Backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(600));

/// Runs `importer` on its schedule until `shutdown.stop`: at once, or from `start_at` on
/// when a replica takes the importer over (then the first run is a scheduled one).
pub async fn run(
    run: Arc<ConnectorRun>,
    importer: Arc<dyn ImportConnector>,
    sender: Arc<Sender>,
    schedule: Schedule,
    shutdown: Shutdown,
    start_at: Option<chrono::DateTime<Utc>>,
) {
    let connector = run.settings.key;
    let Schedule {
        period,
        queue_threshold,
    } = schedule;
    let mut first = start_at.is_none();
    if let Some(due) = start_at {
        // Never more than one period away, whatever was stored.
        let wait = (due - Utc::now()).to_std().unwrap_or_default().min(period);
        if !wait.is_zero() {
            tracing::info!(connector, next_run = %due.to_rfc3339(), "Next run scheduled.");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.stop.cancelled() => return,
            }
        }
    }
    let mut redo = BROKER_REDO;
    loop {
        if shutdown.stop.is_cancelled() {
            break;
        }
        // As pycti: the first run always runs; later ones wait while the push queue is over
        // the threshold (the platform's workers are behind).
        let held_back = !first && buffering(&run, queue_threshold).await;
        let last = if held_back {
            None
        } else {
            match run_once(&run, importer.as_ref(), &sender, &shutdown).await {
                Ran::Done => {
                    redo = BROKER_REDO;
                    Some(Utc::now())
                }
                Ran::Interrupted => continue,
                // Redone once OpenCTI answers, not a period later.
                Ran::Redo(GiveBack::PlatformDown) => {
                    if !run.platform.availability.wait_up(&shutdown.stop).await {
                        break;
                    }
                    continue;
                }
                Ran::Redo(_) => {
                    if !redo.wait(&shutdown.stop).await {
                        break;
                    }
                    continue;
                }
            }
        };
        if first {
            // Fills the queue figures the platform shows from the first ping on.
            buffering(&run, queue_threshold).await;
            first = false;
        }
        let now = Utc::now();
        // The period is at most a year (checked at start-up); saturate all the same.
        let next = chrono::Duration::from_std(period)
            .ok()
            .and_then(|p| now.checked_add_signed(p))
            .unwrap_or(now);
        let stamp = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        run.state
            .set_schedule(last.map(stamp), Some(stamp(next)))
            .await;
        if held_back || run.platform.import_lock {
            // Say so now rather than at the next ping: a replica taking the importer over
            // reads the schedule the pings stored.
            ping_state(&run, &shutdown).await;
        }
        tracing::info!(connector, next_run = %next.to_rfc3339(), "Next run scheduled.");
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.stop.cancelled() => break,
        }
    }
}

/// Pings the state now, bounded; never once this replica lost or gave up the import lock
/// (the state is the new holder's then).
pub(super) async fn ping_state(run: &ConnectorRun, shutdown: &Shutdown) {
    if shutdown.lock_gone() {
        return;
    }
    let (connector, id) = (run.settings.key, run.settings.id.to_string());
    let ping = run
        .state
        .ping(&run.platform.client, &id, connector, &run.metrics);
    let lost = async {
        match &shutdown.lock_lost {
            Some(lost) => lost.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = lost => {}
        r = tokio::time::timeout(Duration::from_secs(10), ping) => {
            if let Ok(Err(error)) = r {
                tracing::warn!(connector, %error, "Could not store the state yet; the next ping will.");
            }
        }
    }
}

/// Whether the connector's push queue is at or over `threshold` MB; records the figures
/// for the pings. When the platform cannot say, the run goes ahead (as pycti's).
async fn buffering(run: &ConnectorRun, threshold: f64) -> bool {
    let connector = run.settings.key;
    let id = run.settings.id.to_string();
    let read = run.platform.client.queue_size(&id);
    let bytes = match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => return false,
        Ok(Err(error)) => {
            tracing::warn!(connector, %error, "Could not read the push queue's size; running anyway.");
            return false;
        }
        Err(_) => return false,
    };
    // pycti's unit: decimal megabytes.
    let megabytes = bytes / 1_000_000.0;
    let held_back = megabytes >= threshold;
    run.state
        .set_buffering(megabytes, threshold, held_back)
        .await;
    if held_back {
        run.metrics.count(connector, Event::RunBuffered);
        tracing::info!(
            connector,
            queue_mb = megabytes,
            threshold,
            "Connector will not run until the queue messages size is reduced under queue threshold."
        );
    }
    held_back
}
