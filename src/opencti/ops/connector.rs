//! The connector's own operations: reachability, the token's user, registration, pings, and what the platform stored of the connector (its state, schedule, push queue).

use serde_json::{Value, json};

use crate::opencti::client::{OpenctiClient, OpenctiError};
use crate::opencti::types::*;

pub const HEALTH_CHECK: &str = "query healthCheck { about { version } }";

pub const WHOAMI: &str = "query whoami { me { id name } }";

pub const REGISTER_CONNECTOR: &str = "mutation RegisterConnector($input: RegisterConnectorInput) { registerConnector(input: $input) { id connector_state config { connection { host vhost use_ssl port user pass } listen listen_routing listen_exchange push push_routing push_exchange } connector_user_id } }";

pub const PING_CONNECTOR: &str = "mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) { pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state } }";

pub const READ_SCHEDULE: &str = "query ConnectorSchedule($id: String!) { connector(id: $id) { id connector_state connector_info { last_run_datetime next_run_datetime } } }";

pub const READ_QUEUE_DETAILS: &str = "query GetConnector($id: String!) { connector(id: $id) { id connector_queue_details { messages_number messages_size } } }";

/// A connector's state and schedule as stored by the platform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredSchedule {
    /// The state's JSON text.
    pub state: Option<String>,
    pub last_run: Option<String>,
    pub next_run: Option<String>,
}

impl OpenctiClient {
    /// `about { version }`: reachability and token check. The version is recorded: it
    /// decides the dialect every later call speaks.
    pub async fn health_check(&self) -> Result<String, OpenctiError> {
        let data = self.execute(HEALTH_CHECK, json!({})).await?;
        let version = data
            .pointer("/about/version")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OpenctiError::Decode("about.version missing".into()))?;
        self.version.record(&version);
        Ok(version)
    }

    /// `me { name }`: the user the token belongs to.
    pub async fn whoami(&self) -> Result<String, OpenctiError> {
        let data = self.execute(WHOAMI, json!({})).await?;
        data.pointer("/me/name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OpenctiError::Decode("me.name missing".into()))
    }

    pub async fn register_connector(
        &self,
        input: &RegisterInput,
    ) -> Result<Registration, OpenctiError> {
        self.field(
            REGISTER_CONNECTOR,
            json!({ "input": input }),
            "registerConnector",
        )
        .await
    }

    /// Pings with the state (JSON text, `"null"` when empty); returns the stored state.
    pub async fn ping_connector(
        &self,
        id: &str,
        state: &str,
        info: &ConnectorInfo,
    ) -> Result<Option<String>, OpenctiError> {
        let v: Value = self
            .field(
                PING_CONNECTOR,
                json!({ "id": id, "state": state, "connectorInfo": info }),
                "pingConnector",
            )
            .await?;
        Ok(v.get("connector_state")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// The size of the connector's push queue, in bytes (`None`: the platform does not know
    /// the connector).
    pub async fn queue_size(&self, connector_id: &str) -> Result<Option<f64>, OpenctiError> {
        let connector: Option<Value> = self
            .field(
                READ_QUEUE_DETAILS,
                json!({ "id": connector_id }),
                "connector",
            )
            .await?;
        Ok(connector.and_then(|c| {
            c.pointer("/connector_queue_details/messages_size")?
                .as_f64()
        }))
    }

    /// The connector's state and schedule as its last pings stored them (`None`: the platform
    /// does not know the connector). A replica taking over the import lock reads them.
    pub async fn connector_schedule(
        &self,
        connector_id: &str,
    ) -> Result<Option<StoredSchedule>, OpenctiError> {
        let connector: Option<Value> = self
            .field(READ_SCHEDULE, json!({ "id": connector_id }), "connector")
            .await?;
        Ok(connector.map(|c| {
            let text = |pointer: &str| {
                c.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            StoredSchedule {
                state: text("/connector_state"),
                last_run: text("/connector_info/last_run_datetime"),
                next_run: text("/connector_info/next_run_datetime"),
            }
        }))
    }
}
