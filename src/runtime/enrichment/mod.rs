//! The enrichment consumer: consume the listen queue, hand each message to its handler, and
//! settle it only once its work is reported (at-least-once). The handlers live beside it:
//! [`work`] (the work lifecycle), [`request`] (entity, TLP gate, connector, send),
//! [`playbook`] (playbook steps) and [`poison`] (what is known of a redelivered message).

pub mod gate;
mod playbook;
mod poison;
mod request;
mod work;

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::delivery::{Budget, GiveBack, Settlement, Stop, memory_stop, settle};
use super::retry::{BROKER_BACKOFF, Backoff};
use super::send::Sender;
use super::{ConnectorRun, Shutdown};
use crate::amqp::{self, OPERATION_TIMEOUT};
use crate::connectors::EnrichmentConnector;
use crate::memory::{self, Weight};
use crate::metrics::Event;
use crate::opencti::messages::ListenMessage;
use poison::{Flag, Records, Verdict};

pub use poison::CONVICTED;

/// pycti's wording for the work's first message.
pub const RECEIVED_MESSAGE: &str = "Connector ready to process the operation";
/// pycti's wording when the entity cannot be read.
pub const UNREADABLE_MESSAGE: &str =
    "Unable to read/access the entity, please check the connector permissions";

/// Everything a message handler needs.
pub struct EnrichmentContext {
    pub run: Arc<ConnectorRun>,
    pub connector: Arc<dyn EnrichmentConnector>,
    pub sender: Arc<Sender>,
}

/// The broker session a message was delivered on.
struct Session {
    /// The consuming connection (the messages' flags are read and set on it).
    connection: Arc<lapin::Connection>,
    /// Fires when the session ends early (a lost consumer, OpenCTI down, RabbitMQ not taking
    /// publishes) and at the drain deadline: in-flight messages are given back.
    abort: CancellationToken,
    /// Fired by a handler whose publish RabbitMQ did not take in time: the session ends and
    /// waits before consuming again, instead of cycling messages through a blocked broker.
    broker_trouble: CancellationToken,
}

