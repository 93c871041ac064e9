//! The enrichment loop: consume the listen queue, resolve the entity, gate on TLP, call the
//! connector, send, report the work, and only then ack (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::retry::{Backoff, Gave, until_done};
use super::send::{SendTarget, Sender};
use super::{ConnectorRun, Shutdown};
use crate::amqp;
use crate::connectors::{ConnectorError, EnrichmentConnector, EnrichmentRequest, Outcome};
use crate::opencti::client::PlaybookStep;
use crate::opencti::messages::{ListenMessage, PlaybookInfo};
use crate::opencti::{OpenctiClient, OpenctiError};
use crate::stix::{Tlp, check_max_tlp, tlp};

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
pub async fn run(ctx: Arc<EnrichmentContext>, shutdown: Shutdown) {
    let run = &ctx.run;
    let connector = run.settings.key;
    let tracker = TaskTracker::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
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
        let (channel, mut consumer) = match amqp::consume(
            &conn,
            &run.queues.listen,
            &tag,
            run.settings.concurrency,
        )
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
        tracing::info!(connector, queue = %run.queues.listen, prefetch = run.settings.concurrency, "Listening for enrichment requests.");
        backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
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
            ctx.run.metrics.count(connector, "panics");
            if let Some(work_id) = ListenMessage::salvage_work_id(&delivery.data) {
                let text = format!("Internal error in the {connector} connector: {what}");
                let _ = ctx
                    .run
                    .platform
                    .client
                    .work_to_processed(&work_id, &text, true)
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
            ctx.run.metrics.count(connector, "messages_malformed");
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
            Some(playbook) => handle_playbook(ctx, &message, playbook, shutdown).await,
            None => handle_enrichment(ctx, &message, shutdown).await,
        }
    }
    .instrument(span)
    .await
}

/// A failure while processing: either reported on the work, or a shutdown abort.
enum Failure {
    Report(String),
    Aborted,
}

impl From<Gave<OpenctiError>> for Failure {
    fn from(g: Gave<OpenctiError>) -> Self {
        match g {
            Gave::Aborted => Failure::Aborted,
            Gave::Up(e) => Failure::Report(e.to_string()),
        }
    }
}

async fn handle_enrichment(
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
    let abort = &shutdown.abort;
    if let Some(work_id) = work_id {
        match until_done(abort, "workToReceived", OpenctiError::is_transient, || {
            client.work_to_received(work_id, RECEIVED_MESSAGE)
        })
        .await
        {
            Ok(()) => {}
            Err(Gave::Aborted) => return Disposition::Requeue,
            Err(Gave::Up(error)) => {
                tracing::warn!(connector, %error, "workToReceived failed; processing anyway.")
            }
        }
    }
    let result = process_enrichment(ctx, &client, message, shutdown).await;
    let (text, in_error) = match result {
        Ok(text) => {
            ctx.run.metrics.count(connector, "enrichments_succeeded");
            tracing::info!(connector, message = %text, "Enrichment done.");
            (text, false)
        }
        Err(Failure::Aborted) => return Disposition::Requeue,
        Err(Failure::Report(text)) => {
            ctx.run.metrics.count(connector, "enrichments_failed");
            tracing::warn!(connector, error = %text, "Enrichment failed.");
            (text, true)
        }
    };
    if let Some(work_id) = work_id {
        match until_done(abort, "workToProcessed", OpenctiError::is_transient, || {
            client.work_to_processed(work_id, &text, in_error)
        })
        .await
        {
            Ok(()) => {}
            Err(Gave::Aborted) => return Disposition::Requeue,
            Err(Gave::Up(error)) => {
                tracing::warn!(connector, %error, "workToProcessed failed; the work stays open.")
            }
        }
    }
    Disposition::Ack
}

