//! One import run: its work created, the importer run with a context that sends under the
//! work, the run retried within its budget, its end reported (done, failed, interrupted or
//! given back to be redone).

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use tracing::Instrument;

use super::schedule::ping_state;
use crate::connectors::{ConnectorError, ImportConnector, ImportContext};
use crate::metrics::Event;
use crate::opencti::prepared::Prepared;
use crate::runtime::delivery::{Budget, GiveBack, Stop};
use crate::runtime::send::{SendTarget, Sender};
use crate::runtime::{ConnectorRun, Shutdown};
use tokio_util::sync::CancellationToken;

struct RunContext<'a> {
    run: &'a ConnectorRun,
    sender: &'a Sender,
    budget: &'a Budget<'a>,
    work_id: String,
    state: Option<Value>,
    new_state: Option<Value>,
    /// A send could not go on for a reason that is not the run's (OpenCTI down, the
    /// shutdown deadline, RabbitMQ not taking the bundles).
    given_back: Option<GiveBack>,
}

/// The work message of a run cut short by the shutdown deadline.
pub const INTERRUPTED: &str = "interrupted by shutdown";
/// The work message of a run cut short because this replica lost the import lock.
pub const LOCK_LOST: &str =
    "interrupted: this replica lost the import lock; the replica that holds it now runs again";
/// The work message of a run that made no progress for too long under the import lock.
pub const STALLED: &str = "interrupted: the run made no progress for too long; this replica gave the import lock up and the next holder runs again";
/// The work message of a run cut short by an OpenCTI outage.
pub const PLATFORM_DOWN: &str =
    "interrupted: OpenCTI was unavailable; the run is redone now that it answers";
/// How long closing an interrupted run's work may take (the platform may be what hangs).
const INTERRUPTED_REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How a run ended.
enum RunEnd {
    Done {
        message: String,
        state: Option<Value>,
    },
    Failed(ConnectorError),
    GivenBack(GiveBack),
}

/// What the scheduler does after a run.
pub(super) enum Ran {
    /// Done or failed: the next run is a period later.
    Done,
    /// Stopped by the shutdown or the loss of the lock.
    Interrupted,
    /// To be redone as soon as the cause clears.
    Redo(GiveBack),
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
        let client = &self.run.platform.client;
        let target = self.target();
        let result = self.sender.send(client, objects, target, self.budget).await;
        self.sent(result, records)
    }

    async fn send_prepared(&mut self, objects: Vec<Prepared>) -> Result<usize, ConnectorError> {
        let records = objects.len();
        let client = &self.run.platform.client;
        let target = self.target();
        let result = self
            .sender
            .send_prepared(client, objects, target, self.budget)
            .await;
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
        result: Result<usize, Stop>,
        records: usize,
    ) -> Result<usize, ConnectorError> {
        match result {
            Ok(n) => {
                self.run.metrics.sent(self.run.settings.key, n, records);
                self.run.progress.touch();
                Ok(n)
            }
            Err(Stop::GiveBack(why)) => {
                let message = why.to_string();
                self.given_back = Some(why);
                Err(ConnectorError::Rejected(message))
            }
            Err(Stop::Failed(message)) => Err(ConnectorError::Rejected(message)),
        }
    }
}

/// One run: its work, the run itself, its outcome reported. Holds the process's isolation
/// gate shared for its duration, so a message suspected of crashing the process runs alone.
pub(super) async fn run_once(
    run: &ConnectorRun,
    importer: &dyn ImportConnector,
    sender: &Sender,
    shutdown: &Shutdown,
) -> Ran {
    let connector = run.settings.key;
    let client = &run.platform.client;
    let _shared = tokio::select! {
        guard = run.platform.isolation.read() => guard,
        _ = shutdown.abort.cancelled() => return Ran::Interrupted,
    };
    let friendly = importer.work_name().unwrap_or_else(|| {
        format!(
            "{} run @ {}",
            run.settings.name,
            Utc::now().format("%Y-%m-%d %H:%M:%S")
        )
    });
    let connector_id = run.settings.id.to_string();
    let budget = Budget::new(&run.platform, &shutdown.abort);
    let work_id = match budget
        // A run sends several bundles: on 7.x its work is multi-part, closed by its
        // `toProcessed` only.
        .opencti("workAdd", || {
            client.work_add(&connector_id, &friendly, true)
        })
        .await
    {
        Ok(id) => id,
        Err(Stop::GiveBack(GiveBack::PlatformDown)) => {
            return Ran::Redo(GiveBack::PlatformDown);
        }
        Err(Stop::GiveBack(_)) => return Ran::Interrupted,
        Err(Stop::Failed(error)) => {
            tracing::error!(connector, %error, "OpenCTI refused to create the run's work; skipping this run.");
            return Ran::Done;
        }
    };
    let span = tracing::info_span!("import", connector, work_id = %work_id);
    run.progress.touch();
    // What the run reads and sends is charged to the memory budget (the feed for the whole
    // run, each chunk while it is sent).
    let ledger = budget.ledger();
    let ran = crate::memory::LEDGER
        .scope(
            ledger,
            finish_run(run, importer, sender, shutdown, &budget, work_id).instrument(span),
        )
        .await;
    run.progress.set(None);
    ran
}

