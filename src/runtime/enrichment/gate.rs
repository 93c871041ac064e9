//! The max-TLP gate, before any upstream call. Every TLP marking known for the entity
//! counts: the platform's (`objectMarking`, read through GraphQL) and those of every copy of
//! the entity the message carries (`stix_entity`, a playbook bundle's copy), and the most
//! restrictive one decides. A message can raise what the platform says, never lower it; a
//! message whose copy names another object than the entity it asks for is refused.

use serde_json::Value;

use super::EnrichmentContext;
use crate::metrics::Event;
use crate::opencti::OpenctiClient;
use crate::opencti::client::EntityRead;
use crate::runtime::delivery::{Budget, Stop};
use crate::stix::{ObjectMarking, Tlp, tlp};

/// The work error of a message whose copy of the entity is another object.
pub fn mismatch_message(entity_id: &str, copy_id: &str) -> String {
    format!(
        "The request names {entity_id} but carries {copy_id}: refused, nothing was sent upstream"
    )
}

/// Refuses a copy of the entity that names another object than the one read from the
/// platform (by the message's `entity_id`, its standard id or its internal id).
pub(super) fn same_entity(entity_id: &str, entity: &EntityRead, copy: &Value) -> Result<(), Stop> {
    let Some(copy_id) = copy.get("id").and_then(Value::as_str) else {
        return Ok(());
    };
    if [entity_id, entity.standard_id.as_str(), entity.id.as_str()].contains(&copy_id) {
        Ok(())
    } else {
        Err(Stop::Failed(mismatch_message(entity_id, copy_id)))
    }
}

/// Every marking known for the entity: the platform's, then those the copies reference that
/// the platform did not list, each resolved: a static TLP id by the table, a marking object
/// the message carries (`carried`), else through GraphQL (`markingDefinition`).
pub(super) async fn known_markings(
    client: &OpenctiClient,
    platform: &[ObjectMarking],
    copies: &[&Value],
    carried: &[Value],
    budget: &Budget<'_>,
) -> Result<Vec<ObjectMarking>, Stop> {
    let mut markings = platform.to_vec();
    // Owned: nothing borrowed from the copies is held across the reads below.
    let refs: Vec<String> = copies
        .iter()
        .filter_map(|c| c.get("object_marking_refs").and_then(Value::as_array))
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    for id in refs.iter().map(String::as_str) {
        if markings
            .iter()
            .any(|m| m.standard_id.as_deref() == Some(id))
        {
            continue;
        }
        let marking = match Tlp::from_marking_id(id) {
            Some(t) => Some(ObjectMarking::tlp(t)),
            None => match carried
                .iter()
                .find(|o| o.get("id").and_then(Value::as_str) == Some(id))
                .and_then(ObjectMarking::from_stix)
            {
                Some(m) => Some(m),
                None => {
                    budget
                        .opencti("read marking", || client.read_marking(id))
                        .await?
                }
            },
        };
        if let Some(mut marking) = marking {
            marking.standard_id.get_or_insert_with(|| id.to_string());
            markings.push(marking);
        }
    }
    Ok(markings)
}

/// The gate: refused (the work says why) when a TLP marking is above the connector's
/// `max_tlp`.
pub(super) fn check_tlp(ctx: &EnrichmentContext, markings: &[ObjectMarking]) -> Result<(), Stop> {
    let Some(max) = ctx.connector.max_tlp() else {
        return Ok(());
    };
    if tlp::allows(markings, max) {
        return Ok(());
    }
    let connector = ctx.run.settings.key;
    ctx.run.metrics.count(connector, Event::TlpRefused);
    tracing::info!(
        connector,
        tlp = tlp::highest(markings).as_deref().unwrap_or(""),
        max_tlp = max.definition(),
        "The entity's TLP is above the connector's max TLP; nothing is sent upstream."
    );
    Err(Stop::Failed(ctx.connector.tlp_refused_message()))
}
