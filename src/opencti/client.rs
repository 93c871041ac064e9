//! The one GraphQL client all connectors share. Every operation text is a constant listed
//! in [`OPERATIONS`] (the 7.x variants in [`super::dialect`]), so a test validates each
//! against the platform schema of each version. The client records the platform version
//! each `about` answers and speaks the matching [`Dialect`].

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Secret;
use crate::http::UpstreamError;

use super::dialect::{Dialect, VersionCell, WORK_ADD_MULTIPART, WORK_NOT_ALIVE};
pub use super::error::OpenctiError;
use super::escape::push_escaped;
pub use super::escape::push_json_string;

pub use super::types::{
    Connection, ConnectorInfo, EntityRead, PlaybookStep, QueueConfig, RegisterInput, Registration,
};

/// GraphQL answers are read up to this size unless `opencti.max_answer_bytes` says.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// How long one GraphQL call may take unless `opencti.request_timeout` says.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

pub const HEALTH_CHECK: &str = "query healthCheck { about { version } }";

pub const WHOAMI: &str = "query whoami { me { id name } }";

pub const REGISTER_CONNECTOR: &str = "mutation RegisterConnector($input: RegisterConnectorInput) { registerConnector(input: $input) { id connector_state config { connection { host vhost use_ssl port user pass } listen listen_routing listen_exchange push push_routing push_exchange } connector_user_id } }";

pub const PING_CONNECTOR: &str = "mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) { pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state } }";

pub const WORK_ADD: &str = "mutation workAdd($connectorId: String!, $friendlyName: String) { workAdd(connectorId: $connectorId, friendlyName: $friendlyName) { id } }";

pub const WORK_TO_RECEIVED: &str = "mutation workToReceived($id: ID!, $message: String) { workEdit(id: $id) { toReceived(message: $message) } }";

pub const WORK_TO_PROCESSED: &str = "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) { workEdit(id: $id) { toProcessed(message: $message, inError: $inError) } }";

pub const ADD_EXPECTATIONS: &str = "mutation addExpectations($id: ID!, $expectations: Int) { workEdit(id: $id) { addExpectations(expectations: $expectations) } }";

pub const READ_ENTITY: &str = "query StixCoreObject($id: String!) { stixCoreObject(id: $id) { id standard_id entity_type parent_types objectMarking { id standard_id definition_type definition x_opencti_order } toStix ... on StixCyberObservable { observable_value } } }";

pub const READ_MARKING: &str = "query MarkingDefinition($id: String!) { markingDefinition(id: $id) { id standard_id definition_type definition x_opencti_order } }";

pub const READ_SCHEDULE: &str = "query ConnectorSchedule($id: String!) { connector(id: $id) { id connector_state connector_info { last_run_datetime next_run_datetime } } }";

pub const READ_QUEUE_DETAILS: &str = "query GetConnector($id: String!) { connector(id: $id) { id connector_queue_details { messages_number messages_size } } }";

pub const WORK_PING: &str = "mutation pingWork($id: ID!) { workEdit(id: $id) { ping } }";

pub const STIX_BUNDLE_PUSH: &str = "mutation StixBundlePush($connectorId: String!, $bundle: String!, $work_id: String) { stixBundlePush(connectorId: $connectorId, bundle: $bundle, work_id: $work_id) }";

pub const PLAYBOOK_STEP_EXECUTION: &str = "mutation PlaybookStepExecution($execution_id: ID!, $event_id: ID!, $execution_start: DateTime!, $data_instance_id: ID!, $playbook_id: ID!, $previous_step_id: ID!, $step_id: ID!, $previous_bundle: String!, $bundle: String!) { playbookStepExecution(execution_id: $execution_id, event_id: $event_id, execution_start: $execution_start, data_instance_id: $data_instance_id, playbook_id: $playbook_id, previous_step_id: $previous_step_id, step_id: $step_id, previous_bundle: $previous_bundle, bundle: $bundle) }";

/// Every operation text the client can send.
pub const OPERATIONS: &[&str] = &[
    HEALTH_CHECK,
    WHOAMI,
    REGISTER_CONNECTOR,
    PING_CONNECTOR,
    WORK_ADD,
    WORK_TO_RECEIVED,
    WORK_TO_PROCESSED,
    ADD_EXPECTATIONS,
    READ_ENTITY,
    READ_MARKING,
    READ_QUEUE_DETAILS,
    READ_SCHEDULE,
    WORK_PING,
    STIX_BUNDLE_PUSH,
    PLAYBOOK_STEP_EXECUTION,
];

/// A connector's state and schedule as stored by the platform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredSchedule {
    /// The state's JSON text.
    pub state: Option<String>,
    pub last_run: Option<String>,
    pub next_run: Option<String>,
}

/// The shared GraphQL client. Cheap to clone.
#[derive(Clone)]
pub struct OpenctiClient {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    draft_id: Option<String>,
    /// Answers larger than this are refused.
    max_answer: usize,
    /// How long one call may take.
    timeout: Duration,
    /// The platform version last read from `about` (shared by every clone).
    version: Arc<VersionCell>,
}

