//! The enrichment consumer: consume the listen queue, hand each message to its handler, and
//! settle it only once its work is reported (at-least-once). The handlers live beside it:
//! [`work`] (the work lifecycle), [`request`] (entity, TLP gate, connector, send) and
//! [`playbook`] (playbook steps).

mod playbook;
mod request;
mod work;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::retry::{BROKER_BACKOFF, Gave, Patience};
use super::send::Sender;
use super::{ConnectorRun, Shutdown};
use crate::amqp;
use crate::connectors::EnrichmentConnector;
use crate::metrics::Event;
use crate::opencti::messages::ListenMessage;

/// pycti's wording for the work's first message.
pub const RECEIVED_MESSAGE: &str = "Connector ready to process the operation";
/// pycti's wording when the entity cannot be read.
pub const UNREADABLE_MESSAGE: &str =
    "Unable to read/access the entity, please check the connector permissions";

/// What to do with a delivery once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Shutdown deadline hit mid-way: put it back for another run.
    Requeue,
    /// OpenCTI cannot be connected to: put it back, and stop taking deliveries until OpenCTI
    /// answers again (so messages wait in the broker instead of cycling).
    Pause,
}

/// Everything a message handler needs.
pub struct EnrichmentContext {
    pub run: Arc<ConnectorRun>,
    pub connector: Arc<dyn EnrichmentConnector>,
    pub sender: Arc<Sender>,
    /// Signalled by a handler that found OpenCTI unreachable.
    pub platform_down: Notify,
}

/// How one consumer session ended.
enum SessionEnd {
    Shutdown,
    /// The consumer or its connection was lost.
    Lost,
    /// OpenCTI is unreachable.
    PlatformDown,
}

/// How long OpenCTI's health is probed between attempts while the consumer is paused.
const PROBE_BACKOFF: super::retry::Backoff =
    super::retry::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// Consumes the listen queue until `shutdown.stop`, reconnecting with capped backoff, and
/// pausing while OpenCTI is unreachable. `up` is 1 only while a consumer is attached.
pub async fn run(ctx: Arc<EnrichmentContext>, prefetch: u16, shutdown: Shutdown) {
    let connector = ctx.run.settings.key;
    let metrics = &ctx.run.metrics;
    let mut backoff = BROKER_BACKOFF;
    while !shutdown.stop.is_cancelled() {
        let end = session(&ctx, prefetch, &shutdown, &mut backoff).await;
        metrics.set_up(connector, false);
        match end {
            SessionEnd::Shutdown => break,
            SessionEnd::Lost => {
                if !backoff.wait(&shutdown.stop).await {
                    break;
                }
            }
            SessionEnd::PlatformDown => {
                tracing::error!(
                    connector,
                    "OpenCTI is unreachable; the consumer is paused and the messages wait in the queue."
                );
                if !wait_for_platform(&ctx, &shutdown).await {
                    break;
                }
                tracing::info!(connector, "OpenCTI answers again; resuming the consumer.");
            }
        }
    }
}

/// Probes OpenCTI (`about`) until it answers; false when stopped first.
async fn wait_for_platform(ctx: &EnrichmentContext, shutdown: &Shutdown) -> bool {
    let client = &ctx.run.platform.client;
    let mut backoff = PROBE_BACKOFF;
    loop {
        if !backoff.wait(&shutdown.stop).await {
            return false;
        }
        let probe = tokio::time::timeout(Duration::from_secs(10), client.health_check());
        if let Ok(Ok(_)) = probe.await {
            return true;
        }
    }
}

