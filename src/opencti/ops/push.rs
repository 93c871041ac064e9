//! What the connectors send: STIX bundles to the ingestion, a playbook step's result.

use serde_json::{Value, json};

use crate::opencti::escape::{push_escaped, push_json_string};

use crate::opencti::client::{OpenctiClient, OpenctiError};
use crate::opencti::types::*;

pub const STIX_BUNDLE_PUSH: &str = "mutation StixBundlePush($connectorId: String!, $bundle: String!, $work_id: String) { stixBundlePush(connectorId: $connectorId, bundle: $bundle, work_id: $work_id) }";

pub const PLAYBOOK_STEP_EXECUTION: &str = "mutation PlaybookStepExecution($execution_id: ID!, $event_id: ID!, $execution_start: DateTime!, $data_instance_id: ID!, $playbook_id: ID!, $previous_step_id: ID!, $step_id: ID!, $previous_bundle: String!, $bundle: String!) { playbookStepExecution(execution_id: $execution_id, event_id: $event_id, execution_start: $execution_start, data_instance_id: $data_instance_id, playbook_id: $playbook_id, previous_step_id: $previous_step_id, step_id: $step_id, previous_bundle: $previous_bundle, bundle: $bundle) }";

impl OpenctiClient {
    /// `stixBundlePush` of a bundle made of `objects` (each an object's JSON text): the
    /// request body is written at once, the bundle escaped straight into it.
    pub async fn stix_bundle_push_objects(
        &self,
        connector_id: &str,
        bundle_id: &str,
        objects: &[&str],
        work_id: Option<&str>,
    ) -> Result<(), OpenctiError> {
        let room: usize = objects.iter().map(|o| o.len() + o.len() / 4 + 1).sum();
        let mut body = Vec::with_capacity(room + 512);
        body.extend_from_slice(b"{\"query\":");
        push_json_string(&mut body, STIX_BUNDLE_PUSH);
        body.extend_from_slice(b",\"variables\":{\"connectorId\":");
        push_json_string(&mut body, connector_id);
        body.extend_from_slice(b",\"bundle\":\"");
        let head = format!(
            r#"{{"type":"bundle","id":{},"spec_version":"2.1","objects":["#,
            Value::from(bundle_id)
        );
        push_escaped(&mut body, &head);
        for (i, object) in objects.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            push_escaped(&mut body, object);
        }
        push_escaped(&mut body, "]}");
        body.extend_from_slice(b"\",\"work_id\":");
        match work_id {
            Some(w) => push_json_string(&mut body, w),
            None => body.extend_from_slice(b"null"),
        }
        body.extend_from_slice(b"}}");
        self.execute_body(body).await.map(drop)
    }

    pub async fn playbook_step_execution(
        &self,
        step: &PlaybookStep,
        bundle: &str,
    ) -> Result<(), OpenctiError> {
        let mut vars =
            serde_json::to_value(step).map_err(|e| OpenctiError::Decode(e.to_string()))?;
        vars["bundle"] = json!(bundle);
        self.execute(PLAYBOOK_STEP_EXECUTION, vars).await.map(drop)
    }
}
