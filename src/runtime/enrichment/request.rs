//! One enrichment request: the entity resolved through OpenCTI, the TLP gate before any
//! upstream call, the connector called under the retry policy, the bundle sent.

use serde_json::Value;

use super::{EnrichmentContext, UNREADABLE_MESSAGE, gate};
use crate::connectors::{ConnectorError, EnrichmentRequest, Outcome};
use crate::opencti::OpenctiClient;
use crate::opencti::messages::ListenMessage;
use crate::opencti::prepared::Prepared;
use crate::runtime::delivery::{Budget, Stop};
use crate::runtime::send::SendTarget;
use crate::stix::Tlp;

/// Resolves the entity, gates on TLP, enriches and sends. Returns the work message.
pub(super) async fn process_enrichment(
    ctx: &EnrichmentContext,
    client: &OpenctiClient,
    message: &ListenMessage,
    budget: &Budget<'_>,
) -> Result<String, Stop> {
    let entity_id =
        message.event.entity_id.as_deref().ok_or_else(|| {
            Stop::Failed("Internal enrichment must be based on a specific id".into())
        })?;
    // One request: the access check, the markings and the STIX export as it is now.
    let entity = budget
        .opencti("read entity", || client.read_entity(entity_id))
        .await?
        .ok_or_else(|| Stop::Failed(UNREADABLE_MESSAGE.into()))?;
    // The message's copy of the entity must be the entity it names: refuse, do not guess.
    if let Some(copy) = &message.event.stix_entity {
        gate::same_entity(entity_id, &entity, copy)?;
    }
    let provided = message.provided_objects();
    // The gate, before any upstream call: the platform's markings and the message's, the
    // most restrictive deciding.
    let copies: Vec<&Value> = message.event.stix_entity.iter().collect();
    let carried = provided.as_deref().unwrap_or_default();
    let markings =
        gate::known_markings(client, &entity.object_marking, &copies, carried, budget).await?;
    gate::check_tlp(ctx, &markings)?;
    let stix_entity = match (&provided, entity.stix(), &message.event.stix_entity) {
        // A bundle came with the message: it is what the connector works on.
        (Some(_), _, Some(e)) => e.clone(),
        // Otherwise the platform's export at processing time, as pycti does, so a snapshot
        // queued earlier never writes a stale score or description back.
        (_, Some(exported), _) => exported,
        (_, None, Some(e)) => e.clone(),
        (_, None, None) => return Err(Stop::Failed(UNREADABLE_MESSAGE.into())),
    };
    let stix_objects = match provided {
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
        markings,
        playbook: false,
    };
    let shared_with = granted_refs(&request.stix_entity);
    let target = SendTarget {
        work_id: message.internal.work_id.as_deref(),
        draft_id: message.internal.draft_id.as_deref(),
        cleanup_inconsistent: false,
        applicant_id: message.internal.applicant_id.as_deref(),
    };
    let (sent, records, make_message) = match enrich_with_retries(ctx, &request, budget).await? {
        Outcome::Done(text) => return Ok(text),
        Outcome::Bundle {
            mut objects,
            message,
        } => {
            if let Some(organisations) = &shared_with {
                share_with(&mut objects, organisations);
            }
            let records = objects.len();
            let sent = ctx.sender.send(client, objects, target, budget).await?;
            (sent, records, message)
        }
        Outcome::Prepared {
            mut objects,
            message,
        } => {
            if let Some(organisations) = &shared_with {
                share_prepared_with(&mut objects, organisations);
            }
            let records = objects.len();
            let sent = ctx
                .sender
                .send_prepared(client, objects, target, budget)
                .await?;
            (sent, records, message)
        }
    };
    ctx.run.metrics.sent(ctx.run.settings.key, sent, records);
    Ok(make_message(sent))
}

/// [`share_with`] for objects already serialised: each is read, shared and written again,
/// one at a time.
pub(super) fn share_prepared_with(objects: &mut [Prepared], organisations: &[Value]) {
    for prepared in objects.iter_mut() {
        let mut object = prepared.to_value();
        share_with(std::slice::from_mut(&mut object), organisations);
        *prepared = Prepared::from_value(&object);
    }
}

/// OpenCTI's extension of a STIX object.
const OCTI_EXTENSION: &str = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";
/// OpenCTI's extension of a STIX cyber-observable.
const OCTI_SCO_EXTENSION: &str = "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82";

/// The organisations the entity is shared with, as pycti reads them: its
/// `x_opencti_granted_refs`, else `granted_refs` in its OpenCTI extension(s). `None` when it
/// has neither (an empty list still applies, as pycti's does).
pub(super) fn granted_refs(entity: &Value) -> Option<Vec<Value>> {
    let found = match entity.get("x_opencti_granted_refs") {
        Some(v) => Some(v),
        None => [OCTI_EXTENSION, OCTI_SCO_EXTENSION]
            .iter()
            .find_map(|ext| entity.pointer(&format!("/extensions/{ext}/granted_refs")))
            .or_else(|| entity.get("granted_refs")),
    };
    match found? {
        Value::Array(refs) => Some(refs.clone()),
        _ => None,
    }
}

/// Shares every object with `organisations`, as pycti's `send_stix2_bundle` does: merged into
/// `granted_refs` of the object's OpenCTI extension when it has one, else into its
/// `x_opencti_granted_refs`.
pub(super) fn share_with(objects: &mut [Value], organisations: &[Value]) {
    let merge = |slot: &mut Value| match slot {
        Value::Array(refs) => {
            for org in organisations {
                if !refs.contains(org) {
                    refs.push(org.clone());
                }
            }
        }
        other => *other = Value::Array(organisations.to_vec()),
    };
    for object in objects.iter_mut() {
        let Value::Object(map) = object else { continue };
        match map
            .get_mut("extensions")
            .and_then(|e| e.get_mut(OCTI_EXTENSION))
            .and_then(Value::as_object_mut)
        {
            Some(extension) => merge(extension.entry("granted_refs").or_insert(Value::Null)),
            None => merge(map.entry("x_opencti_granted_refs").or_insert(Value::Null)),
        }
    }
}

/// Calls the connector, retrying transient upstream failures per the retry policy, within
/// the message's budget.
pub(super) async fn enrich_with_retries(
    ctx: &EnrichmentContext,
    request: &EnrichmentRequest,
    budget: &Budget<'_>,
) -> Result<Outcome, Stop> {
    let connector = ctx.run.settings.key;
    let mut retry = ctx.run.platform.retry.start();
    loop {
        let result = tokio::select! {
            r = ctx.connector.enrich(request) => r,
            // The drain deadline, or OpenCTI down: give the message back rather than wait.
            _ = budget.abort().cancelled() => return Err(budget.given_back()),
        };
        let error = match result {
            Ok(outcome) => return Ok(outcome),
            Err(error) => error,
        };
        if crate::runtime::delivery::starved() {
            // It failed for want of memory, not for what it asked: give it back.
            return Err(Stop::GiveBack(
                crate::runtime::delivery::GiveBack::MemoryBusy,
            ));
        }
        match retry.after(&error) {
            Some(delay) if budget.allows(delay) => {
                tracing::warn!(connector, attempt = retry.attempt - 1, %error, "Upstream failed; retrying.");
                budget.sleep(delay).await?;
            }
            _ => {
                if let ConnectorError::Misconfigured(_) = &error {
                    tracing::error!(connector, %error, "The upstream refused our credentials: fix the connector's configuration.");
                }
                return Err(Stop::Failed(error.to_string()));
            }
        }
    }
}
