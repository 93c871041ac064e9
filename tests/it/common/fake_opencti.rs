//! A fake OpenCTI: answers as a given platform version (`about`), only operations that
//! validate against that version's schema (6.8.10's or 7.x's), with a `registerConnector`
//! input that has no field the schema does not know; records every call, and (like the platform) declares each connector's queues on the real
//! RabbitMQ at registration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::Selection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{Value, json};

pub const TOKEN: &str = "fake-opencti-token";
pub const BROKER_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const CONNECTOR_EXCHANGE: &str = "amqp.connector.exchange";
pub const WORKER_EXCHANGE: &str = "amqp.worker.exchange";
pub const CONNECTOR_USER_ID: &str = "88ec0c6a-13ce-5e39-b486-354fe4a7084f";
/// The version a fake answers unless told otherwise.
pub const VERSION_6: &str = "6.8.10";
/// A 7.x platform's version (calendar numbering).
#[allow(dead_code)]
pub const VERSION_7: &str = "7.261026.0";

/// One recorded operation: the root field (`workEdit.toProcessed` for work edits).
#[derive(Debug, Clone)]
pub struct Call {
    pub field: String,
    pub variables: Value,
    pub draft_id: Option<String>,
    /// When it was answered (the end-to-end benchmark's latencies).
    #[allow(dead_code)]
    pub at: std::time::Instant,
    /// The replica that called, for a daemon pointed at `<url>/<replica>` ([`FakeOpencti::replica_url`]).
    #[allow(dead_code)]
    pub replica: Option<String>,
    /// The id a `workAdd` answered.
    #[allow(dead_code)]
    pub work_id: Option<String>,
}

impl Call {
    /// Whether this closes (`toProcessed`) a work whose id starts with `prefix`.
    #[allow(dead_code)]
    pub fn closes_work(&self, prefix: &str) -> bool {
        self.field == "workEdit.toProcessed"
            && self.variables["id"]
                .as_str()
                .is_some_and(|w| w.starts_with(prefix))
    }
}

/// How a platform that is down answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Outage {
    /// An ingress before a restarting platform: HTTP 503 to everything.
    Unavailable,
    /// A platform that accepts connections and never answers.
    Hold,
}

/// What the fake knows and saw.
pub struct FakeState {
    pub calls: Vec<Call>,
    /// Operation texts that did not validate (each also answered 400).
    pub invalid: Vec<String>,
    /// `stixCoreObject` answers by id.
    pub entities: HashMap<String, Value>,
    /// The STIX export (`toStix`) of entities by id.
    pub stix: HashMap<String, Value>,
    /// `markingDefinition` answers by id.
    pub markings: HashMap<String, Value>,
    /// Stored connector states by connector id.
    pub states: HashMap<String, Option<String>>,
    /// The last `connectorInfo` pinged, by connector id.
    pub infos: HashMap<String, Value>,
    /// Connector ids whose state the "UI" reset.
    pub reset: Vec<String>,
    /// Every User-Agent the fake was called with.
    pub user_agents: std::collections::BTreeSet<String>,
    /// The size of each connector's push queue, in bytes (`connector_queue_details`).
    pub queue_bytes: HashMap<String, f64>,
    /// Connector ids whose next ping is answered with this (older) state.
    pub lagging: HashMap<String, String>,
    /// The next N `stixBundlePush` calls answer 503...
    pub fail_pushes: usize,
    /// ...after this many more have succeeded.
    pub fail_pushes_after: usize,
    /// Registration answers a push routing key no queue is bound to.
    pub unbound_push: bool,
    /// Operations (root fields) that are recorded and then never answered.
    pub hang: Vec<String>,
    /// The whole platform is down: every operation, `about` included, is answered so.
    pub outage: Option<Outage>,
    /// Operations (root fields) answered with a permission error, as an older or locked-down
    /// platform would.
    pub refuse: Vec<String>,
    /// `false`: a pushed bundle is recorded as its length only (benchmarks push hundreds of MB).
    pub keep_bundles: bool,
    /// The version `about` answers; operations are validated against its schema.
    pub version: String,
    /// Every work is gone: `addExpectations` is answered `WORK_NOT_ALIVE`, as a 7.x platform
    /// answers for a deleted work.
    pub dead_works: bool,
    /// The root field of each operation text already validated, by version and text
    /// (parsing once per text keeps the fake answering in microseconds).
    validated: HashMap<(String, String), String>,
    works: usize,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            calls: Vec::new(),
            invalid: Vec::new(),
            entities: HashMap::new(),
            stix: HashMap::new(),
            markings: HashMap::new(),
            states: HashMap::new(),
            infos: HashMap::new(),
            reset: Vec::new(),
            user_agents: Default::default(),
            queue_bytes: HashMap::new(),
            lagging: HashMap::new(),
            fail_pushes: 0,
            fail_pushes_after: 0,
            unbound_push: false,
            hang: Vec::new(),
            outage: None,
            refuse: Vec::new(),
            keep_bundles: true,
            version: VERSION_6.into(),
            dead_works: false,
            validated: HashMap::new(),
            works: 0,
        }
    }
}