/// Resolves the entity, gates on TLP, enriches and sends. Returns the work message.
async fn process_enrichment(
    ctx: &EnrichmentContext,
    client: &OpenctiClient,
    message: &ListenMessage,
    shutdown: &Shutdown,
) -> Result<String, Failure> {
    let abort = &shutdown.abort;
    let entity_id = message.event.entity_id.as_deref().ok_or_else(|| {
        Failure::Report("Internal enrichment must be based on a specific id".into())
    })?;
    let entity = until_done(abort, "read entity", OpenctiError::is_transient, || {
        client.read_entity(entity_id)
    })
    .await?
    .ok_or_else(|| Failure::Report(UNREADABLE_MESSAGE.into()))?;
    let stix_entity = match &message.event.stix_entity {
        Some(e) => e.clone(),
        None => until_done(abort, "read stix", OpenctiError::is_transient, || {
            client.read_stix(entity_id)
        })
        .await?
        .ok_or_else(|| Failure::Report(UNREADABLE_MESSAGE.into()))?,
    };
    let stix_objects = match message.provided_objects() {
        Some(objects) => objects,
        None => {
            // The entity plus its TLP marking objects, as pycti's export gives them.
            let now = crate::stix::now();
            let mut objects = vec![stix_entity.clone()];
            for m in &entity.object_marking {
                if m.definition_type.as_deref() == Some("TLP")
                    && let Some(t) = m.definition.as_deref().and_then(Tlp::parse)
                {
                    objects.push(t.export_object(&now));
                }
            }
            objects
        }
    };
    let request = EnrichmentRequest {
        entity_id: stix_entity
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(&entity.standard_id)
            .to_string(),
        entity_type: message
            .event
            .entity_type
            .clone()
            .or(Some(entity.entity_type.clone())),
        internal_id: Some(entity.id.clone()),
        observable_value: entity.observable_value.clone(),
        stix_entity,
        stix_objects,
        markings: entity.object_marking.clone(),
        playbook: false,
    };
    check_tlp(ctx, &request)?;
    match enrich_with_retries(ctx, &request, abort).await? {
        Outcome::Done(text) => Ok(text),
        Outcome::Bundle {
            objects,
            message: make_message,
        } => {
            let target = SendTarget {
                work_id: message.internal.work_id.as_deref(),
                draft_id: message.internal.draft_id.as_deref(),
                cleanup_inconsistent: false,
            };
            let sent = ctx
                .sender
                .send(client, objects, target, abort)
                .await
                .map_err(|g| match g {
                    Gave::Aborted => Failure::Aborted,
                    Gave::Up(e) => Failure::Report(e.to_string()),
                })?;
            ctx.run
                .metrics
                .add(ctx.run.settings.key, "bundles_sent", sent as u64);
            Ok(make_message(sent))
        }
    }
}

/// The max-TLP gate, before any upstream call.
fn check_tlp(ctx: &EnrichmentContext, request: &EnrichmentRequest) -> Result<(), Failure> {
    let Some(max) = ctx.connector.max_tlp() else {
        return Ok(());
    };
    let tlp = tlp::entity_tlp(&request.markings).unwrap_or_else(|| "TLP:CLEAR".into());
    if check_max_tlp(&tlp, max) {
        Ok(())
    } else {
        ctx.run.metrics.count(ctx.run.settings.key, "tlp_refused");
        Err(Failure::Report(ctx.connector.tlp_refused_message()))
    }
}

/// Calls the connector, retrying transient upstream failures per the retry policy.
async fn enrich_with_retries(
    ctx: &EnrichmentContext,
    request: &EnrichmentRequest,
    abort: &tokio_util::sync::CancellationToken,
) -> Result<Outcome, Failure> {
    let connector = ctx.run.settings.key;
    let policy = &ctx.run.platform.retry;
    let mut backoff = Backoff::new(policy.base, policy.max);
    let mut attempt = 1;
    loop {
        let result = tokio::select! {
            r = ctx.connector.enrich(request) => r,
            // The drain deadline: give the message back rather than wait forever.
            _ = abort.cancelled() => return Err(Failure::Aborted),
        };
        match result {
            Ok(outcome) => return Ok(outcome),
            Err(ConnectorError::Retryable(text)) if attempt < policy.attempts => {
                tracing::warn!(connector, attempt, error = %text, "Upstream failed; retrying.");
                attempt += 1;
                if !backoff.wait(abort).await {
                    return Err(Failure::Aborted);
                }
            }
            Err(ConnectorError::Misconfigured(text)) => {
                tracing::error!(connector, error = %text, "The upstream refused our credentials: fix the connector's configuration.");
                return Err(Failure::Report(text));
            }
            Err(e) => return Err(Failure::Report(e.to_string())),
        }
    }
}

