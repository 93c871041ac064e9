//! Works: a run's or a message's progress record in the platform (created, pinged, received, expectations, processed).

use serde_json::{Value, json};

use crate::opencti::dialect::{Dialect, WORK_ADD_MULTIPART, WORK_NOT_ALIVE};

use crate::opencti::client::{OpenctiClient, OpenctiError};

pub const WORK_ADD: &str = "mutation workAdd($connectorId: String!, $friendlyName: String) { workAdd(connectorId: $connectorId, friendlyName: $friendlyName) { id } }";

pub const WORK_TO_RECEIVED: &str = "mutation workToReceived($id: ID!, $message: String) { workEdit(id: $id) { toReceived(message: $message) } }";

pub const WORK_TO_PROCESSED: &str = "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) { workEdit(id: $id) { toProcessed(message: $message, inError: $inError) } }";

pub const ADD_EXPECTATIONS: &str = "mutation addExpectations($id: ID!, $expectations: Int) { workEdit(id: $id) { addExpectations(expectations: $expectations) } }";

pub const WORK_PING: &str = "mutation pingWork($id: ID!) { workEdit(id: $id) { ping } }";

impl OpenctiClient {
    /// Creates a work. On 7.x it is created multi-part when `multi_part` (it then completes
    /// only on its `toProcessed`); 6.x knows no such argument.
    pub async fn work_add(
        &self,
        connector_id: &str,
        friendly_name: &str,
        multi_part: bool,
    ) -> Result<String, OpenctiError> {
        let (query, variables) = match self.dialect() {
            Dialect::V6 => (
                WORK_ADD,
                json!({ "connectorId": connector_id, "friendlyName": friendly_name }),
            ),
            Dialect::V7 => (
                WORK_ADD_MULTIPART,
                json!({ "connectorId": connector_id, "friendlyName": friendly_name, "isMultiPartWork": multi_part }),
            ),
        };
        let v: Value = self.field(query, variables, "workAdd").await?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OpenctiError::Decode("workAdd.id missing".into()))
    }

    /// Keeps a long-running work alive.
    pub async fn work_ping(&self, work_id: &str) -> Result<(), OpenctiError> {
        self.execute(WORK_PING, json!({ "id": work_id }))
            .await
            .map(drop)
    }

    pub async fn work_to_received(&self, work_id: &str, message: &str) -> Result<(), OpenctiError> {
        self.execute(
            WORK_TO_RECEIVED,
            json!({ "id": work_id, "message": message }),
        )
        .await
        .map(drop)
    }

    pub async fn work_to_processed(
        &self,
        work_id: &str,
        message: &str,
        in_error: bool,
    ) -> Result<(), OpenctiError> {
        self.execute(
            WORK_TO_PROCESSED,
            json!({ "id": work_id, "message": message, "inError": in_error }),
        )
        .await
        .map(drop)
    }

    /// Adds expected bundles to a work; `Ok(false)` when a 7.x platform answers that the
    /// work no longer exists (`WORK_NOT_ALIVE`), which pycti 7 takes as "the work is gone"
    /// and goes on. On 6.x every error is an error, as today.
    pub async fn add_expectations(
        &self,
        work_id: &str,
        expectations: usize,
    ) -> Result<bool, OpenctiError> {
        let added = self
            .execute(
                ADD_EXPECTATIONS,
                json!({ "id": work_id, "expectations": expectations }),
            )
            .await;
        match added {
            Ok(_) => Ok(true),
            Err(OpenctiError::GraphQl { name, .. })
                if name == WORK_NOT_ALIVE && self.dialect() == Dialect::V7 =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}