/// Runs the importer under the retry policy until it succeeds, fails for good or cannot go
/// on; its upstream retries stop when the run's budget is spent.
async fn attempt_runs(
    run: &ConnectorRun,
    importer: &dyn ImportConnector,
    sender: &Sender,
    budget: &Budget<'_>,
    work_id: &str,
) -> RunEnd {
    let connector = run.settings.key;
    let state = run.state.get().await;
    let mut retry = run.platform.retry.start();
    loop {
        let mut ctx = RunContext {
            run,
            sender,
            budget,
            work_id: work_id.to_string(),
            state: state.clone(),
            new_state: None,
            given_back: None,
        };
        let result = tokio::select! {
            r = importer.run(&mut ctx) => r,
            _ = budget.abort().cancelled() => return RunEnd::GivenBack(budget.why_given_back()),
        };
        if let Some(why) = ctx.given_back {
            return RunEnd::GivenBack(why);
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
            Some(delay) if budget.allows(delay) => {
                tracing::warn!(connector, attempt = retry.attempt - 1, %error, "Import run failed; running it again.");
                if let Err(Stop::GiveBack(why)) = budget.sleep(delay).await {
                    return RunEnd::GivenBack(why);
                }
            }
            _ => return RunEnd::Failed(error),
        }
    }
}

async fn finish_run(
    run: &ConnectorRun,
    importer: &dyn ImportConnector,
    sender: &Sender,
    shutdown: &Shutdown,
    budget: &Budget<'_>,
    work_id: String,
) -> Ran {
    let connector = run.settings.key;
    tracing::info!(connector, "Import run started.");
    run.metrics.run_started(connector);
    let (message, in_error) = match attempt_runs(run, importer, sender, budget, &work_id).await {
        RunEnd::Done { message, state } => {
            if let Some(state) = state {
                run.state.set(Some(state)).await;
                // Persist now rather than at the next ping.
                ping_state(run, shutdown).await;
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
        RunEnd::GivenBack(why) => {
            run.metrics.count(connector, Event::RunFailed);
            return interrupted(run, shutdown, &work_id, why).await;
        }
    };
    run.metrics
        .set_state(connector, crate::metrics::State::Idle);
    close_work(run, shutdown, budget, &work_id, &message, in_error).await;
    Ran::Done
}

/// Closes a run's work with `message`, under a fresh budget; when OpenCTI is down, waits for
/// it (or the shutdown) and tries again.
async fn close_work(
    run: &ConnectorRun,
    shutdown: &Shutdown,
    budget: &Budget<'_>,
    work_id: &str,
    message: &str,
    in_error: bool,
) {
    let connector = run.settings.key;
    let client = &run.platform.client;
    loop {
        let closed = budget
            .renewed()
            .opencti("workToProcessed", || {
                client.work_to_processed(work_id, message, in_error)
            })
            .await;
        match closed {
            Ok(()) => return,
            Err(Stop::GiveBack(GiveBack::PlatformDown)) => {
                if !run.platform.availability.wait_up(&shutdown.stop).await {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(connector, %error, "workToProcessed failed; the work stays open.");
                return;
            }
        }
    }
}

/// A run that could not go on: its work says why; the previous state is kept.
async fn interrupted(run: &ConnectorRun, shutdown: &Shutdown, work_id: &str, why: GiveBack) -> Ran {
    let connector = run.settings.key;
    let client = &run.platform.client;
    let (message, ran) = match &why {
        GiveBack::PlatformDown => (PLATFORM_DOWN.to_string(), Ran::Redo(why.clone())),
        GiveBack::Broker(error) => (
            format!("interrupted: {error}; the run is redone later"),
            Ran::Redo(why.clone()),
        ),
        GiveBack::MemoryBusy => (
            format!("interrupted: {why}; the run is redone later"),
            Ran::Redo(why.clone()),
        ),
        GiveBack::Aborted | GiveBack::HeldTooLong => {
            let gone = |t: &Option<CancellationToken>| {
                t.as_ref().is_some_and(CancellationToken::is_cancelled)
            };
            let message = if gone(&shutdown.lock_lost) {
                LOCK_LOST
            } else if gone(&shutdown.stalled) {
                STALLED
            } else {
                INTERRUPTED
            };
            (message.to_string(), Ran::Interrupted)
        }
    };
    tracing::warn!(
        connector,
        reason = %message,
        "Import run interrupted; the previous state is kept."
    );
    if let Ran::Redo(GiveBack::PlatformDown) = ran {
        // Closed once the platform answers again, then the run is redone.
        if !run.platform.availability.wait_up(&shutdown.stop).await {
            return Ran::Interrupted;
        }
    }
    // The abort may have fired, so no retry: one bounded attempt to close the work.
    let closing = client.work_to_processed(work_id, &message, true);
    match tokio::time::timeout(INTERRUPTED_REPORT_TIMEOUT, closing).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(connector, %error, "Could not close the interrupted run's work.")
        }
        Err(_) => {
            tracing::warn!(connector, "Closing the interrupted run's work timed out.")
        }
    }
    ran
}
