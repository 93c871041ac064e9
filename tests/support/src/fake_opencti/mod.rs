//! A fake OpenCTI: answers as a given platform version (`about`), only operations that
//! validate against that version's schema (6.8.10's or 7.x's), with a `registerConnector`
//! input that has no field the schema does not know; records every call, and (like the
//! platform) declares each connector's queues on the real RabbitMQ at registration.
//!
//! `state.rs` holds what it knows and saw, `answer.rs` the GraphQL endpoint, `teardown.rs`
//! the deletion of its queues.

mod answer;
mod state;
mod teardown;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;

pub use state::{Call, FakeState, Outage};
use teardown::Teardown;

pub const TOKEN: &str = "fake-opencti-token";
pub const BROKER_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const CONNECTOR_EXCHANGE: &str = "amqp.connector.exchange";
pub const WORKER_EXCHANGE: &str = "amqp.worker.exchange";
pub const CONNECTOR_USER_ID: &str = "88ec0c6a-13ce-5e39-b486-354fe4a7084f";
/// The version a fake answers unless told otherwise.
pub const VERSION_6: &str = "6.8.10";
/// A 7.x platform's version (calendar numbering).
pub const VERSION_7: &str = "7.261026.0";

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
            .route("/graphql", post(answer::graphql))
            .route("/{replica}/graphql", post(answer::graphql_replica))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Starts a fake answering as OpenCTI `version`.
    pub async fn start_as(version: &str) -> FakeOpencti {
        let fake = Self::start().await;
        fake.state.lock().unwrap().version = version.to_string();
        fake
    }

    /// The URL a daemon replica named `replica` uses: its calls are recorded with its name.
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