/// Consumes the listen queue until `shutdown.stop`, reconnecting with capped backoff, and
/// pausing while OpenCTI is down (for every connector: the platform's availability is
/// shared). `up` is 1 only while a consumer is attached.
pub async fn run(ctx: Arc<EnrichmentContext>, prefetch: u16, shutdown: Shutdown) {
    let connector = ctx.run.settings.key;
    let metrics = &ctx.run.metrics;
    let availability = &ctx.run.platform.availability;
    let mut backoff = BROKER_BACKOFF;
    while !shutdown.stop.is_cancelled() {
        if availability.is_down() {
            metrics.set_up(connector, false);
            tracing::warn!(
                connector,
                "OpenCTI is unavailable; not consuming: the messages wait in the queue."
            );
            if !availability.wait_up(&shutdown.stop).await {
                break;
            }
            tracing::info!(connector, "OpenCTI answers again; consuming again.");
            continue;
        }
        session(&ctx, prefetch, &shutdown, &mut backoff).await;
        metrics.set_up(connector, false);
        if shutdown.stop.is_cancelled() {
            break;
        }
        // A lost consumer, or a broker that did not take a publish: wait, then try again
        // (after an outage, the loop waits for OpenCTI first).
        if !availability.is_down() && !backoff.wait(&shutdown.stop).await {
            break;
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
    backoff: &mut Backoff,
) {
    let run = &ctx.run;
    let connector = run.settings.key;
    let availability = &run.platform.availability;
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
            return;
        }
    };
    let tag = format!("opencti-connectors-{connector}-{}", uuid::Uuid::new_v4());
    let (channel, mut consumer) = match amqp::consume(&conn, &run.queues.listen, &tag, prefetch)
        .await
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(connector, %error, queue = %run.queues.listen, "Cannot consume the listen queue; retrying.");
            amqp::close_bounded(&conn, "retrying").await;
            return;
        }
    };
    tracing::info!(connector, queue = %run.queues.listen, prefetch, "Listening for enrichment requests.");
    run.metrics.set_up(connector, true);
    let session = Arc::new(Session {
        connection: Arc::new(conn),
        abort: shutdown.abort.child_token(),
        broker_trouble: CancellationToken::new(),
    });
    let tracker = TaskTracker::new();
    let mut delivered = false;
    loop {
        tokio::select! {
            _ = shutdown.stop.cancelled() => break,
            _ = availability.went_down() => {
                tracing::warn!(connector, "OpenCTI is unavailable; pausing and giving the in-flight messages back.");
                break;
            }
            _ = session.broker_trouble.cancelled() => {
                tracing::warn!(connector, "RabbitMQ does not take our publishes in time; pausing and giving the in-flight messages back.");
                break;
            }
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    if !delivered {
                        // The broker really serves us: a later loss starts the backoff over.
                        delivered = true;
                        *backoff = BROKER_BACKOFF;
                    }
                    tracker.spawn(handle_delivery(ctx.clone(), delivery, session.clone()));
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
    // Stop deliveries first; the broker keeps what was not delivered.
    let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
    let _ = amqp::bounded("basic.cancel", OPERATION_TIMEOUT, cancel).await;
    run.metrics.set_up(connector, false);
    if !shutdown.stop.is_cancelled() {
        // Nothing left to finish for: give the messages back now.
        session.abort.cancel();
    }
    tracker.close();
    tracker.wait().await;
    amqp::close_channel(&channel, "done").await;
    amqp::close_bounded(&session.connection, "done").await;
}

/// Handles one delivery and settles it: what is known of it decides whether it runs with
/// the others, alone, or not at all (see [`poison`]); it is never held longer than
/// the broker allows (`mq.consumer_timeout`); [`settle`] decides ack or give back.
async fn handle_delivery(ctx: Arc<EnrichmentContext>, delivery: Delivery, session: Arc<Session>) {
    let connector = ctx.run.settings.key;
    let platform = &ctx.run.platform;
    let metrics = &ctx.run.metrics;
    let _in_flight = metrics.request_started(connector);
    let held_until = super::retry::deadline(Instant::now(), platform.hold_limit);
    let connector_id = ctx.run.settings.id.to_string();
    let records = Records::new(&session.connection, &connector_id, &delivery.data);
    let verdict = if delivery.redelivered {
        records.verdict(connector).await
    } else {
        Verdict::Fresh
    };
    let abort = session.abort.child_token();
    let budget = Budget::new(platform, &abort);
    let ledger = budget.ledger();
    // Held until the message is settled, so nothing else starts while a suspect runs.
    let mut gate = None;
    let handling = memory::LEDGER.scope(
        ledger.clone(),
        handle_gated(&ctx, &delivery.data, verdict, &records, &budget, &mut gate),
    );
    let result = tokio::time::timeout_at(held_until, handling)
        .await
        .unwrap_or(Err(Stop::GiveBack(GiveBack::HeldTooLong)));
    if let Err(Stop::GiveBack(GiveBack::Broker(_))) = &result {
        session.broker_trouble.cancel();
    }
    let settlement = settle(connector, &result);
    let settled = match settlement {
        Settlement::Ack => {
            let ack = delivery.ack(BasicAckOptions::default());
            amqp::bounded("basic.ack", OPERATION_TIMEOUT, ack).await
        }
        Settlement::GiveBack => {
            metrics.count(connector, Event::GivenBack);
            if matches!(verdict, Verdict::Fresh | Verdict::Returned)
                && let Err(error) = records.mark(Flag::Returned).await
            {
                tracing::debug!(connector, %error, "Cannot flag the message as given back; it will be processed alone next time.");
            }
            let nack = delivery.nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            });
            amqp::bounded("basic.nack", OPERATION_TIMEOUT, nack).await
        }
    };
    if let Err(error) = settled {
        // The channel is gone: the broker redelivers the message.
        tracing::warn!(connector, %error, ?settlement, "Could not settle the message; it will be redelivered.");
    }
    // Whatever the outcome, the process survived this message's run alone.
    let done_alone = verdict == Verdict::Suspect
        || (verdict == Verdict::Convicted && settlement == Settlement::Ack);
    if done_alone && let Err(error) = records.clear(Flag::Alone).await {
        tracing::warn!(connector, %error, "Cannot clear the message's flag on RabbitMQ; a redelivery of it would be failed as a crash.");
    }
}

/// The process's isolation gate, as a message holds it.
enum Gate {
    /// Alone: nothing else runs in the process.
    #[allow(dead_code)] // Held for its drop.
    Alone(tokio::sync::OwnedRwLockWriteGuard<()>),
    /// With the others.
    #[allow(dead_code)] // Held for its drop.
    Shared(tokio::sync::OwnedRwLockReadGuard<()>),
}

