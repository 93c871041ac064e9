//! The enrichment consumer: consume the listen queue, hand each message to its handler, and
//! settle it only once its work is reported (at-least-once). The handlers live beside it:
//! [`work`] (the work lifecycle), [`request`] (entity, TLP gate, connector, send) and
//! [`playbook`] (playbook steps).

mod playbook;
mod request;
mod work;

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::retry::{BROKER_BACKOFF, Gave, until_done};
use super::send::Sender;
use super::{ConnectorRun, Shutdown};
use crate::amqp;
use crate::connectors::EnrichmentConnector;
use crate::metrics::Event;
use crate::opencti::OpenctiError;
use crate::opencti::messages::ListenMessage;

/// pycti's wording for the work's first message.
pub const RECEIVED_MESSAGE: &str = "Connector ready to process the operation";
/// pycti's wording when the entity cannot be read.
pub const UNREADABLE_MESSAGE: &str =
    "Unable to read/access to the entity, please check that the connector permission";

/// What to do with a delivery once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Shutdown deadline hit mid-way: put it back for another run.
    Requeue,
}

/// Everything a message handler needs.
pub struct EnrichmentContext {
    pub run: Arc<ConnectorRun>,
    pub connector: Arc<dyn EnrichmentConnector>,
    pub sender: Arc<Sender>,
}

/// Consumes the listen queue until `shutdown.stop`, reconnecting with capped backoff.
pub async fn run(ctx: Arc<EnrichmentContext>, prefetch: u16, shutdown: Shutdown) {
    let run = &ctx.run;
    let connector = run.settings.key;
    let tracker = TaskTracker::new();
    let mut backoff = BROKER_BACKOFF;
    'connect: while !shutdown.stop.is_cancelled() {
        let conn = match run
            .broker
            .connect(&format!("opencti-connectors-{connector}"))
            .await
        {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(connector, %error, broker = ?run.broker, "Cannot connect to RabbitMQ; retrying.");
                if !backoff.wait(&shutdown.stop).await {
                    break;
                }
                continue;
            }
        };
        let tag = format!("opencti-connectors-{connector}-{}", uuid::Uuid::new_v4());
        let (channel, mut consumer) = match amqp::consume(&conn, &run.queues.listen, &tag, prefetch)
            .await
        {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(connector, %error, queue = %run.queues.listen, "Cannot consume the listen queue; retrying.");
                if !backoff.wait(&shutdown.stop).await {
                    break;
                }
                continue;
            }
        };
        tracing::info!(connector, queue = %run.queues.listen, prefetch, "Listening for enrichment requests.");
        backoff = BROKER_BACKOFF;
        loop {
            tokio::select! {
                _ = shutdown.stop.cancelled() => {
                    // Stop deliveries; in-flight messages finish (or requeue at the deadline).
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    tracker.close();
                    tracker.wait().await;
                    let _ = channel.close(200, "shutdown".into()).await;
                    let _ = conn.close(200, "shutdown".into()).await;
                    break 'connect;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let ctx = ctx.clone();
                        let shutdown = shutdown.clone();
                        tracker.spawn(async move { handle_delivery(ctx, delivery, shutdown).await });
                    }
                    Some(Err(error)) => {
                        tracing::warn!(connector, %error, "Lost the RabbitMQ consumer; reconnecting.");
                        break;
                    }
                    None => {
                        tracing::warn!(connector, "The RabbitMQ consumer ended; reconnecting.");
                        break;
                    }
                },
            }
        }
        if !backoff.wait(&shutdown.stop).await {
            break;
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn handle_delivery(ctx: Arc<EnrichmentContext>, delivery: Delivery, shutdown: Shutdown) {
    let connector = ctx.run.settings.key;
    // A connector bug must not leave the message unacked forever (it would hold a prefetch
    // slot): report it on the work and drop the message.
    let handled = std::panic::AssertUnwindSafe(handle_message(&ctx, &delivery.data, &shutdown))
        .catch_unwind()
        .await;
    let disposition = match handled {
        Ok(d) => d,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(connector, panic = %what, "The connector panicked on a message; reporting and dropping it.");
            ctx.run.metrics.count(connector, Event::Panic);
            if let Some(work_id) = ListenMessage::salvage_work_id(&delivery.data) {
                let text = format!("Internal error in the {connector} connector: {what}");
                let client = &ctx.run.platform.client;
                let _ = until_done(
                    &shutdown.abort,
                    "workToProcessed",
                    OpenctiError::is_transient,
                    || client.work_to_processed(&work_id, &text, true),
                )
                .await;
            }
            Disposition::Ack
        }
    };
    let result = match disposition {
        Disposition::Ack => delivery.ack(BasicAckOptions::default()).await,
        Disposition::Requeue => {
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
        }
    };
    if let Err(error) = result {
        // The channel is gone: the broker redelivers the message.
        tracing::warn!(connector, %error, ?disposition, "Could not settle the message; it will be redelivered.");
    }
}

/// Handles one message body; public for tests that drive it without a broker.
pub async fn handle_message(
    ctx: &EnrichmentContext,
    body: &[u8],
    shutdown: &Shutdown,
) -> Disposition {
    let connector = ctx.run.settings.key;
    let message = match ListenMessage::parse(body) {
        Ok(m) => m,
        Err(error) => {
            tracing::error!(connector, %error, "Malformed enrichment message; reporting and dropping it.");
            ctx.run.metrics.count(connector, Event::MessageMalformed);
            if let Some(work_id) = ListenMessage::salvage_work_id(body) {
                let client = &ctx.run.platform.client;
                let text = error.to_string();
                let reported = until_done(
                    &shutdown.abort,
                    "workToProcessed",
                    OpenctiError::is_transient,
                    || client.work_to_processed(&work_id, &text, true),
                )
                .await;
                if matches!(reported, Err(Gave::Aborted)) {
                    return Disposition::Requeue;
                }
            }
            return Disposition::Ack;
        }
    };
    let span = tracing::info_span!(
        "enrichment",
        connector,
        work_id = message.internal.work_id.as_deref().unwrap_or(""),
        entity_id = message.event.entity_id.as_deref().unwrap_or(""),
        playbook = message.internal.playbook.is_some(),
    );
    async {
        match &message.internal.playbook {
            Some(step) => playbook::handle_playbook(ctx, &message, step, shutdown).await,
            None => work::handle_enrichment(ctx, &message, shutdown).await,
        }
    }
    .instrument(span)
    .await
}