/// The running fake.
#[derive(Clone)]
pub struct FakeOpencti {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    channel: lapin::Channel,
    _connection: Arc<lapin::Connection>,
    /// Deletes the declared queues when the last clone goes (test end, panics included).
    _teardown: Arc<Teardown>,
}

/// The connector ids whose queues the fake declared; dropped with the last fake clone.
#[derive(Default)]
struct Teardown {
    connector_ids: Mutex<Vec<String>>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let ids =
            std::mem::take(&mut *self.connector_ids.lock().unwrap_or_else(|e| e.into_inner()));
        if ids.is_empty() {
            return;
        }
        // Drop cannot await, and may run inside the test's runtime while it shuts down (or
        // unwinds from a failed assertion): delete from a thread with a runtime of its own.
        let deleting = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let connect =
                    lapin::Connection::connect(BROKER_URL, lapin::ConnectionProperties::default());
                let Ok(Ok(connection)) =
                    tokio::time::timeout(Duration::from_secs(5), connect).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for id in &ids {
                    for q in [FakeOpencti::listen_queue(id), FakeOpencti::push_queue(id)] {
                        let _ = channel
                            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                }
                let _ = connection.close(200, "test teardown".into()).await;
            });
        });
        let _ = deleting.join();
    }
}

/// Connects to the test broker, failing loudly when it does not answer.
pub async fn broker() -> lapin::Connection {
    match lapin::Connection::connect(BROKER_URL, lapin::ConnectionProperties::default()).await {
        Ok(c) => c,
        Err(e) => panic!(
            "RabbitMQ must answer on 127.0.0.1:5672 (guest/guest) for this test: {e}. Start it with `rabbitmq-server -detached`."
        ),
    }
}

impl FakeOpencti {
    /// Starts the fake on an ephemeral port.
    pub async fn start() -> FakeOpencti {
        let connection = broker().await;
        let channel = connection.create_channel().await.expect("channel");
        for exchange in [CONNECTOR_EXCHANGE, WORKER_EXCHANGE] {
            channel
                .exchange_declare(
                    exchange.into(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("exchange");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeOpencti {
            url,
            state: Arc::new(Mutex::new(FakeState::default())),
            channel,
            _connection: Arc::new(connection),
            _teardown: Arc::default(),
        };
        let app = Router::new()
            .route("/graphql", post(graphql))
            .route("/{replica}/graphql", post(graphql_replica))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Starts a fake answering as OpenCTI `version`.
    #[allow(dead_code)]
    pub async fn start_as(version: &str) -> FakeOpencti {
        let fake = Self::start().await;
        fake.state.lock().unwrap().version = version.to_string();
        fake
    }

    /// The URL a daemon replica named `replica` uses: its calls are recorded with its name.
    #[allow(dead_code)]
    pub fn replica_url(&self, replica: &str) -> String {
        format!("{}/{replica}", self.url)
    }

    pub fn listen_queue(connector_id: &str) -> String {
        format!("listen_{connector_id}")
    }

    pub fn push_queue(connector_id: &str) -> String {
        format!("push_{connector_id}")
    }

    /// Declares and binds a connector's queues as the platform does (they expire when idle).
    pub async fn declare_queues(&self, connector_id: &str) {
        {
            let mut ids = self._teardown.connector_ids.lock().unwrap();
            if !ids.iter().any(|i| i == connector_id) {
                ids.push(connector_id.to_string());
            }
        }
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongUInt(600_000));
        for (queue, exchange, routing) in [
            (
                Self::listen_queue(connector_id),
                CONNECTOR_EXCHANGE,
                format!("listen_routing_{connector_id}"),
            ),
            (
                Self::push_queue(connector_id),
                WORKER_EXCHANGE,
                format!("push_routing_{connector_id}"),
            ),
        ] {
            self.channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    args.clone(),
                )
                .await
                .expect("queue_declare");
            self.channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.into(),
                    routing.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("queue_bind");
        }
    }

    /// Publishes a listen message for a connector, as the platform does.
    pub async fn publish_listen(&self, connector_id: &str, body: &[u8]) {
        let routing = format!("listen_routing_{connector_id}");
        self.channel
            .basic_publish(
                CONNECTOR_EXCHANGE.into(),
                routing.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    /// Messages ready in a queue (passive declare).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        self.queue_info(queue)
            .await
            .map_or(0, |q| q.message_count())
    }

    /// How many consumers a queue has.
    #[allow(dead_code)]
    pub async fn queue_consumers(&self, queue: &str) -> u32 {
        self.queue_info(queue)
            .await
            .map_or(0, |q| q.consumer_count())
    }

    /// A passive declare, on a channel of its own: one of a queue not declared yet closes
    /// its channel, which must not be the shared one.
    async fn queue_info(&self, queue: &str) -> Option<lapin::Queue> {
        let channel = self._connection.create_channel().await.ok()?;
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .ok();
        let _ = channel.close(200, "done".into()).await;
        declared
    }

    /// Fetches every ready message of a queue.
    pub async fn drain_queue(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(Some(m)) = self
            .channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
        {
            out.push(m.delivery.data.clone());
        }
        out
    }

    pub fn calls(&self, field: &str) -> Vec<Call> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.field == field)
            .cloned()
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Waits until `cond` holds on the recorded state (10 s at most).
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&FakeState) -> bool) {
        self.wait_for_long(what, Duration::from_secs(10), cond)
            .await
    }