/// Passes the isolation gate as `verdict` says (alone, with the others, or not at all for a
/// convicted message, which is only reported), leaving the guard in `gate` for the caller to
/// hold until the message is settled; charges the message's parsed form; handles it.
async fn handle_gated(
    ctx: &EnrichmentContext,
    body: &[u8],
    verdict: Verdict,
    records: &Records<'_>,
    budget: &Budget<'_>,
    gate: &mut Option<Gate>,
) -> Result<(), Stop> {
    let connector = ctx.run.settings.key;
    let isolation = ctx.run.platform.isolation.clone();
    let abort = budget.abort();
    match verdict {
        Verdict::Convicted => {
            tracing::error!(
                connector,
                "This message was being processed alone when a process died, after an earlier crash: failing it without processing it again."
            );
            ctx.run.metrics.count(connector, Event::Poison);
            return report_failure(ctx, body, CONVICTED, budget).await;
        }
        Verdict::Suspect => {
            *gate = Some(Gate::Alone(tokio::select! {
                guard = isolation.write_owned() => guard,
                _ = abort.cancelled() => return Err(budget.given_back()),
            }));
            if let Err(error) = records.mark(Flag::Alone).await {
                tracing::warn!(connector, %error, "Cannot flag the message on RabbitMQ; if it crashes the process, the crash will not be attributed to it.");
            }
            tracing::info!(
                connector,
                "A redelivered message that may have been in flight when a process died: processing it alone."
            );
        }
        Verdict::Fresh | Verdict::Returned => {
            *gate = Some(Gate::Shared(tokio::select! {
                guard = isolation.read_owned() => guard,
                _ = abort.cancelled() => return Err(budget.given_back()),
            }));
        }
    }
    // The message's parsed form (a playbook's bundle can be large), charged before it is
    // parsed; what the request reads and sends is charged on the same ledger.
    if let Err(error) = memory::charge(Weight::Tree.of(body.len() as u64)).await {
        return match memory_stop(error) {
            Stop::Failed(text) => report_failure(ctx, body, &text, budget).await,
            given_back => Err(given_back),
        };
    }
    handle_caught(ctx, body, budget).await
}

/// Handles one message body; a panic of the connector is caught and reported like any
/// failure, so it neither kills the process nor holds its message.
async fn handle_caught(
    ctx: &EnrichmentContext,
    body: &[u8],
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let connector = ctx.run.settings.key;
    let handled = std::panic::AssertUnwindSafe(handle_message(ctx, body, budget))
        .catch_unwind()
        .await;
    match handled {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(connector, panic = %what, "The connector panicked on a message; reporting and dropping it.");
            ctx.run.metrics.count(connector, Event::Panic);
            let text = format!("Internal error in the {connector} connector: {what}");
            report_failure(ctx, body, &text, budget).await
        }
    }
}

/// Records `text` as the outcome of a message that is not processed (further): on its work
/// when it has one, as an unchanged answer when it is a playbook step.
async fn report_failure(
    ctx: &EnrichmentContext,
    body: &[u8],
    text: &str,
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let client = &ctx.run.platform.client;
    let message = ListenMessage::parse(body).ok();
    if let Some(message) = &message
        && let Some(step) = &message.internal.playbook
    {
        return playbook::answer_unchanged(ctx, message, step, budget).await;
    }
    let work_id = match &message {
        Some(m) => m.internal.work_id.clone(),
        None => ListenMessage::salvage_work_id(body),
    };
    if let Some(work_id) = work_id {
        budget
            .renewed()
            .opencti("workToProcessed", || {
                client.work_to_processed(&work_id, text, true)
            })
            .await?;
    }
    Ok(())
}

/// Handles one message body: a malformed one is reported on its work (when it names one).
async fn handle_message(
    ctx: &EnrichmentContext,
    body: &[u8],
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let connector = ctx.run.settings.key;
    let message = match ListenMessage::parse(body) {
        Ok(m) => m,
        Err(error) => {
            tracing::error!(connector, %error, "Malformed enrichment message; reporting and dropping it.");
            ctx.run.metrics.count(connector, Event::MessageMalformed);
            return report_failure(ctx, body, &error.to_string(), budget).await;
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
            Some(step) => playbook::handle_playbook(ctx, &message, step, budget).await,
            None => work::handle_enrichment(ctx, &message, budget).await,
        }
    }
    .instrument(span)
    .await
}
