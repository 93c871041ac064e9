//! One enrichment request: the entity resolved through OpenCTI, the TLP gate before any
//! upstream call, the connector called under the retry policy, the bundle sent.

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{EnrichmentContext, UNREADABLE_MESSAGE};
use crate::connectors::{ConnectorError, EnrichmentRequest, Outcome};
use crate::metrics::Event;
use crate::opencti::messages::ListenMessage;
use crate::opencti::{OpenctiClient, OpenctiError};
use crate::runtime::Shutdown;
use crate::runtime::retry::{self, Gave, Patience};
use crate::runtime::send::{SendError, SendTarget};
use crate::stix::{Tlp, check_max_tlp, tlp};

/// A failure while processing.
pub(super) enum Failure {
    /// Reported on the work, then the message is acked.
    Report(String),
    /// The drain deadline (or a pause): the message goes back to the queue.
    Aborted,
    /// OpenCTI cannot be connected to: the message goes back and the consumer pauses.
    PlatformDown,
}

impl From<Gave<OpenctiError>> for Failure {
    fn from(g: Gave<OpenctiError>) -> Self {
        match g {
            Gave::Aborted => Failure::Aborted,
            Gave::Up(e) if e.is_unreachable() => Failure::PlatformDown,
            Gave::Up(e) => Failure::Report(e.to_string()),
        }
    }
}

impl From<Gave<SendError>> for Failure {
    fn from(g: Gave<SendError>) -> Self {
        match g {
            Gave::Aborted => Failure::Aborted,
            Gave::Up(SendError::Platform(e)) => Gave::Up(e).into(),
            Gave::Up(e) => Failure::Report(e.to_string()),
        }
    }
}

/// Resolves the entity, gates on TLP, enriches and sends. Returns the work message.
pub(super) async fn process_enrichment(
    ctx: &EnrichmentContext,
    client: &OpenctiClient,
    message: &ListenMessage,
    shutdown: &Shutdown,
) -> Result<String, Failure> {
    let abort = &shutdown.abort;
    let patience = Patience {
        abort,
        max: ctx.run.platform.max_retry,
    };
    let entity_id = message.event.entity_id.as_deref().ok_or_else(|| {
        Failure::Report("Internal enrichment must be based on a specific id".into())
    })?;
    let entity = patience
        .opencti("read entity", || client.read_entity(entity_id))
        .await?
        .ok_or_else(|| Failure::Report(UNREADABLE_MESSAGE.into()))?;
    let stix_entity = match &message.event.stix_entity {
        Some(e) => e.clone(),
        None => patience
            .opencti("read stix", || client.read_stix(entity_id))
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
            let sent = ctx.sender.send(client, objects, target, abort).await?;
            ctx.run
                .metrics
                .add(ctx.run.settings.key, Event::BundlesSent, sent as u64);
            Ok(make_message(sent))
        }
    }
}

/// The max-TLP gate, before any upstream call.
pub(super) fn check_tlp(
    ctx: &EnrichmentContext,
    request: &EnrichmentRequest,
) -> Result<(), Failure> {
    let Some(max) = ctx.connector.max_tlp() else {
        return Ok(());
    };
    let tlp = tlp::entity_tlp(&request.markings).unwrap_or_else(|| "TLP:CLEAR".into());
    if check_max_tlp(&tlp, max) {
        Ok(())
    } else {
        ctx.run
            .metrics
            .count(ctx.run.settings.key, Event::TlpRefused);
        Err(Failure::Report(ctx.connector.tlp_refused_message()))
    }
}

/// Calls the connector, retrying transient upstream failures per the retry policy.
pub(super) async fn enrich_with_retries(
    ctx: &EnrichmentContext,
    request: &EnrichmentRequest,
    abort: &CancellationToken,
) -> Result<Outcome, Failure> {
    let connector = ctx.run.settings.key;
    let mut retry = ctx.run.platform.retry.start();
    loop {
        let result = tokio::select! {
            r = ctx.connector.enrich(request) => r,
            // The drain deadline: give the message back rather than wait forever.
            _ = abort.cancelled() => return Err(Failure::Aborted),
        };
        let error = match result {
            Ok(outcome) => return Ok(outcome),
            Err(error) => error,
        };
        match retry.after(&error) {
            Some(delay) => {
                tracing::warn!(connector, attempt = retry.attempt - 1, %error, "Upstream failed; retrying.");
                if !retry::sleep(delay, abort).await {
                    return Err(Failure::Aborted);
                }
            }
            None => {
                if let ConnectorError::Misconfigured(_) = &error {
                    tracing::error!(connector, %error, "The upstream refused our credentials: fix the connector's configuration.");
                }
                return Err(Failure::Report(error.to_string()));
            }
        }
    }
}
