//! The data the GraphQL operations exchange: what registration answers, what a ping sends,
//! the entity as read for an enrichment, a playbook step.

use serde::Deserialize;
use serde_json::Value;

use crate::config::Secret;

/// Broker details returned at registration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Connection {
    pub host: String,
    pub vhost: String,
    pub use_ssl: bool,
    pub port: u16,
    pub user: String,
    /// The broker password: Debug never shows it.
    pub pass: Secret,
}

/// Queue names returned at registration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QueueConfig {
    pub connection: Connection,
    pub listen: String,
    pub listen_routing: String,
    pub listen_exchange: String,
    pub push: String,
    pub push_routing: String,
    pub push_exchange: String,
}

/// `registerConnector`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Registration {
    pub id: String,
    pub connector_state: Option<String>,
    pub config: QueueConfig,
    pub connector_user_id: Option<String>,
}

/// The input of `registerConnector`: pycti 6.8.10's fields, plus 7.x's on a 7.x platform.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegisterInput {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub scope: Vec<String>,
    pub auto: bool,
    pub auto_update: bool,
    pub enrichment_resolution: String,
    pub only_contextual: bool,
    pub playbook_compatible: bool,
    pub listen_callback_uri: Option<String>,
    /// `version` and `slug` in the 7.x dialect; absent (not null) in 6.x, which refuses them.
    #[serde(flatten)]
    pub v7: Option<super::dialect::Register7x>,
}

/// `connectorInfo` of a ping.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct ConnectorInfo {
    pub run_and_terminate: bool,
    pub buffering: bool,
    pub queue_threshold: f64,
    pub queue_messages_size: f64,
    pub next_run_datetime: Option<String>,
    pub last_run_datetime: Option<String>,
}

/// The entity as read for an enrichment.
#[derive(Debug, Clone, Deserialize)]
pub struct EntityRead {
    pub id: String,
    pub standard_id: String,
    pub entity_type: String,
    #[serde(default)]
    pub parent_types: Vec<String>,
    #[serde(default, rename = "objectMarking")]
    pub object_marking: Vec<crate::stix::ObjectMarking>,
    #[serde(default)]
    pub observable_value: Option<String>,
    /// The entity's STIX 2.1 export, as the platform makes it now (a JSON string).
    #[serde(default, rename = "toStix")]
    pub to_stix: Option<String>,
}

impl EntityRead {
    /// The entity's current STIX export, when the platform gave one.
    pub fn stix(&self) -> Option<Value> {
        self.to_stix
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .filter(Value::is_object)
    }
}

/// A playbook step to answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlaybookStep {
    pub execution_id: String,
    pub event_id: String,
    pub execution_start: String,
    pub data_instance_id: String,
    pub playbook_id: String,
    pub previous_step_id: String,
    pub step_id: String,
    pub previous_bundle: String,
}