/// One consumer: connect, consume, hand out deliveries; on the way out every in-flight
/// message is finished (or given back) before the next session starts, so no more than
/// `prefetch` are ever in flight and a redelivered message is never handled twice at once.
async fn session(
    ctx: &Arc<EnrichmentContext>,
    prefetch: u16,
    shutdown: &Shutdown,
    backoff: &mut super::retry::Backoff,
) -> SessionEnd {
    let run = &ctx.run;
    let connector = run.settings.key;
    let conn = match run
        .broker
        .connect(&format!(
            "opencti-connectors-{connector}-{}",
            run.settings.id
        ))
        .await
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(connector, %error, broker = ?run.broker, "Cannot connect to RabbitMQ; retrying.");
            return SessionEnd::Lost;
        }
    };
    let tag = format!("opencti-connectors-{connector}-{}", uuid::Uuid::new_v4());
    let (channel, mut consumer) = match amqp::consume(&conn, &run.queues.listen, &tag, prefetch)
        .await
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(connector, %error, queue = %run.queues.listen, "Cannot consume the listen queue; retrying.");
            let _ = conn.close(200, "retrying".into()).await;
            return SessionEnd::Lost;
        }
    };
    tracing::info!(connector, queue = %run.queues.listen, prefetch, "Listening for enrichment requests.");
    run.metrics.set_up(connector, true);
    // In-flight messages of this session give up at the drain deadline, or at once when the
    // session ends for an outage or a lost consumer (their messages are redelivered).
    let session_abort = shutdown.abort.child_token();
    let handlers = Shutdown {
        stop: shutdown.stop.clone(),
        abort: session_abort.clone(),
        lock_lost: None,
    };
    let tracker = TaskTracker::new();
    let mut delivered = false;
    let end = loop {
        tokio::select! {
            _ = shutdown.stop.cancelled() => break SessionEnd::Shutdown,
            _ = ctx.platform_down.notified() => break SessionEnd::PlatformDown,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    if !delivered {
                        // The broker really serves us: a later loss starts the backoff over.
                        delivered = true;
                        *backoff = BROKER_BACKOFF;
                    }
                    let ctx = ctx.clone();
                    let handlers = handlers.clone();
                    tracker.spawn(async move { handle_delivery(ctx, delivery, handlers).await });
                }
                Some(Err(error)) => {
                    tracing::warn!(connector, %error, "Lost the RabbitMQ consumer; reconnecting.");
                    break SessionEnd::Lost;
                }
                None => {
                    tracing::warn!(connector, "The RabbitMQ consumer ended; reconnecting.");
                    break SessionEnd::Lost;
                }
            },
        }
    };
    // Stop deliveries first; the broker keeps what was not delivered.
    let _ = channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await;
    run.metrics.set_up(connector, false);
    if !matches!(end, SessionEnd::Shutdown) {
        // Nothing left to finish for: give the messages back now.
        session_abort.cancel();
    }
    tracker.close();
    tracker.wait().await;
    let _ = channel.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
    end
}

async fn handle_delivery(ctx: Arc<EnrichmentContext>, delivery: Delivery, shutdown: Shutdown) {
    let connector = ctx.run.settings.key;
    let _in_flight = ctx.run.metrics.request_started(connector);
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
                let _ = patience(&ctx, &shutdown)
                    .opencti("workToProcessed", || {
                        client.work_to_processed(&work_id, &text, true)
                    })
                    .await;
            }
            Disposition::Ack
        }
    };
    if disposition == Disposition::Pause {
        ctx.platform_down.notify_one();
    }
    let result = match disposition {
        Disposition::Ack => delivery.ack(BasicAckOptions::default()).await,
        Disposition::Requeue | Disposition::Pause => {
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

/// The retry budget of one message's platform calls.
fn patience<'a>(ctx: &EnrichmentContext, shutdown: &'a Shutdown) -> Patience<'a> {
    Patience {
        abort: &shutdown.abort,
        max: ctx.run.platform.max_retry,
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
                let reported = patience(ctx, shutdown)
                    .opencti("workToProcessed", || {
                        client.work_to_processed(&work_id, &text, true)
                    })
                    .await;
                match reported {
                    Err(Gave::Aborted) => return Disposition::Requeue,
                    Err(Gave::Up(e)) if e.is_unreachable() => return Disposition::Pause,
                    _ => {}
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
