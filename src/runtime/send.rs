//! Sending bundles to OpenCTI: through `stixBundlePush` (default, chunked) or through the
//! push exchange, one object per message, with expectations and publisher confirms.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::retry::{Gave, Patience, until_done};

use crate::amqp::{self, BrokerAddress};
use crate::config::QueueProtocol;
use crate::opencti::client::QueueConfig;
use crate::opencti::prepared::{Prepared, PreparedPart, Split, split_prepared};
use crate::opencti::split::{SplitObject, split};
use crate::opencti::{OpenctiClient, OpenctiError};

/// Objects per `stixBundlePush` call: large bundles go in several calls.
pub const API_CHUNK_OBJECTS: usize = 2000;

/// A failed send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The bundle had no object OpenCTI ingests (pycti's wording).
    #[error("Nothing to import")]
    Nothing,
    #[error(transparent)]
    Platform(#[from] OpenctiError),
    /// The connection or channel failed: transient.
    #[error("RabbitMQ publish failed: {0}")]
    Broker(String),
    /// The broker refused a message: retried [`MAX_NACKS`] times, then a failure.
    #[error("RabbitMQ publish failed: {0}")]
    Nacked(String),
    /// No queue is bound to the push routing key: the bundle would be dropped.
    #[error("RabbitMQ publish failed: {0}")]
    Unroutable(String),
}

/// How many broker nacks one send retries before it fails.
pub const MAX_NACKS: usize = 3;

impl SendError {
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Nothing | SendError::Unroutable(_) => false,
            SendError::Platform(e) => e.is_transient(),
            SendError::Broker(_) | SendError::Nacked(_) => true,
        }
    }
}

impl From<amqp::PublishError> for SendError {
    fn from(e: amqp::PublishError) -> Self {
        match e {
            amqp::PublishError::Nacked => SendError::Nacked(e.to_string()),
            amqp::PublishError::Unroutable { .. } => SendError::Unroutable(e.to_string()),
            amqp::PublishError::Broker(_) => SendError::Broker(e.to_string()),
        }
    }
}

/// A split bundle's JSON text around one serialised object: `type`, `id`, `spec_version`,
/// `x_opencti_seq` and `objects`, in the order `json!` writes them.
fn split_bundle_text(bundle_id: &str, part: &PreparedPart) -> String {
    format!(
        r#"{{"type":"bundle","id":{},"spec_version":"2.1","x_opencti_seq":{},"objects":[{}]}}"#,
        Value::from(bundle_id),
        part.nb_deps,
        part.json
    )
}

/// `object` (a JSON object's text) with `"nb_deps": n` added last.
fn with_nb_deps(object: &str, n: usize) -> String {
    match object.trim_end().strip_suffix('}') {
        Some(body) if body.trim_end().ends_with('{') => format!("{body}\"nb_deps\":{n}}}"),
        Some(body) => format!("{body},\"nb_deps\":{n}}}"),
        None => object.to_string(),
    }
}

/// One connector's bundle sender.
pub struct Sender {
    connector_id: String,
    protocol: QueueProtocol,
    queues: QueueConfig,
    broker: BrokerAddress,
    applicant_id: Option<String>,
    /// How long transient failures of one send are retried.
    max_retry: std::time::Duration,
    publisher: Mutex<Option<(lapin::Connection, lapin::Channel)>>,
}

/// How far one send got, across its delivery attempts.
#[derive(Debug, Default)]
struct Progress {
    /// API chunks OpenCTI accepted.
    chunks: AtomicUsize,
    /// Broker nacks so far.
    nacks: AtomicUsize,
}

/// Where a send belongs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendTarget<'a> {
    pub work_id: Option<&'a str>,
    pub draft_id: Option<&'a str>,
    /// Drop references to objects absent from the bundle (pycti's `cleanup_inconsistent_bundle`).
    pub cleanup_inconsistent: bool,
    /// The user the worker imports as (the message's `internal.applicant_id`); the connector
    /// user when `None`.
    pub applicant_id: Option<&'a str>,
}

impl Sender {
    pub fn new(
        connector_id: String,
        protocol: QueueProtocol,
        queues: QueueConfig,
        broker: BrokerAddress,
        applicant_id: Option<String>,
        max_retry: std::time::Duration,
    ) -> Self {
        Sender {
            connector_id,
            protocol,
            queues,
            broker,
            applicant_id,
            max_retry,
            publisher: Mutex::new(None),
        }
    }

    /// Sends `objects`, retrying transient failures until they go through or `abort` fires;
    /// returns the number of bundles (objects) OpenCTI will import. The bundle is split once
    /// and its expectations are added once: a retry only repeats the delivery, from the first
    /// chunk OpenCTI has not accepted yet.
    pub async fn send(
        &self,
        client: &OpenctiClient,
        objects: Vec<Value>,
        target: SendTarget<'_>,
        abort: &CancellationToken,
    ) -> Result<usize, Gave<SendError>> {
        let parts = self.parts(split(objects, target.cleanup_inconsistent));
        self.send_parts(client, parts, target, abort).await
    }

