//! The integration manager's custom catalog: one contract per connector, each pointing at the
//! image made for that connector (the Dockerfile's stage of its name, which sets
//! [`super::AS_ENV`]), so OpenCTI can deploy the daemon in place of an official image.
//!
//! The format is OpenCTI's (`app:custom_catalogs`, a list of files): `{id, name, description,
//! version, contracts}`, each contract as a connector's `__metadata__/connector_manifest.json`
//! with its `config_schema` (a JSON schema of environment variables). The integration
//! manager (xtm-composer) starts a contract's `container_image:container_version` with the
//! values entered as environment, plus `OPENCTI_URL`, `OPENCTI_TOKEN`, `CONNECTOR_ID`,
//! `CONNECTOR_NAME` and `CONNECTOR_TYPE`; it passes no command, hence one image each.
//!
//! Each contract lists the connector's keys by the name the drop-in reads (the official one
//! where there is one: `CONNECTOR_SCOPE`, `CONFIG_LIS_APIKEY_CTI`), typed from the key table,
//! with its default, and requires what the drop-in refuses to start without (found by
//! loading the drop-in with and without each key).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::config::{KeySpec, Kind, SectionSpec};
use crate::registry;

/// The catalog's id: any but the Filigran catalog's (`filigran-catalog-id`).
pub const CATALOG_ID: &str = "opencti-connectors-catalog";

/// Keys the platform sets itself (the contract must not offer them): the instance's id and
/// name, and the connector's enabling, which the image's mode implies.
const SET_BY_PLATFORM: &[&str] = &["connector.id", "connector.name", "enabled"];

/// The images' name before `-<connector>`, as the catalog is shipped (`catalog --image`).
pub const DEFAULT_IMAGE: &str = "opencti-connectors";
/// The images' tag, as the catalog is shipped (`catalog --version`).
pub const DEFAULT_VERSION: &str = "latest";

/// [`catalog`] as the `catalog` command prints it and the shipped file holds it.
pub fn text(image: &str, version: &str) -> String {
    // A map of plain JSON values always serialises.
    serde_json::to_string_pretty(&catalog(image, version)).unwrap_or_default()
}

/// The catalog of every connector's image, `<image>-<connector>:<version>`.
pub fn catalog(image: &str, version: &str) -> Value {
    let contracts: Vec<Value> = registry::specs()
        .into_iter()
        .map(|spec| contract(spec, image, version))
        .collect();
    json!({
        "id": CATALOG_ID,
        "name": "opencti-connectors",
        "description": "The opencti-connectors daemon in place of the official connector images, one image per connector.",
        "version": version,
        "contracts": contracts,
    })
}

/// One connector's contract.
fn contract(spec: &SectionSpec, image: &str, version: &str) -> Value {
    let official = crate::migrate::official(spec.section).map_or(spec.section, |o| o.image);
    let title = format!("{} (opencti-connectors)", spec.default_name);
    let description = format!(
        "The opencti-connectors daemon standing in for the official opencti/connector-{official} image: the same registration, queues, work messages and STIX ids, from the official image's settings (CONNECTOR_*, the connector's own names). It acks a request once its result is safe, retries what is transient and serves /healthz and /metrics."
    );
    json!({
        "title": title,
        "slug": format!("opencti-connectors-{}", spec.section),
        "description": description,
        "short_description": format!("{} by the opencti-connectors daemon, configured as the official image is.", spec.default_name),
        "use_cases": ["Other"],
        "solution_categories": [match spec.kind {
            crate::config::ConnectorKind::Import { .. } => "Threat Intelligence Feed",
            crate::config::ConnectorKind::Enrichment { .. } => "Enrichment & Reputation",
        }],
        "verified": false,
        "playbook_supported": matches!(spec.kind, crate::config::ConnectorKind::Enrichment { playbook_compatible: true, .. }),
        "manager_supported": true,
        "container_image": format!("{image}-{}", spec.section),
        "container_version": version,
        "container_type": spec.kind.connector_type(),
        "config_schema": config_schema(spec),
    })
}

/// The connector's settings as a JSON schema of environment variables.
fn config_schema(spec: &SectionSpec) -> Value {
    let table = super::table(spec);
    let prefix = format!("{}.", spec.section);
    let offered: Vec<&KeySpec> = table
        .iter()
        .filter(|k| {
            k.path
                .strip_prefix(&prefix)
                .is_some_and(|rest| !SET_BY_PLATFORM.contains(&rest))
        })
        .collect();
    let mut properties = Map::new();
    for key in &offered {
        properties.insert(name(key).to_string(), property(key));
    }
    let required: Vec<Value> = required(spec, &table, &offered)
        .into_iter()
        .map(|k| Value::String(name(k).to_string()))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("opencti-connectors-{}.schema.json", spec.section),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": true,
    })
}

/// The name a key is offered by: the official one where there is one (the table lists the
/// daemon's names first and the official ones after), else the daemon's.
fn name(key: &KeySpec) -> &str {
    key.env.last().map_or("", String::as_str)
}

