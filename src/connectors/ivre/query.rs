//! Which IVRE queries answer an entity: the `f=` filters of the passive and scans sources for
//! each kind, per the connector's settings. `Err` says why a source does not apply.

use serde_json::{Value, json};

use super::config::{IvreConfig, ScansRoute};
use super::mapping::EntityKind;

/// The passive filters for the entity (several are concatenated).
pub fn passive_filters(
    config: &IvreConfig,
    kind: EntityKind,
    key: &str,
    hash: &Option<(&'static str, String)>,
) -> Result<Vec<Value>, String> {
    Ok(match kind {
        EntityKind::As => {
            if config.use_passive_as {
                tracing::warn!(
                    connector = "ivre",
                    "IVRE passive has no AS filter; skipping the passive source for this AS."
                );
            }
            return Err("skipped".into());
        }
        EntityKind::Domain if !config.use_passive_domain => return Err("skipped".into()),
        EntityKind::Domain => vec![
            json!({"f": "dns", "a": [key]}),
            json!({"f": "dns", "a": [key], "k": {"reverse": true}}),
        ],
        EntityKind::Ip => vec![json!({"f": "host", "a": [key]})],
        EntityKind::Mac => vec![json!({"f": "mac", "a": [key]})],
        EntityKind::Cert => match hash {
            Some((algo, h)) => vec![json!({"f": "cert", "k": {*algo: h}})],
            None => return Err("skipped".into()),
        },
    })
}

pub fn scans_filters(
    config: &IvreConfig,
    kind: EntityKind,
    key: &str,
    number: Option<u64>,
    hash: &Option<(&'static str, String)>,
) -> Result<Vec<Value>, String> {
    Ok(match kind {
        EntityKind::As if !config.use_scans_as => return Err("skipped".into()),
        EntityKind::As if config.scans_route != ScansRoute::View => {
            tracing::warn!(
                connector = "ivre",
                "AS filtering needs IVRE_SCANS_ROUTE=view; skipping the scans source for this AS."
            );
            return Err("skipped".into());
        }
        EntityKind::As => vec![json!({"f": "asnum", "a": [number]})],
        EntityKind::Domain if !config.use_scans_domain => return Err("skipped".into()),
        EntityKind::Domain => vec![json!({"f": "domain", "a": [key]})],
        EntityKind::Ip => vec![json!({"f": "host", "a": [key]})],
        EntityKind::Mac => vec![json!({"f": "mac", "a": [key]})],
        EntityKind::Cert => match hash {
            Some((algo, h)) => vec![json!({"f": "cert", "k": {*algo: h}})],
            None => return Err("skipped".into()),
        },
    })
}
