//! The work of a manual or automatic enrichment: received, processed (with the message or
//! the failure), then the message is settled.

use super::request::{Failure, process_enrichment};
use super::{Disposition, EnrichmentContext, RECEIVED_MESSAGE};
use crate::metrics::Event;
use crate::opencti::messages::ListenMessage;
use crate::runtime::Shutdown;
use crate::runtime::retry::{Gave, Patience};

/// Reports the work received, processes the request, reports the work processed.
pub(super) async fn handle_enrichment(
    ctx: &EnrichmentContext,
    message: &ListenMessage,
    shutdown: &Shutdown,
) -> Disposition {
    let connector = ctx.run.settings.key;
    let client = ctx
        .run
        .platform
        .client
        .in_draft(message.internal.draft_id.as_deref());
    let work_id = message.internal.work_id.as_deref();
    let patience = Patience {
        abort: &shutdown.abort,
        max: ctx.run.platform.max_retry,
    };
    if let Some(work_id) = work_id {
        match patience
            .opencti("workToReceived", || {
                client.work_to_received(work_id, RECEIVED_MESSAGE)
            })
            .await
        {
            Ok(()) => {}
            Err(Gave::Aborted) => return Disposition::Requeue,
            Err(Gave::Up(error)) if error.is_unreachable() => return Disposition::Pause,
            Err(Gave::Up(error)) => {
                tracing::warn!(connector, %error, "workToReceived failed; processing anyway.")
            }
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
        r = process_enrichment(ctx, &client, message, shutdown) => r,
        never = keep_alive => never,
    };
    let (text, in_error) = match result {
        Ok(text) => {
            ctx.run.metrics.count(connector, Event::EnrichmentSucceeded);
            tracing::info!(connector, message = %text, "Enrichment done.");
            (text, false)
        }
        Err(Failure::Aborted) => return Disposition::Requeue,
        Err(Failure::PlatformDown) => return Disposition::Pause,
        Err(Failure::Report(text)) => {
            ctx.run.metrics.count(connector, Event::EnrichmentFailed);
            tracing::warn!(connector, error = %text, "Enrichment failed.");
            (text, true)
        }
    };
    if let Some(work_id) = work_id {
        match patience
            .opencti("workToProcessed", || {
                client.work_to_processed(work_id, &text, in_error)
            })
            .await
        {
            Ok(()) => {}
            Err(Gave::Aborted) => return Disposition::Requeue,
            Err(Gave::Up(error)) if error.is_unreachable() => return Disposition::Pause,
            Err(Gave::Up(error)) => {
                tracing::warn!(connector, %error, "workToProcessed failed; the work stays open.")
            }
        }
    }
    Disposition::Ack
}