/// The JSON schema of one key, from its kind and default. Only formats OpenCTI's validator
/// knows are used (`password`, `uri`, `duration`).
fn property(key: &KeySpec) -> Value {
    let mut p = Map::new();
    let (kind, default): (&str, Option<Value>) = match key.kind {
        Kind::Bool => (
            "boolean",
            crate::config::parse_bool(&key.default).map(Value::Bool),
        ),
        Kind::Int(range) => {
            p.insert(
                "minimum".into(),
                json!(if range.or_zero { 0 } else { range.min }),
            );
            p.insert("maximum".into(), json!(range.max));
            ("integer", key.default.parse::<i64>().ok().map(|n| json!(n)))
        }
        Kind::Float(range) => {
            p.insert(
                "minimum".into(),
                json!(if range.or_zero { 0.0 } else { range.min }),
            );
            p.insert("maximum".into(), json!(range.max));
            ("number", key.default.parse::<f64>().ok().map(|n| json!(n)))
        }
        Kind::Scope => {
            p.insert("items".into(), json!({"type": "string"}));
            let items: Vec<Value> = crate::config::Scope::parse(&key.default)
                .0
                .into_iter()
                .map(Value::String)
                .collect();
            ("array", (!items.is_empty()).then_some(Value::Array(items)))
        }
        Kind::Secret => {
            p.insert("format".into(), json!("password"));
            p.insert("writeOnly".into(), json!(true));
            ("string", None)
        }
        Kind::Url => {
            p.insert("format".into(), json!("uri"));
            ("string", text_default(key))
        }
        Kind::Duration(_) => {
            p.insert("format".into(), json!("duration"));
            ("string", text_default(key))
        }
        Kind::Tlp => {
            let choices: Vec<&str> = crate::stix::tlp::TLP_CHOICES.split(", ").collect();
            p.insert("enum".into(), json!(choices));
            ("string", text_default(key))
        }
        Kind::Str | Kind::Uuid => ("string", text_default(key)),
    };
    p.insert("type".into(), json!(kind));
    p.insert("description".into(), json!(key.doc));
    if let Some(default) = default {
        p.insert("default".into(), default);
    }
    Value::Object(p)
}

fn text_default(key: &KeySpec) -> Option<Value> {
    (!key.default.is_empty()).then(|| Value::String(key.default.clone()))
}

/// The offered keys the drop-in does not start without: with every key that has no default
/// set to a value it accepts, it loads; the required ones are what is left once each key the
/// drop-in loads without is left out.
fn required<'a>(
    spec: &SectionSpec,
    table: &[KeySpec],
    offered: &[&'a KeySpec],
) -> Vec<&'a KeySpec> {
    let mut full: HashMap<String, String> = HashMap::from([
        ("OPENCTI_URL".to_string(), "http://opencti:8080".to_string()),
        ("OPENCTI_TOKEN".to_string(), "token".to_string()),
    ]);
    if let Some(id) = table
        .iter()
        .find(|k| k.path == format!("{}.connector.id", spec.section))
    {
        full.insert(id.env[0].clone(), uuid::Uuid::nil().to_string());
    }
    // Loaded and built, as `check-config` does (some checks are the connector's build).
    let load = |env: &HashMap<String, String>| {
        super::from_sources(spec.section, None, env)
            .and_then(|d| registry::build_all(&d.config).map(|_| ()))
            .map_err(|e| e.to_string())
    };
    let loads = |env: &HashMap<String, String>| load(env).is_ok();
    // pycti's own settings (`<section>.connector.*`) are never required: only the id and
    // name are, and the platform sets those. Every other key without a default gets the
    // first candidate value that draws no error about it.
    let own = format!("{}.connector.", spec.section);
    for key in offered {
        if !key.default.is_empty() || key.path.starts_with(&own) {
            continue;
        }
        for value in candidates(key.kind) {
            let mut with = full.clone();
            with.insert(name(key).to_string(), value.to_string());
            // An error names the key, or quotes the value it refuses.
            let about_it = [format!("{} (", key.path), format!("`{value}`")];
            if load(&with)
                .err()
                .is_none_or(|e| !about_it.iter().any(|a| e.contains(a.as_str())))
            {
                full = with;
                break;
            }
        }
    }
    if !loads(&full) {
        // A value above is refused: requiring nothing is better than requiring a guess.
        return Vec::new();
    }
    // A minimal set: each key left out if the drop-in still loads without it, from the last
    // listed to the first, so that of alternatives (IVRE's base URL and its per-purpose
    // overrides) the first listed is the one required.
    let mut needed = full;
    for key in offered.iter().rev() {
        let mut without = needed.clone();
        if without.remove(name(key)).is_some() && loads(&without) {
            needed = without;
        }
    }
    offered
        .iter()
        .filter(|key| needed.contains_key(name(key)))
        .copied()
        .collect()
}

/// Values to try for a key with no default, by its kind (text may be a URL: IVRE's
/// `db_url_data` also takes `maxmind://`).
fn candidates(kind: Kind) -> &'static [&'static str] {
    const URL: &str = "https://upstream.example/";
    match kind {
        Kind::Secret | Kind::Str => &["set", URL],
        Kind::Url => &[URL],
        Kind::Tlp => &["TLP:AMBER"],
        Kind::Bool => &["true"],
        Kind::Uuid => &["00000000-0000-0000-0000-000000000000"],
        Kind::Int(_) | Kind::Float(_) | Kind::Duration(_) | Kind::Scope => &[],
    }
}