    /// [`FakeOpencti::wait_for`], `limit` at most.
    pub async fn wait_for_long(
        &self,
        what: &str,
        limit: Duration,
        cond: impl Fn(&FakeState) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if cond(&self.state.lock().unwrap()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let calls: Vec<String> = self
                    .all_calls()
                    .iter()
                    .map(|c| format!("{} {}", c.field, c.variables))
                    .collect();
                panic!(
                    "timed out waiting for {what}; calls so far:\n{}",
                    calls.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn count(&self, field: &str) -> usize {
        self.calls(field).len()
    }

    /// The variables of the `toProcessed` call that closed `work_id`.
    pub fn processed(&self, work_id: &str) -> Value {
        self.calls("workEdit.toProcessed")
            .into_iter()
            .find(|c| c.variables["id"] == work_id)
            .unwrap_or_else(|| panic!("{work_id} was never processed"))
            .variables
    }
}

impl FakeState {
    pub fn count(&self, field: &str) -> usize {
        self.calls.iter().filter(|c| c.field == field).count()
    }
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "errors": [{ "message": message, "name": "VALIDATION_ERROR" }] })),
    )
}

/// The fields of `input` (the JSON of input type `type_name`) that `schema` does not define
/// for that type: a platform refuses the whole operation for any of them.
fn unknown_input_fields(
    schema: &apollo_compiler::Schema,
    type_name: &str,
    input: &Value,
) -> Vec<String> {
    let Some(apollo_compiler::schema::ExtendedType::InputObject(def)) = schema.types.get(type_name)
    else {
        return vec![format!("{type_name} (no such input type)")];
    };
    input
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !def.fields.keys().any(|f| f.as_str() == k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The root field of a valid operation (`workEdit.<sub>` for work edits), or the answer.
#[allow(clippy::type_complexity)]
fn root_field(
    schema: &apollo_compiler::validation::Valid<apollo_compiler::Schema>,
    query: &str,
) -> Result<String, (StatusCode, &'static str, Option<String>)> {
    let doc = ExecutableDocument::parse_and_validate(schema, query, "op.graphql").map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            "operation does not validate against the schema",
            Some(format!("{query}\n{}", e.errors)),
        )
    })?;
    let Ok(op) = doc.operations.get(None) else {
        return Err((StatusCode::BAD_REQUEST, "one operation expected", None));
    };
    let root = op.selection_set.selections.iter().find_map(|s| match s {
        Selection::Field(f) => Some(f),
        _ => None,
    });
    let Some(root) = root else {
        return Err((StatusCode::BAD_REQUEST, "no field", None));
    };
    let mut field = root.name.to_string();
    if field == "workEdit"
        && let Some(Selection::Field(sub)) = root.selection_set.selections.first()
    {
        field = format!("workEdit.{}", sub.name);
    }
    Ok(field)
}

async fn graphql(
    State(fake): State<FakeOpencti>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    answer(fake, headers, body, None).await
}

async fn graphql_replica(
    State(fake): State<FakeOpencti>,
    Path(replica): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    answer(fake, headers, body, Some(replica)).await
}

