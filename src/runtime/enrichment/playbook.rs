//! Playbook steps: the entity is taken from the playbook's bundle, enriched like any other,
//! and the step is always answered (with the bundle unchanged when enrichment fails).

use serde_json::{Value, json};

use super::request::{enrich_with_retries, granted_refs, share_with};
use super::{EnrichmentContext, UNREADABLE_MESSAGE, gate};
use crate::connectors::{EnrichmentRequest, Outcome};
use crate::opencti::OpenctiClient;
use crate::opencti::client::PlaybookStep;
use crate::opencti::messages::{ListenMessage, PlaybookInfo};
use crate::opencti::prepared::Prepared;
use crate::runtime::delivery::{Budget, Stop};

/// The playbook's bundle as the message carries it, and its objects.
fn incoming(message: &ListenMessage) -> (Value, Vec<Value>) {
    let incoming = message
        .event
        .bundle
        .clone()
        .unwrap_or_else(|| json!({"type": "bundle", "objects": []}));
    let objects = incoming
        .get("objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    (incoming, objects)
}

/// Answers a playbook step with the enriched bundle, or the incoming one unchanged when the
/// enrichment found nothing, was refused or failed. Never answers when the message is given
/// back: the step is answered once, by the attempt that completes.
pub(super) async fn handle_playbook(
    ctx: &EnrichmentContext,
    message: &ListenMessage,
    playbook: &PlaybookInfo,
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let connector = ctx.run.settings.key;
    let client = ctx
        .run
        .platform
        .client
        .in_draft(message.internal.draft_id.as_deref());
    let (incoming, original) = incoming(message);
    let execution_start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let objects = match process_playbook(ctx, &client, message, &original, budget).await {
        Ok(Some(objects)) => objects,
        Ok(None) => original,
        Err(Stop::Failed(text)) => {
            tracing::warn!(connector, error = %text, "Playbook enrichment failed; passing the bundle on unchanged.");
            original
        }
        Err(given_back) => return Err(given_back),
    };
    answer(
        &client,
        playbook,
        &incoming,
        objects,
        &execution_start,
        budget,
    )
    .await
}

/// Answers a playbook step with its incoming bundle unchanged (a message that is not
/// processed: it crashed the process, or the connector panicked on it).
pub(super) async fn answer_unchanged(
    ctx: &EnrichmentContext,
    message: &ListenMessage,
    playbook: &PlaybookInfo,
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let client = ctx
        .run
        .platform
        .client
        .in_draft(message.internal.draft_id.as_deref());
    let (incoming, original) = incoming(message);
    let execution_start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    answer(
        &client,
        playbook,
        &incoming,
        original,
        &execution_start,
        budget,
    )
    .await
}

/// `playbookStepExecution` with `objects`, under a budget of its own.
async fn answer(
    client: &OpenctiClient,
    playbook: &PlaybookInfo,
    incoming: &Value,
    objects: Vec<Value>,
    execution_start: &str,
    budget: &Budget<'_>,
) -> Result<(), Stop> {
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
        execution_start: execution_start.to_string(),
        data_instance_id: playbook.data_instance_id.clone(),
        playbook_id: playbook.playbook_id.clone(),
        previous_step_id: playbook.previous_step_id.clone(),
        step_id: playbook.step_id.clone(),
        previous_bundle: incoming.to_string(),
    };
    let text = bundle.to_string();
    budget
        .renewed()
        .opencti("playbookStepExecution", || {
            client.playbook_step_execution(&step, &text)
        })
        .await
        .map_err(|stop| match stop {
            Stop::Failed(error) => {
                Stop::Failed(format!("OpenCTI refused the playbook step answer: {error}"))
            }
            given_back => given_back,
        })
}

/// The playbook's enriched objects, or `None` to pass the bundle on unchanged.
async fn process_playbook(
    ctx: &EnrichmentContext,
    client: &OpenctiClient,
    message: &ListenMessage,
    original: &[Value],
    budget: &Budget<'_>,
) -> Result<Option<Vec<Value>>, Stop> {
    let entity_id =
        message.event.entity_id.as_deref().ok_or_else(|| {
            Stop::Failed("Internal enrichment must be based on a specific id".into())
        })?;
    let stix_entity = original
        .iter()
        .find(|o| o.get("id").and_then(Value::as_str) == Some(entity_id))
        .cloned()
        .ok_or_else(|| Stop::Failed(format!("{entity_id} is not in the playbook bundle")))?;
    // As pycti: an entity the connector user cannot read is refused, before any upstream call.
    let entity = budget
        .opencti("read entity", || client.read_entity(entity_id))
        .await?
        .ok_or_else(|| Stop::Failed(UNREADABLE_MESSAGE.into()))?;
    if let Some(copy) = &message.event.stix_entity {
        gate::same_entity(entity_id, &entity, copy)?;
    }
    // The platform's markings, then those the bundle's copy adds (a previous step may have),
    // the most restrictive deciding: the bundle can raise the platform's TLP, never lower it.
    let mut copies = vec![&stix_entity];
    copies.extend(message.event.stix_entity.iter());
    let markings =
        gate::known_markings(client, &entity.object_marking, &copies, original, budget).await?;
    gate::check_tlp(ctx, &markings)?;
    let request = EnrichmentRequest {
        entity_id: entity_id.to_string(),
        entity_type: Some(entity.entity_type.clone()),
        internal_id: Some(entity.id.clone()),
        observable_value: entity.observable_value.clone(),
        stix_entity,
        stix_objects: original.to_vec(),
        markings,
        playbook: true,
    };
    let shared_with = granted_refs(&request.stix_entity);
    match enrich_with_retries(ctx, &request, budget).await? {
        Outcome::Done(_) => Ok(None),
        Outcome::Bundle { mut objects, .. } => {
            if let Some(organisations) = &shared_with {
                share_with(&mut objects, organisations);
            }
            Ok(Some(objects))
        }
        // A playbook answers with the whole bundle as objects: read them back.
        Outcome::Prepared { objects, .. } => {
            let mut objects: Vec<Value> = objects.iter().map(Prepared::to_value).collect();
            if let Some(organisations) = &shared_with {
                share_with(&mut objects, organisations);
            }
            Ok(Some(objects))
        }
    }
}