async fn handle_playbook(
    ctx: &EnrichmentContext,
    message: &ListenMessage,
    playbook: &PlaybookInfo,
    shutdown: &Shutdown,
) -> Disposition {
    let connector = ctx.run.settings.key;
    let abort = &shutdown.abort;
    let client = ctx
        .run
        .platform
        .client
        .in_draft(message.internal.draft_id.as_deref());
    let incoming = message
        .event
        .bundle
        .clone()
        .unwrap_or_else(|| json!({"type": "bundle", "objects": []}));
    let original: Vec<Value> = incoming
        .get("objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let execution_start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let objects = match process_playbook(ctx, &client, message, &original, abort).await {
        Ok(Some(objects)) => objects,
        Ok(None) => original.clone(),
        Err(Failure::Aborted) => return Disposition::Requeue,
        Err(Failure::Report(text)) => {
            tracing::warn!(connector, error = %text, "Playbook enrichment failed; passing the bundle on unchanged.");
            original.clone()
        }
    };
    // The playbook's bundle keeps its id; a bundle without one gets a fresh id.
    let bundle_id = match incoming.get("id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => format!("bundle--{}", uuid::Uuid::new_v4()),
    };
    let bundle =
        json!({ "type": "bundle", "id": bundle_id, "spec_version": "2.1", "objects": objects });
    let step = PlaybookStep {
        execution_id: playbook.execution_id.clone(),
        event_id: playbook.event_id.clone(),
        execution_start,
        data_instance_id: playbook.data_instance_id.clone(),
        playbook_id: playbook.playbook_id.clone(),
        previous_step_id: playbook.previous_step_id.clone(),
        step_id: playbook.step_id.clone(),
        previous_bundle: incoming.to_string(),
    };
    let text = bundle.to_string();
    match until_done(
        abort,
        "playbookStepExecution",
        OpenctiError::is_transient,
        || client.playbook_step_execution(&step, &text),
    )
    .await
    {
        Ok(()) => Disposition::Ack,
        Err(Gave::Aborted) => Disposition::Requeue,
        Err(Gave::Up(error)) => {
            tracing::error!(connector, %error, "OpenCTI refused the playbook step answer.");
            Disposition::Ack
        }
    }
}

/// The playbook's enriched objects, or `None` to pass the bundle on unchanged.
async fn process_playbook(
    ctx: &EnrichmentContext,
    client: &OpenctiClient,
    message: &ListenMessage,
    original: &[Value],
    abort: &tokio_util::sync::CancellationToken,
) -> Result<Option<Vec<Value>>, Failure> {
    let entity_id = message.event.entity_id.as_deref().ok_or_else(|| {
        Failure::Report("Internal enrichment must be based on a specific id".into())
    })?;
    let stix_entity = original
        .iter()
        .find(|o| o.get("id").and_then(Value::as_str) == Some(entity_id))
        .cloned()
        .ok_or_else(|| Failure::Report(format!("{entity_id} is not in the playbook bundle")))?;
    let entity = until_done(abort, "read entity", OpenctiError::is_transient, || {
        client.read_entity(entity_id)
    })
    .await?;
    let markings = match &entity {
        Some(e) => e.object_marking.clone(),
        None => {
            // Not stored yet (a playbook may run on a bundle): use the bundle's TLP refs.
            markings_from_refs(&stix_entity)
        }
    };
    let request = EnrichmentRequest {
        entity_id: entity_id.to_string(),
        entity_type: entity.as_ref().map(|e| e.entity_type.clone()),
        internal_id: entity.as_ref().map(|e| e.id.clone()),
        observable_value: entity.as_ref().and_then(|e| e.observable_value.clone()),
        stix_entity,
        stix_objects: original.to_vec(),
        markings,
        playbook: true,
    };
    check_tlp(ctx, &request)?;
    match enrich_with_retries(ctx, &request, abort).await? {
        Outcome::Done(_) => Ok(None),
        Outcome::Bundle { objects, .. } => Ok(Some(objects)),
    }
}

/// TLP markings derived from an object's `object_marking_refs` (static TLP ids).
fn markings_from_refs(object: &Value) -> Vec<tlp::ObjectMarking> {
    object
        .get("object_marking_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|id| {
            Tlp::from_marking_id(id).map(|t| tlp::ObjectMarking {
                standard_id: Some(id.to_string()),
                definition_type: Some("TLP".into()),
                definition: Some(t.definition().into()),
            })
        })
        .collect()
}
