//! The scheduled importer: run at start, then every `duration_period` after the end of the
//! previous run (fixed delay, as pycti's `schedule_iso`). Each run: workAdd → send chunks →
//! state → ping → toProcessed.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use tracing::Instrument;

use super::retry::{Gave, until_done};
use super::send::{SendTarget, Sender};
use super::{ConnectorRun, Shutdown};
use crate::connectors::{ConnectorError, ImportConnector, ImportContext};
use crate::opencti::OpenctiError;

/// Runs `importer` on its schedule until `shutdown.stop`.
pub async fn run(
    run: Arc<ConnectorRun>,
    importer: Arc<dyn ImportConnector>,
    sender: Arc<Sender>,
    shutdown: Shutdown,
) {
    let connector = run.settings.key;
    // Resolved for every importer at config time.
    let period = run
        .settings
        .duration_period
        .unwrap_or(std::time::Duration::from_secs(86400));
    loop {
        if shutdown.stop.is_cancelled() {
            break;
        }
        run_once(&run, importer.as_ref(), &sender, &shutdown).await;
        let last = Utc::now();
        let next = last + chrono::Duration::from_std(period).unwrap_or(chrono::Duration::days(1));
        run.state
            .set_schedule(
                Some(last.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                Some(next.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            )
            .await;
        tracing::info!(connector, next_run = %next.to_rfc3339(), "Next run scheduled.");
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.stop.cancelled() => break,
        }
    }
}

struct RunContext<'a> {
    run: &'a ConnectorRun,
    sender: &'a Sender,
    work_id: String,
    state: Option<Value>,
    new_state: Option<Value>,
    shutdown: &'a Shutdown,
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
        let client = &self.run.platform.client;
        let target = SendTarget {
            work_id: Some(&self.work_id),
            draft_id: None,
            cleanup_inconsistent: true,
        };
        let result = self
            .sender
            .send(client, objects, target, &self.shutdown.abort)
            .await;
        match result {
            Ok(n) => {
                self.run
                    .metrics
                    .add(self.run.settings.key, "bundles_sent", n as u64);
                Ok(n)
            }
            Err(Gave::Aborted) => Err(ConnectorError::Retryable(
                "shutdown before the bundle was sent".into(),
            )),
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
    let work_id = match until_done(
        &shutdown.abort,
        "workAdd",
        OpenctiError::is_transient,
        || client.work_add(&connector_id, &friendly),
    )
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
    let mut ctx = RunContext {
        run,
        sender,
        work_id: work_id.clone(),
        state: run.state.get().await,
        new_state: None,
        shutdown,
    };
    let result = importer.run(&mut ctx).await;
    let (message, in_error) = match result {
        Ok(message) => {
            if let Some(state) = ctx.new_state.take() {
                run.state.set(Some(state)).await;
                // Persist now rather than at the next ping.
                if let Err(error) = run.state.ping(client, &connector_id, connector).await {
                    tracing::warn!(connector, %error, "Could not store the new state yet; the next ping will.");
                }
            }
            run.metrics.count(connector, "runs_succeeded");
            tracing::info!(connector, message = %message, "Import run done.");
            (message, false)
        }
        Err(error) => {
            run.metrics.count(connector, "runs_failed");
            tracing::warn!(connector, %error, "Import run failed.");
            (error.to_string(), true)
        }
    };
    if let Err(Gave::Up(error)) = until_done(
        &shutdown.abort,
        "workToProcessed",
        OpenctiError::is_transient,
        || client.work_to_processed(&work_id, &message, in_error),
    )
    .await
    {
        tracing::warn!(connector, %error, "workToProcessed failed; the work stays open.");
    }
}
