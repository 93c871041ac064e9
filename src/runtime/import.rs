//! The scheduled importer: run at start, then every `duration_period` after the end of the
//! previous run (fixed delay, as pycti's `schedule_iso`). Each run: workAdd → send chunks →
//! state → ping → toProcessed. A run that fails transiently is run again under the retry
//! policy (ids are deterministic, so re-sent objects merge); then its work fails. A run cut
//! short by the shutdown deadline fails its work as interrupted and keeps the previous state.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::{Gave, Patience};
use super::send::{SendTarget, Sender};
use super::{ConnectorRun, Shutdown};
use crate::connectors::{ConnectorError, ImportConnector, ImportContext};
use crate::metrics::Event;
use crate::opencti::prepared::Prepared;

/// An importer's schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The delay between the end of a run and the start of the next.
    pub period: std::time::Duration,
    /// Push-queue backlog (MB) at which scheduled runs are held back.
    pub queue_threshold: f64,
}

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
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            tracing::info!(connector, next_run = %due.to_rfc3339(), "Next run scheduled.");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.stop.cancelled() => return,
            }
        }
    }
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
            run_once(&run, importer.as_ref(), &sender, &shutdown).await;
            Some(Utc::now())
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
            let id = run.settings.id.to_string();
            let client = &run.platform.client;
            let ping = run.state.ping(client, &id, connector, &run.metrics);
            tokio::select! {
                _ = tokio::time::timeout(std::time::Duration::from_secs(10), ping) => {}
                _ = shutdown.stop.cancelled() => break,
            }
        }
        tracing::info!(connector, next_run = %next.to_rfc3339(), "Next run scheduled.");
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.stop.cancelled() => break,
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

struct RunContext<'a> {
    run: &'a ConnectorRun,
    sender: &'a Sender,
    work_id: String,
    state: Option<Value>,
    new_state: Option<Value>,
    /// A send was cut short by the shutdown deadline.
    aborted: bool,
    shutdown: &'a Shutdown,
}

/// The work message of a run cut short by the shutdown deadline.
pub const INTERRUPTED: &str = "interrupted by shutdown";
/// The work message of a run cut short because this replica lost the import lock.
pub const LOCK_LOST: &str =
    "interrupted: this replica lost the import lock; the replica that holds it now runs again";
/// How long closing an interrupted run's work may take (the platform may be what hangs).
const INTERRUPTED_REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How a run ended.
enum RunEnd {
    Done {
        message: String,
        state: Option<Value>,
    },
    Failed(ConnectorError),
    Interrupted,
}

#[async_trait]
impl ImportContext for RunContext<'_> {
    fn state(&self) -> Option<Value> {
        self.state.clone()
    }

    fn set_state(&mut self, state: Value) {
        self.new_state = Some(state);
    }

    async fn send(&mut self, objects: Vec<Value>) -> Result<usize, ConnectorError> {
        let records = objects.len();
        let sender = self.sender;
        let client = &self.run.platform.client;
        let (target, abort) = (self.target(), &self.shutdown.abort);
        let result = sender.send(client, objects, target, abort).await;
        self.sent(result, records)
    }

    async fn send_prepared(&mut self, objects: Vec<Prepared>) -> Result<usize, ConnectorError> {
        let records = objects.len();
        let sender = self.sender;
        let client = &self.run.platform.client;
        let (target, abort) = (self.target(), &self.shutdown.abort);
        let result = sender.send_prepared(client, objects, target, abort).await;
        self.sent(result, records)
    }
}

impl RunContext<'_> {
    /// A run's sends: under its work, inconsistent references cleaned (as pycti's imports).
    fn target(&self) -> SendTarget<'_> {
        SendTarget {
            work_id: Some(&self.work_id),
            draft_id: None,
            cleanup_inconsistent: true,
            applicant_id: None,
        }
    }

    /// Counts a send's result.
    fn sent(
        &mut self,
        result: Result<usize, Gave<super::send::SendError>>,
        records: usize,
    ) -> Result<usize, ConnectorError> {
        match result {
            Ok(n) => {
                self.run.metrics.sent(self.run.settings.key, n, records);
                Ok(n)
            }
            Err(Gave::Aborted) => {
                self.aborted = true;
                Err(ConnectorError::Rejected(INTERRUPTED.into()))
            }
            Err(Gave::Up(e)) => Err(ConnectorError::Rejected(e.to_string())),
        }
    }
}

