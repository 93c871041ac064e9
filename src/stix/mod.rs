//! STIX 2.1 objects the connectors emit, their deterministic ids and TLP markings.
//!
//! Objects are built with small typed builders and handed around as `serde_json::Value`,
//! because enrichment bundles also carry objects the platform or an upstream API wrote
//! (re-emitted verbatim).

pub mod canonical;
pub mod ids;
pub mod tlp;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

pub use tlp::{ObjectMarking, Tlp, check_max_tlp};

/// STIX timestamp with millisecond precision, as the platform writes them.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One second after `t` (STIX needs stop_time > start_time), saturating at the end of
/// time instead of panicking on a hostile timestamp.
pub fn one_second_after(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    t.checked_add_signed(chrono::Duration::seconds(1))
        .unwrap_or(t)
}

/// The current time as a STIX timestamp.
pub fn now() -> String {
    timestamp(Utc::now())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A value-keyed Cyber-observable (`ipv4-addr`, `domain-name`, `email-addr`, ...).
#[derive(Debug, Clone, Serialize)]
pub struct Observable {
    #[serde(rename = "type")]
    pub stix_type: String,
    pub spec_version: &'static str,
    pub id: String,
    pub value: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_score: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_created_by_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_main_observable_type: Option<String>,
    /// OpenCTI's custom property for an observable's references.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub x_opencti_external_references: Vec<ExternalReference>,
}

impl Observable {
    /// A new observable of `stix_type` with its deterministic id.
    pub fn new(stix_type: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        Observable {
            stix_type: stix_type.to_string(),
            spec_version: "2.1",
            id: ids::value_observable_id(stix_type, &value),
            value,
            object_marking_refs: Vec::new(),
            labels: None,
            x_opencti_score: None,
            x_opencti_description: None,
            x_opencti_created_by_ref: None,
            x_opencti_main_observable_type: None,
            x_opencti_external_references: Vec::new(),
        }
    }
}

/// An `autonomous-system` observable.
#[derive(Debug, Clone, Serialize)]
pub struct AutonomousSystem {
    #[serde(rename = "type")]
    pub stix_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    pub number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
}

impl AutonomousSystem {
    pub fn new(number: u64, name: Option<String>) -> Self {
        AutonomousSystem {
            stix_type: "autonomous-system",
            spec_version: "2.1",
            id: ids::autonomous_system_id(number),
            number,
            name,
            object_marking_refs: Vec::new(),
        }
    }
}

/// A `location` SDO (Country, City, Region, ...).
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    #[serde(rename = "type")]
    pub stix_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    pub created: String,
    pub modified: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_aliases: Option<Vec<String>>,
    pub x_opencti_location_type: String,
}

impl Location {
    pub fn new(name: impl Into<String>, location_type: &str, created: &str) -> Self {
        let name = name.into();
        Location {
            stix_type: "location",
            spec_version: "2.1",
            id: ids::location_id(&name, location_type, None, None),
            created: created.to_string(),
            modified: created.to_string(),
            name,
            latitude: None,
            longitude: None,
            country: None,
            created_by_ref: None,
            object_marking_refs: Vec::new(),
            x_opencti_aliases: None,
            x_opencti_location_type: location_type.to_string(),
        }
    }
}

/// An `identity` SDO (connector authors).
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    #[serde(rename = "type")]
    pub stix_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    pub created: String,
    pub modified: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub identity_class: String,
}

/// A connector's author organisation, built once with the connector. Its objects carry the
/// build time, or the time of the request for connectors whose reference makes the author
/// per request ([`Author::object_at`]).
#[derive(Debug, Clone)]
pub struct Author {
    identity: Identity,
}

impl Author {
    pub fn organization(name: &str, description: Option<&str>) -> Self {
        Author {
            identity: Identity::organization(name, description, &now()),
        }
    }

    /// The identity's deterministic id.
    pub fn id(&self) -> &str {
        &self.identity.id
    }

    /// The identity object as built.
    pub fn object(&self) -> Value {
        to_object(&self.identity)
    }

    /// The identity object created and modified at `now`.
    pub fn object_at(&self, now: &str) -> Value {
        let mut identity = self.identity.clone();
        identity.created = now.to_string();
        identity.modified = now.to_string();
        to_object(&identity)
    }
}

/// An external reference, as objects carry it in `external_references`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalReference {
    pub source_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Identity {
    pub fn organization(name: &str, description: Option<&str>, created: &str) -> Self {
        Identity {
            stix_type: "identity",
            spec_version: "2.1",
            id: ids::identity_id(name, "organization"),
            created: created.to_string(),
            modified: created.to_string(),
            name: name.to_string(),
            description: description.map(str::to_string),
            identity_class: "organization".to_string(),
        }
    }
}

/// An `indicator` SDO with a STIX pattern.
#[derive(Debug, Clone, Serialize)]
pub struct Indicator {
    #[serde(rename = "type")]
    pub stix_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    pub created: String,
    pub modified: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub pattern: String,
    pub pattern_type: &'static str,
    pub valid_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_score: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_opencti_main_observable_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReference>,
}

impl Indicator {
    pub fn new(name: impl Into<String>, pattern: impl Into<String>, created: &str) -> Self {
        let pattern = pattern.into();
        Indicator {
            stix_type: "indicator",
            spec_version: "2.1",
            id: ids::indicator_id(&pattern),
            created: created.to_string(),
            modified: created.to_string(),
            name: name.into(),
            description: None,
            pattern,
            pattern_type: "stix",
            valid_from: created.to_string(),
            created_by_ref: None,
            object_marking_refs: Vec::new(),
            labels: None,
            x_opencti_score: None,
            x_opencti_main_observable_type: None,
            external_references: Vec::new(),
        }
    }
}

/// A `relationship` SRO.
#[derive(Debug, Clone, Serialize)]
pub struct Relationship {
    #[serde(rename = "type")]
    pub stix_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<String>,
    pub created: String,
    pub modified: String,
    pub relationship_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source_ref: String,
    pub target_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub x_opencti_ignore_dates: bool,
}

impl Relationship {
    /// A relationship whose id uses only type, source and target.
    pub fn new(relationship_type: &str, source_ref: &str, target_ref: &str, created: &str) -> Self {
        Relationship {
            stix_type: "relationship",
            spec_version: "2.1",
            id: ids::relationship_id(relationship_type, source_ref, target_ref, None, None),
            created_by_ref: None,
            created: created.to_string(),
            modified: created.to_string(),
            relationship_type: relationship_type.to_string(),
            description: None,
            source_ref: source_ref.to_string(),
            target_ref: target_ref.to_string(),
            start_time: None,
            stop_time: None,
            object_marking_refs: Vec::new(),
            x_opencti_ignore_dates: false,
        }
    }
}

/// Serialises a builder into a bundle object.
pub fn to_object<T: Serialize>(object: &T) -> Value {
    // Serialising these plain structs cannot fail: every field is a string, number or list.
    serde_json::to_value(object).expect("STIX builder serialises")
}

/// A STIX 2.1 bundle with a random id, as `stix2_create_bundle` makes it.
pub fn bundle(objects: Vec<Value>) -> Value {
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v4()),
        "spec_version": "2.1",
        "objects": objects,
    })
}
