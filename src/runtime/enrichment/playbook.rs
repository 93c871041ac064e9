//! Playbook steps: the entity is taken from the playbook's bundle, enriched like any other,
//! and the step is always answered (with the bundle unchanged when enrichment fails).

use serde_json::{Value, json};

use super::request::{Failure, check_tlp, enrich_with_retries, granted_refs, share_with};
use super::{Disposition, EnrichmentContext, UNREADABLE_MESSAGE};
use crate::connectors::{EnrichmentRequest, Outcome};
use crate::opencti::OpenctiClient;
use crate::opencti::client::PlaybookStep;
use crate::opencti::messages::{ListenMessage, PlaybookInfo};
use crate::runtime::Shutdown;
use crate::runtime::retry::{Gave, Patience};
use crate::stix::{Tlp, tlp};

/// Answers a playbook step with the enriched bundle.
pub(super) async fn handle_playbook(
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
    let patience = Patience {
        abort,
        max: ctx.run.platform.max_retry,
    };
    let objects = match process_playbook(ctx, &client, message, &original, patience).await {
        Ok(Some(objects)) => objects,
        Ok(None) => original.clone(),
        Err(Failure::Aborted) => return Disposition::Requeue,
        Err(Failure::PlatformDown) => return Disposition::Pause,
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
    match patience
        .opencti("playbookStepExecution", || {
            client.playbook_step_execution(&step, &text)
        })
        .await
    {
        Ok(()) => Disposition::Ack,
        Err(Gave::Aborted) => Disposition::Requeue,
        Err(Gave::Up(error)) if error.is_unreachable() => Disposition::Pause,
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
    patience: Patience<'_>,
) -> Result<Option<Vec<Value>>, Failure> {
    let entity_id = message.event.entity_id.as_deref().ok_or_else(|| {
        Failure::Report("Internal enrichment must be based on a specific id".into())
    })?;
    let stix_entity = original
        .iter()
        .find(|o| o.get("id").and_then(Value::as_str) == Some(entity_id))
        .cloned()
        .ok_or_else(|| Failure::Report(format!("{entity_id} is not in the playbook bundle")))?;
    // As pycti: an entity the connector user cannot read is refused, before any upstream call.
    let entity = patience
        .opencti("read entity", || client.read_entity(entity_id))
        .await?
        .ok_or_else(|| Failure::Report(UNREADABLE_MESSAGE.into()))?;
    // The platform's markings, then those the bundle adds (a previous step may have), each
    // resolved: a static TLP id by the table, any other through GraphQL.
    let mut markings = entity.object_marking.clone();
    for marking in bundle_markings(client, &stix_entity, patience).await? {
        if !markings
            .iter()
            .any(|m| m.standard_id == marking.standard_id)
        {
            markings.push(marking);
        }
    }
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
    check_tlp(ctx, &request)?;
    let shared_with = granted_refs(&request.stix_entity);
    match enrich_with_retries(ctx, &request, patience.abort).await? {
        Outcome::Done(_) => Ok(None),
        Outcome::Bundle { mut objects, .. } => {
            if let Some(organisations) = &shared_with {
                share_with(&mut objects, organisations);
            }
            Ok(Some(objects))
        }
    }
}

/// The markings of the bundle's copy of the entity (`object_marking_refs`), resolved.
async fn bundle_markings(
    client: &OpenctiClient,
    entity: &Value,
    patience: Patience<'_>,
) -> Result<Vec<tlp::ObjectMarking>, Failure> {
    let refs: Vec<&str> = entity
        .get("object_marking_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = Vec::new();
    for id in refs {
        match Tlp::from_marking_id(id) {
            Some(t) => out.push(tlp::ObjectMarking {
                standard_id: Some(id.to_string()),
                definition_type: Some("TLP".into()),
                definition: Some(t.definition().into()),
            }),
            None => {
                if let Some(m) = patience
                    .opencti("read marking", || client.read_marking(id))
                    .await?
                {
                    out.push(m);
                }
            }
        }
    }
    Ok(out)
}