impl std::fmt::Debug for OpenctiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenctiClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OpenctiClient {
    /// A client for `<url>/graphql`.
    pub fn new(url: &str, token: Secret, ssl_verify: bool) -> reqwest::Result<Self> {
        Self::with_egress(url, token, ssl_verify, None)
    }

    /// A client for `<url>/graphql` with `egress`'s trust and proxies.
    pub fn with_egress(
        url: &str,
        token: Secret,
        ssl_verify: bool,
        egress: Option<&crate::http::Egress>,
    ) -> reqwest::Result<Self> {
        Self::with_timeout(url, token, ssl_verify, egress, DEFAULT_REQUEST_TIMEOUT)
    }

    /// [`OpenctiClient::with_egress`] whose calls each give up after `timeout`.
    pub fn with_timeout(
        url: &str,
        token: Secret,
        ssl_verify: bool,
        egress: Option<&crate::http::Egress>,
        timeout: Duration,
    ) -> reqwest::Result<Self> {
        let http = crate::http::builder(timeout, egress)
            .danger_accept_invalid_certs(!ssl_verify)
            .build()?;
        Ok(OpenctiClient {
            http,
            endpoint: format!("{}/graphql", url.trim_end_matches('/')),
            token,
            draft_id: None,
            max_answer: DEFAULT_MAX_ANSWER_BYTES,
            timeout,
            version: Arc::default(),
        })
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The platform version last read from `about`, if any.
    pub fn platform_version(&self) -> Option<String> {
        self.version.get()
    }

    /// The dialect spoken now: from the version last read, 6.x until one is.
    pub fn dialect(&self) -> Dialect {
        self.version.dialect()
    }

    /// The dialect, reading `about` first when no version is known yet (a daemon started
    /// while the platform was down). A failed read leaves 6.x: the caller's own call will
    /// meet the same failure and retry.
    pub async fn read_dialect(&self) -> Dialect {
        if self.platform_version().is_none() {
            let _ = self.health_check().await;
        }
        self.dialect()
    }

    /// The same client refusing answers larger than `bytes`.
    pub fn with_max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// The same client acting inside a draft workspace (`opencti-draft-id`).
    pub fn in_draft(&self, draft_id: Option<&str>) -> Self {
        let mut c = self.clone();
        c.draft_id = draft_id.filter(|d| !d.is_empty()).map(str::to_string);
        c
    }

    /// Sends one operation and returns `data`; `errors` in a 200 answer are errors.
    pub async fn execute(&self, query: &str, variables: Value) -> Result<Value, OpenctiError> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))
            .map_err(|e| OpenctiError::Request(e.to_string()))?;
        self.execute_body(body).await
    }

    /// Sends one operation's JSON body (`{"query": …, "variables": …}`) and returns `data`.
    async fn execute_body(&self, body: Vec<u8>) -> Result<Value, OpenctiError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(draft) = &self.draft_id {
            request = request.header("opencti-draft-id", draft);
        }
        let response = request.send().await.map_err(|e| {
            let (builder, connect) = (e.is_builder(), e.is_connect());
            let text = crate::http::describe(&e.without_url());
            if builder {
                OpenctiError::Request(text)
            } else if connect {
                OpenctiError::Unreachable(text)
            } else {
                OpenctiError::Transport(text)
            }
        })?;
        let status = response.status();
        let text = crate::http::text_capped(response, self.max_answer, crate::memory::Weight::Tree)
            .await
            .map_err(|e| match e {
                UpstreamError::Transport(t) => OpenctiError::Transport(t),
                other => OpenctiError::Decode(other.to_string()),
            })?;
        if !status.is_success() {
            return Err(OpenctiError::Http {
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        let mut body: Value = serde_json::from_str(&text)
            .map_err(|e| OpenctiError::Decode(format!("not JSON: {e}")))?;
        if let Some(first) = body
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            let message = first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string();
            let name = first
                .get("name")
                .or_else(|| first.pointer("/extensions/code"))
                .and_then(Value::as_str)
                .unwrap_or("ERROR")
                .to_string();
            return Err(OpenctiError::GraphQl { name, message });
        }
        Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    async fn field<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Result<T, OpenctiError> {
        let mut data = self.execute(query, variables).await?;
        let value = data.get_mut(field).map(Value::take).unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| OpenctiError::Decode(format!("{field}: {e}")))
    }

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

    /// A marking definition by id (a playbook bundle's marking that is no static TLP).
    pub async fn read_marking(
        &self,
        id: &str,
    ) -> Result<Option<crate::stix::ObjectMarking>, OpenctiError> {
        self.field(READ_MARKING, json!({ "id": id }), "markingDefinition")
            .await
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

    /// Reads the entity (access check and markings); `None` when the platform returns null.
    pub async fn read_entity(&self, id: &str) -> Result<Option<EntityRead>, OpenctiError> {
        self.field(READ_ENTITY, json!({ "id": id }), "stixCoreObject")
            .await
    }

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