async fn run_once(
    run: &ConnectorRun,
    importer: &dyn ImportConnector,
    sender: &Sender,
    shutdown: &Shutdown,
) {
    let connector = run.settings.key;
    let client = &run.platform.client;
    let friendly = importer.work_name().unwrap_or_else(|| {
        format!(
            "{} run @ {}",
            run.settings.name,
            Utc::now().format("%Y-%m-%d %H:%M:%S")
        )
    });
    let connector_id = run.settings.id.to_string();
    let patience = Patience {
        abort: &shutdown.abort,
        max: run.platform.max_retry,
    };
    let work_id = match patience
        .opencti("workAdd", || client.work_add(&connector_id, &friendly))
        .await
    {
        Ok(id) => id,
        Err(Gave::Aborted) => return,
        Err(Gave::Up(error)) => {
            tracing::error!(connector, %error, "OpenCTI refused to create the run's work; skipping this run.");
            return;
        }
    };
    let span = tracing::info_span!("import", connector, work_id = %work_id);
    finish_run(run, importer, sender, shutdown, work_id)
        .instrument(span)
        .await;
}

/// Runs the importer under the retry policy until it succeeds, fails for good or is
/// interrupted.
async fn attempt_runs(
    run: &ConnectorRun,
    importer: &dyn ImportConnector,
    sender: &Sender,
    shutdown: &Shutdown,
    work_id: &str,
) -> RunEnd {
    let connector = run.settings.key;
    let state = run.state.get().await;
    let mut retry = run.platform.retry.start();
    loop {
        let mut ctx = RunContext {
            run,
            sender,
            work_id: work_id.to_string(),
            state: state.clone(),
            new_state: None,
            aborted: false,
            shutdown,
        };
        let result = tokio::select! {
            r = importer.run(&mut ctx) => r,
            _ = shutdown.abort.cancelled() => return RunEnd::Interrupted,
        };
        if ctx.aborted {
            return RunEnd::Interrupted;
        }
        let error = match result {
            Ok(message) => {
                return RunEnd::Done {
                    message,
                    state: ctx.new_state,
                };
            }
            Err(error) => error,
        };
        match retry.after(&error) {
            Some(delay) => {
                tracing::warn!(connector, attempt = retry.attempt - 1, %error, "Import run failed; running it again.");
                if !super::retry::sleep(delay, &shutdown.abort).await {
                    return RunEnd::Interrupted;
                }
            }
            None => return RunEnd::Failed(error),
        }
    }
}

async fn finish_run(
    run: &ConnectorRun,
    importer: &dyn ImportConnector,
    sender: &Sender,
    shutdown: &Shutdown,
    work_id: String,
) {
    let connector = run.settings.key;
    let client = &run.platform.client;
    let connector_id = run.settings.id.to_string();
    tracing::info!(connector, "Import run started.");
    run.metrics.run_started(connector);
    let (message, in_error) = match attempt_runs(run, importer, sender, shutdown, &work_id).await {
        RunEnd::Done { message, state } => {
            if let Some(state) = state {
                run.state.set(Some(state)).await;
                // Persist now rather than at the next ping.
                if let Err(error) = run
                    .state
                    .ping(client, &connector_id, connector, &run.metrics)
                    .await
                {
                    tracing::warn!(connector, %error, "Could not store the new state yet; the next ping will.");
                }
            }
            run.metrics.count(connector, Event::RunSucceeded);
            run.metrics.import_succeeded(connector);
            tracing::info!(connector, message = %message, "Import run done.");
            (message, false)
        }
        RunEnd::Failed(error) => {
            run.metrics.count(connector, Event::RunFailed);
            if let ConnectorError::Misconfigured(_) = &error {
                tracing::error!(connector, %error, "Import run failed: fix the connector's configuration.");
            } else {
                tracing::warn!(connector, %error, "Import run failed.");
            }
            (error.to_string(), true)
        }
        RunEnd::Interrupted => {
            run.metrics.count(connector, Event::RunFailed);
            let lost = shutdown
                .lock_lost
                .as_ref()
                .is_some_and(CancellationToken::is_cancelled);
            let message = if lost { LOCK_LOST } else { INTERRUPTED };
            tracing::warn!(
                connector,
                reason = message,
                "Import run interrupted; the previous state is kept."
            );
            // The abort has fired, so no retry: one bounded attempt to close the work.
            let closing = client.work_to_processed(&work_id, message, true);
            match tokio::time::timeout(INTERRUPTED_REPORT_TIMEOUT, closing).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(connector, %error, "Could not close the interrupted run's work.")
                }
                Err(_) => {
                    tracing::warn!(connector, "Closing the interrupted run's work timed out.")
                }
            }
            return;
        }
    };
    run.metrics
        .set_state(connector, crate::metrics::State::Idle);
    let patience = Patience {
        abort: &shutdown.abort,
        max: run.platform.max_retry,
    };
    if let Err(Gave::Up(error)) = patience
        .opencti("workToProcessed", || {
            client.work_to_processed(&work_id, &message, in_error)
        })
        .await
    {
        tracing::warn!(connector, %error, "workToProcessed failed; the work stays open.");
    }
}
