//! The work of a manual or automatic enrichment: received, processed (with the message or
//! the failure recorded), then the message is settled by the caller.

use super::request::process_enrichment;
use super::{EnrichmentContext, RECEIVED_MESSAGE};
use crate::metrics::Event;
use crate::opencti::messages::ListenMessage;
use crate::runtime::delivery::{Budget, Stop};

/// Reports the work received, processes the request, records the outcome on the work. `Ok`
/// once the outcome is recorded (or there is no work to record it on); a give-back when the
/// message could not be processed now.
pub(super) async fn handle_enrichment(
    ctx: &EnrichmentContext,
    message: &ListenMessage,
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let connector = ctx.run.settings.key;
    let client = ctx
        .run
        .platform
        .client
        .in_draft(message.internal.draft_id.as_deref());
    let work_id = message.internal.work_id.as_deref();
    if let Some(work_id) = work_id {
        let received = budget
            .opencti("workToReceived", || {
                client.work_to_received(work_id, RECEIVED_MESSAGE)
            })
            .await;
        match received {
            Ok(()) => {}
            Err(Stop::Failed(error)) => {
                tracing::warn!(connector, %error, "workToReceived failed; processing anyway.")
            }
            Err(given_back) => return Err(given_back),
        }
    }
    // While it is processed, the work is pinged so the platform keeps it alive (pycti's
    // every 5 minutes).
    let keep_alive = async {
        let Some(work_id) = work_id else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(ctx.run.platform.work_ping_interval).await;
            if let Err(error) = client.work_ping(work_id).await {
                tracing::warn!(connector, %error, "Work ping failed.");
            }
        }
    };
    let result = tokio::select! {
        r = process_enrichment(ctx, &client, message, budget) => r,
        never = keep_alive => never,
    };
    let (text, in_error) = match result {
        Ok(text) => {
            ctx.run.metrics.count(connector, Event::EnrichmentSucceeded);
            tracing::info!(connector, message = %text, "Enrichment done.");
            (text, false)
        }
        Err(Stop::Failed(text)) => {
            ctx.run.metrics.count(connector, Event::EnrichmentFailed);
            tracing::warn!(connector, error = %text, "Enrichment failed.");
            (text, true)
        }
        Err(given_back) => return Err(given_back),
    };
    if let Some(work_id) = work_id {
        // The outcome has a budget of its own: the handling's retries cannot starve it.
        budget
            .renewed()
            .opencti("workToProcessed", || {
                client.work_to_processed(work_id, &text, in_error)
            })
            .await
            .map_err(|stop| match stop {
                Stop::Failed(error) => Stop::Failed(format!("workToProcessed failed: {error}")),
                given_back => given_back,
            })?;
    }
    Ok(())
}