    /// [`Sender::send`] for objects already serialised (large imports): split on their ids
    /// and references, sent as the same bundles, without a `Value` per object.
    pub async fn send_prepared(
        &self,
        client: &OpenctiClient,
        objects: Vec<Prepared>,
        target: SendTarget<'_>,
        abort: &CancellationToken,
    ) -> Result<usize, Gave<SendError>> {
        let parts = match split_prepared(objects, target.cleanup_inconsistent) {
            Split::Generic(split) => self.parts(split),
            Split::Prepared(parts) => match self.protocol {
                QueueProtocol::Api => parts,
                // Our own objects never hold `nb_deps`: it goes last, as the generic path puts it.
                QueueProtocol::Amqp => parts
                    .into_iter()
                    .map(|p| PreparedPart {
                        json: with_nb_deps(&p.json, p.nb_deps),
                        nb_deps: p.nb_deps,
                    })
                    .collect(),
            },
        };
        self.send_parts(client, parts, target, abort).await
    }

    /// The generic splitter's objects as the text each message or bundle carries: with
    /// `nb_deps` for AMQP (one object per message, as pycti), as they are for the API.
    fn parts(&self, split: Vec<SplitObject>) -> Vec<PreparedPart> {
        split
            .into_iter()
            .map(
                |SplitObject {
                     mut object,
                     nb_deps,
                 }| {
                    if self.protocol == QueueProtocol::Amqp {
                        object["nb_deps"] = json!(nb_deps);
                    }
                    PreparedPart {
                        json: object.to_string(),
                        nb_deps,
                    }
                },
            )
            .collect()
    }

    async fn send_parts(
        &self,
        client: &OpenctiClient,
        parts: Vec<PreparedPart>,
        target: SendTarget<'_>,
        abort: &CancellationToken,
    ) -> Result<usize, Gave<SendError>> {
        if parts.is_empty() {
            return Err(Gave::Up(SendError::Nothing));
        }
        let bundle_id = format!("bundle--{}", uuid::Uuid::new_v4());
        let patience = Patience {
            abort,
            max: self.max_retry,
        };
        if let (QueueProtocol::Amqp, Some(work_id)) = (self.protocol, target.work_id) {
            // Before publishing, so a fast worker cannot complete the work early.
            patience
                .opencti("addExpectations", || {
                    client.add_expectations(work_id, parts.len())
                })
                .await
                .map_err(|g| match g {
                    Gave::Up(e) => Gave::Up(SendError::Platform(e)),
                    Gave::Aborted => Gave::Aborted,
                })?;
        }
        let progress = Progress::default();
        let transient = |e: &SendError| match e {
            SendError::Nacked(_) => progress.nacks.load(Ordering::Relaxed) <= MAX_NACKS,
            other => other.is_transient(),
        };
        until_done(patience, "send bundle", transient, || {
            self.deliver(client, &bundle_id, &parts, target, &progress)
        })
        .await?;
        Ok(parts.len())
    }

    /// One delivery attempt of already split objects.
    async fn deliver(
        &self,
        client: &OpenctiClient,
        bundle_id: &str,
        parts: &[PreparedPart],
        target: SendTarget<'_>,
        progress: &Progress,
    ) -> Result<(), SendError> {
        match self.protocol {
            QueueProtocol::Api => {
                let done = progress.chunks.load(Ordering::Relaxed);
                for chunk in parts.chunks(API_CHUNK_OBJECTS).skip(done) {
                    let objects: Vec<&str> = chunk.iter().map(|p| p.json.as_str()).collect();
                    client
                        .stix_bundle_push_objects(
                            &self.connector_id,
                            bundle_id,
                            &objects,
                            target.work_id,
                        )
                        .await?;
                    progress.chunks.fetch_add(1, Ordering::Relaxed);
                }
            }
            QueueProtocol::Amqp => {
                let published = self.publish(bundle_id, parts, target).await;
                if let Err(SendError::Nacked(_)) = &published {
                    progress.nacks.fetch_add(1, Ordering::Relaxed);
                }
                published?;
            }
        }
        Ok(())
    }

    async fn publish(
        &self,
        bundle_id: &str,
        parts: &[PreparedPart],
        target: SendTarget<'_>,
    ) -> Result<(), SendError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let bodies = parts.iter().enumerate().map(|(i, part)| {
            let bundle = split_bundle_text(bundle_id, part);
            let mut envelope = json!({
                "bundle_type": "QUEUE_BUNDLE",
                "applicant_id": target.applicant_id.or(self.applicant_id.as_deref()),
                "action_sequence": i + 1,
                "entities_types": [],
                "content": b64.encode(bundle),
                "update": false,
                "draft_id": target.draft_id,
            });
            if let Some(work_id) = target.work_id {
                envelope["work_id"] = json!(work_id);
            }
            envelope.to_string().into_bytes()
        });
        // Built before any await: the sends are chunked, so this stays bounded.
        let bodies: Vec<Vec<u8>> = bodies.collect();
        let mut guard = self.publisher.lock().await;
        let usable = guard
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected());
        if !usable {
            let broker = |e: lapin::Error| SendError::Broker(e.to_string());
            let conn = self
                .broker
                .connect(&format!("opencti-connectors-push-{}", self.connector_id))
                .await
                .map_err(broker)?;
            let channel = amqp::confirm_channel(&conn).await.map_err(broker)?;
            *guard = Some((conn, channel));
        }
        // Connected just above when it was not.
        let (_, channel) = guard.as_ref().expect("publisher connected");
        let result = amqp::publish_confirmed(
            channel,
            &self.queues.push_exchange,
            &self.queues.push_routing,
            bodies,
        )
        .await;
        if let Err(e) = result {
            if matches!(e, amqp::PublishError::Broker(_)) {
                // Reconnect on the next attempt.
                *guard = None;
            }
            return Err(e.into());
        }
        Ok(())
    }
}