async fn answer(
    fake: FakeOpencti,
    headers: HeaderMap,
    body: Value,
    replica: Option<String>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::OK,
            Json(
                json!({ "errors": [{ "message": "You must be logged in to do this.", "name": "AUTH_REQUIRED" }] }),
            ),
        );
    }
    let query = body["query"].as_str().unwrap_or_default().to_string();
    let mut variables = body.get("variables").cloned().unwrap_or(Value::Null);
    let version = fake.state.lock().unwrap().version.clone();
    let key = (version.clone(), query.clone());
    let cached = fake.state.lock().unwrap().validated.get(&key).cloned();
    let field = match cached {
        Some(field) => field,
        None => match root_field(super::schema_for(&version), &query) {
            Ok(field) => {
                fake.state
                    .lock()
                    .unwrap()
                    .validated
                    .insert(key, field.clone());
                field
            }
            Err((status, message, invalid)) => {
                if let Some(invalid) = invalid {
                    fake.state.lock().unwrap().invalid.push(invalid);
                }
                return error(status, message);
            }
        },
    };
    if field == "registerConnector" {
        let unknown = unknown_input_fields(
            super::schema_for(&version),
            "RegisterConnectorInput",
            &variables["input"],
        );
        if !unknown.is_empty() {
            let message = format!(
                "Variable \"$input\" got invalid value; field(s) {unknown:?} not defined by type \"RegisterConnectorInput\" (OpenCTI {version})."
            );
            fake.state.lock().unwrap().invalid.push(message.clone());
            return error(StatusCode::BAD_REQUEST, &message);
        }
    }
    if field == "workEdit.addExpectations" && fake.state.lock().unwrap().dead_works {
        fake.state.lock().unwrap().calls.push(Call {
            field: "workEdit.addExpectations(not alive)".into(),
            variables,
            draft_id: None,
            at: std::time::Instant::now(),
            replica,
            work_id: None,
        });
        return (
            StatusCode::OK,
            Json(
                json!({ "errors": [{ "message": "Work not alive", "name": "WORK_NOT_ALIVE" }], "data": null }),
            ),
        );
    }
    if field == "stixBundlePush" && !fake.state.lock().unwrap().keep_bundles {
        let len = variables["bundle"].as_str().map_or(0, str::len);
        variables["bundle"] = json!(len);
    }
    let draft_id = headers
        .get("opencti-draft-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(agent) = headers.get("user-agent").and_then(|v| v.to_str().ok()) {
        fake.state
            .lock()
            .unwrap()
            .user_agents
            .insert(agent.to_string());
    }
    if fake.state.lock().unwrap().refuse.contains(&field) {
        return (
            StatusCode::OK,
            Json(
                json!({ "errors": [{ "message": "You are not allowed to do this.", "name": "FORBIDDEN_ACCESS" }] }),
            ),
        );
    }
    let outage = fake.state.lock().unwrap().outage;
    if let Some(outage) = outage {
        fake.state.lock().unwrap().calls.push(Call {
            field: format!("{field}({outage:?})"),
            variables: variables.clone(),
            draft_id: draft_id.clone(),
            at: std::time::Instant::now(),
            replica: replica.clone(),
            work_id: None,
        });
        if outage == Outage::Hold {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "503 Service Temporarily Unavailable"})),
        );
    }
    let hangs = fake.state.lock().unwrap().hang.contains(&field);
    if hangs {
        fake.state.lock().unwrap().calls.push(Call {
            field: format!("{field}(hung)"),
            variables,
            draft_id,
            at: std::time::Instant::now(),
            replica,
            work_id: None,
        });
        // Longer than any test: the client must give up on its own.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return error(StatusCode::GATEWAY_TIMEOUT, "hung");
    }
    if field == "stixBundlePush" {
        let mut st = fake.state.lock().unwrap();
        if st.fail_pushes_after > 0 {
            st.fail_pushes_after -= 1;
        } else if st.fail_pushes > 0 {
            st.fail_pushes -= 1;
            st.calls.push(Call {
                field: "stixBundlePush(failed)".into(),
                variables,
                draft_id,
                at: std::time::Instant::now(),
                replica: replica.clone(),
                work_id: None,
            });
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"errors": [{"message": "platform restarting"}]})),
            );
        }
    }
    let data = match field.as_str() {
        "about" => json!({ "about": { "version": version } }),
        "me" => {
            json!({ "me": { "id": "88ec0c6a-13ce-5e39-b486-354fe4a7084f", "name": "connector-user" } })
        }
        "registerConnector" => {
            let id = variables["input"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            fake.declare_queues(&id).await;
            let state = fake
                .state
                .lock()
                .unwrap()
                .states
                .get(&id)
                .cloned()
                .flatten();
            let push_routing = if fake.state.lock().unwrap().unbound_push {
                format!("push_routing_unbound_{id}")
            } else {
                format!("push_routing_{id}")
            };
            json!({ "registerConnector": {
                "id": id,
                "connector_state": state,
                "config": {
                    "connection": { "host": "127.0.0.1", "vhost": "/", "use_ssl": false, "port": 5672, "user": "guest", "pass": "guest" },
                    "listen": FakeOpencti::listen_queue(&id),
                    "listen_routing": format!("listen_routing_{id}"),
                    "listen_exchange": CONNECTOR_EXCHANGE,
                    "push": FakeOpencti::push_queue(&id),
                    "push_routing": push_routing,
                    "push_exchange": WORKER_EXCHANGE,
                },
                "connector_user_id": CONNECTOR_USER_ID,
            }})
        }
        "pingConnector" => {
            let id = variables["id"].as_str().unwrap_or_default().to_string();
            let mut st = fake.state.lock().unwrap();
            st.infos
                .insert(id.clone(), variables["connectorInfo"].clone());
            if let Some(lagging) = st.lagging.remove(&id) {
                // A slow platform answers the state of an earlier ping.
                st.states
                    .insert(id.clone(), variables["state"].as_str().map(str::to_string));
                return (
                    StatusCode::OK,
                    Json(
                        json!({"data": { "pingConnector": { "id": id, "connector_state": lagging } }}),
                    ),
                );
            }
            if let Some(pos) = st.reset.iter().position(|r| *r == id) {
                // The platform discards the sent state once after a reset.
                st.reset.remove(pos);
                st.states.insert(id.clone(), Some(String::new()));
            } else {
                st.states
                    .insert(id.clone(), variables["state"].as_str().map(str::to_string));
            }
            json!({ "pingConnector": { "id": id, "connector_state": st.states.get(&id).cloned().flatten() } })
        }
        "workAdd" => {
            let mut st = fake.state.lock().unwrap();
            st.works += 1;
            json!({ "workAdd": { "id": format!("work_{}_{}", variables["connectorId"].as_str().unwrap_or(""), st.works) } })
        }
        f if f.starts_with("workEdit.") => {
            let sub = f.trim_start_matches("workEdit.");
            json!({ "workEdit": { sub: variables["id"].clone() } })
        }
        "stixCoreObject" => {
            let id = variables["id"].as_str().unwrap_or_default();
            let st = fake.state.lock().unwrap();
            // `toStix` is the export registered in `stix`, if any (a string, as the platform's).
            let entity = st.entities.get(id).cloned().map(|mut e| {
                e["toStix"] = st
                    .stix
                    .get(id)
                    .map(|s| Value::String(s.to_string()))
                    .unwrap_or(Value::Null);
                e
            });
            json!({ "stixCoreObject": entity })
        }
        "markingDefinition" => {
            let id = variables["id"].as_str().unwrap_or_default();
            json!({ "markingDefinition": fake.state.lock().unwrap().markings.get(id).cloned() })
        }
        "workEdit.ping" => json!({ "workEdit": { "ping": variables["id"] } }),
        "connector" => {
            let id = variables["id"].as_str().unwrap_or_default();
            let st = fake.state.lock().unwrap();
            let bytes = st.queue_bytes.get(id).copied().unwrap_or(0.0);
            let info = st.infos.get(id).cloned().unwrap_or(Value::Null);
            let info = json!({
                "last_run_datetime": info["last_run_datetime"],
                "next_run_datetime": info["next_run_datetime"],
            });
            let state = st.states.get(id).cloned().flatten();
            json!({ "connector": {
                "id": id,
                "connector_state": state,
                "connector_info": info,
                "connector_queue_details": { "messages_number": 0.0, "messages_size": bytes },
            } })
        }
        "stixBundlePush" => json!({ "stixBundlePush": true }),
        "playbookStepExecution" => json!({ "playbookStepExecution": true }),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the fake does not answer {other}"),
            );
        }
    };
    // Recorded once handled, so a test that saw the call also sees its effects (queues).
    let work_id = (field == "workAdd")
        .then(|| data["workAdd"]["id"].as_str().map(str::to_string))
        .flatten();
    fake.state.lock().unwrap().calls.push(Call {
        field,
        variables,
        draft_id,
        at: std::time::Instant::now(),
        replica,
        work_id,
    });
    (StatusCode::OK, Json(json!({ "data": data })))
}
