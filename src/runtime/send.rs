//! Sending bundles to OpenCTI: through `stixBundlePush` (default, chunked) or through the
//! push exchange, one object per message, with expectations and publisher confirms.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::delivery::{Budget, GiveBack, Stop, memory_stop};
use super::retry::OPENCTI_BACKOFF;

use crate::amqp::{self, BrokerAddress, PublishError};
use crate::config::QueueProtocol;
use crate::memory;
use crate::opencti::client::QueueConfig;
use crate::opencti::prepared::{Prepared, PreparedPart, Split, split_prepared};
use crate::opencti::split::{SplitObject, split};
use crate::opencti::{Dialect, OpenctiClient};

/// Objects per `stixBundlePush` call: large bundles go in several calls.
pub const API_CHUNK_OBJECTS: usize = 2000;

/// pycti's wording when a bundle holds nothing OpenCTI ingests.
pub const NOTHING_TO_IMPORT: &str = "Nothing to import";

/// How many broker nacks one send retries before it fails.
pub const MAX_NACKS: usize = 3;

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
    /// How long a publish may go without a confirm before its message is given back.
    publish_timeout: Duration,
    /// The push connection and its confirm channel; locked only to take or replace them, never
    /// across a publish.
    publisher: Mutex<Option<Publisher>>,
}

/// The push connection and a channel in confirm mode on it.
struct Publisher {
    connection: Arc<lapin::Connection>,
    channel: lapin::Channel,
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
        publish_timeout: Duration,
    ) -> Self {
        Sender {
            connector_id,
            protocol,
            queues,
            broker,
            applicant_id,
            publish_timeout,
            publisher: Mutex::new(None),
        }
    }

    /// Sends `objects` within `budget`; returns the number of bundles (objects) OpenCTI will
    /// import. The bundle is split once and its expectations are added once: a retry only
    /// repeats the delivery, from the first chunk OpenCTI has not accepted yet.
    pub async fn send(
        &self,
        client: &OpenctiClient,
        objects: Vec<Value>,
        target: SendTarget<'_>,
        budget: &Budget<'_>,
    ) -> Result<usize, Stop> {
        let parts = self.parts(split(objects, target.cleanup_inconsistent));
        self.send_parts(client, parts, target, budget).await
    }

    /// [`Sender::send`] for objects already serialised (large imports): split on their ids
    /// and references, sent as the same bundles, without a `Value` per object.
    pub async fn send_prepared(
        &self,
        client: &OpenctiClient,
        objects: Vec<Prepared>,
        target: SendTarget<'_>,
        budget: &Budget<'_>,
    ) -> Result<usize, Stop> {
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
        self.send_parts(client, parts, target, budget).await
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
        budget: &Budget<'_>,
    ) -> Result<usize, Stop> {
        if parts.is_empty() {
            return Err(Stop::Failed(NOTHING_TO_IMPORT.into()));
        }
        // The split objects' text, charged to the request's memory budget while it is sent.
        let text: u64 = parts.iter().map(|p| p.json.len() as u64 + 64).sum();
        let _parts = memory::transient(text).await.map_err(memory_stop)?;
        let bundle_id = format!("bundle--{}", uuid::Uuid::new_v4());
        match self.protocol {
            QueueProtocol::Api => {
                // Each chunk once: a retry resumes from the first one not accepted.
                for chunk in parts.chunks(API_CHUNK_OBJECTS) {
                    // The request body, escaped (a quarter more at most), charged before it
                    // is written and released once sent.
                    let body: u64 = chunk.iter().map(|p| p.json.len() as u64 * 5 / 4 + 1).sum();
                    let _body = memory::transient(body + 512).await.map_err(memory_stop)?;
                    let objects: Vec<&str> = chunk.iter().map(|p| p.json.as_str()).collect();
                    budget
                        .opencti("stixBundlePush", || {
                            client.stix_bundle_push_objects(
                                &self.connector_id,
                                &bundle_id,
                                &objects,
                                target.work_id,
                            )
                        })
                        .await?;
                }
            }
            QueueProtocol::Amqp => {
                // One dialect for the whole send, as the platform's version says now.
                let dialect = client.dialect();
                if let Some(work_id) = target.work_id {
                    // Before publishing, so a fast worker cannot complete the work early.
                    let alive = budget
                        .opencti("addExpectations", || {
                            client.add_expectations(work_id, parts.len())
                        })
                        .await?;
                    if !alive {
                        // pycti 7 logs it and publishes all the same.
                        tracing::info!(
                            work_id,
                            "The work no longer exists in OpenCTI (WORK_NOT_ALIVE); sending the bundle all the same, as pycti 7 does."
                        );
                    }
                }
                self.publish_retrying(&bundle_id, &parts, target, dialect, budget)
                    .await?;
            }
        }
        Ok(parts.len())
    }

    /// Publishes the parts under the rules of a send: a nack is retried [`MAX_NACKS`] times,
    /// an unroutable message fails the send, a lost connection is retried within the budget
    /// on a new one, and a broker that confirms nothing in time gets the message given back.
    async fn publish_retrying(
        &self,
        bundle_id: &str,
        parts: &[PreparedPart],
        target: SendTarget<'_>,
        dialect: Dialect,
        budget: &Budget<'_>,
    ) -> Result<(), Stop> {
        // One window of messages is built at a time: its bodies (base64 of the bundle text,
        // in an envelope) are charged for the largest window.
        let window: u64 = parts
            .chunks(amqp::CONFIRM_WINDOW)
            .map(|w| {
                w.iter()
                    .map(|p| p.json.len() as u64 * 4 / 3 + 512)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0);
        let _window = memory::transient(window).await.map_err(memory_stop)?;
        let mut nacks = 0;
        let mut backoff = OPENCTI_BACKOFF;
        loop {
            if budget.abort().is_cancelled() {
                return Err(budget.given_back());
            }
            let published = tokio::select! {
                r = self.publish(bundle_id, parts, target, dialect) => r,
                _ = budget.abort().cancelled() => return Err(budget.given_back()),
            };
            let error = match published {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let failed = || Stop::Failed(format!("RabbitMQ publish failed: {error}"));
            let delay = backoff.next_delay();
            match &error {
                PublishError::Unroutable { .. } => return Err(failed()),
                PublishError::Nacked if nacks >= MAX_NACKS || !budget.allows(delay) => {
                    return Err(failed());
                }
                PublishError::Nacked => nacks += 1,
                PublishError::TimedOut(_) => {
                    return Err(Stop::GiveBack(GiveBack::Broker(error.to_string())));
                }
                PublishError::Broker(_) if !budget.allows(delay) => {
                    return Err(Stop::GiveBack(GiveBack::Broker(error.to_string())));
                }
                PublishError::Broker(_) => {}
            }
            tracing::warn!(%error, "RabbitMQ publish failed; retrying.");
            budget.sleep(delay).await?;
        }
    }

    /// One publish of every part, confirmed, one window of messages built at a time.
    async fn publish(
        &self,
        bundle_id: &str,
        parts: &[PreparedPart],
        target: SendTarget<'_>,
        dialect: Dialect,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        for (w, window) in parts.chunks(amqp::CONFIRM_WINDOW).enumerate() {
            let first = w * amqp::CONFIRM_WINDOW;
            let bodies: Vec<Vec<u8>> = window
                .iter()
                .enumerate()
                .map(|(i, part)| self.envelope(bundle_id, first + i + 1, part, target, dialect))
                .collect();
            let result = amqp::publish_confirmed(
                &channel,
                &self.queues.push_exchange,
                &self.queues.push_routing,
                bodies,
                self.publish_timeout,
            )
            .await;
            if matches!(
                result,
                Err(PublishError::Broker(_) | PublishError::TimedOut(_))
            ) {
                // A new connection on the next attempt.
                self.forget(&channel).await;
            }
            result?;
        }
        Ok(())
    }

    /// One push message: the envelope around part `sequence` of the bundle, base64. On 7.x
    /// it says `"no_split": false`, as pycti 7 does (6.x's worker never sees the key).
    fn envelope(
        &self,
        bundle_id: &str,
        sequence: usize,
        part: &PreparedPart,
        target: SendTarget<'_>,
        dialect: Dialect,
    ) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let bundle = split_bundle_text(bundle_id, part);
        let mut envelope = json!({
            "bundle_type": "QUEUE_BUNDLE",
            "applicant_id": target.applicant_id.or(self.applicant_id.as_deref()),
            "action_sequence": sequence,
            "entities_types": [],
            "content": b64.encode(bundle),
            "update": false,
            "draft_id": target.draft_id,
        });
        if let Some(work_id) = target.work_id {
            envelope["work_id"] = json!(work_id);
        }
        if dialect == Dialect::V7 {
            envelope["no_split"] = json!(false);
        }
        envelope.to_string().into_bytes()
    }

    /// The confirm channel, connecting first when there is none (bounded: connect and
    /// channel open each have their limit).
    async fn channel(&self) -> Result<lapin::Channel, PublishError> {
        let mut guard = self.publisher.lock().await;
        if let Some(p) = guard.as_ref()
            && p.connection.status().connected()
            && p.channel.status().connected()
        {
            return Ok(p.channel.clone());
        }
        if let Some(old) = guard.take() {
            tokio::spawn(async move { amqp::close_bounded(&old.connection, "reconnecting").await });
        }
        let connection = self
            .broker
            .connect(&format!("opencti-connectors-push-{}", self.connector_id))
            .await?;
        let channel = match amqp::confirm_channel(&connection).await {
            Ok(channel) => channel,
            Err(error) => {
                amqp::close_bounded(&connection, "no channel").await;
                return Err(error.into());
            }
        };
        *guard = Some(Publisher {
            connection: Arc::new(connection),
            channel: channel.clone(),
        });
        Ok(channel)
    }

    /// Drops the connection of `channel` (when it is still the current one), closing it in
    /// the background: a blocked broker may not answer the close.
    async fn forget(&self, channel: &lapin::Channel) {
        let mut guard = self.publisher.lock().await;
        if guard
            .as_ref()
            .is_some_and(|p| p.channel.id() == channel.id())
            && let Some(old) = guard.take()
        {
            tokio::spawn(
                async move { amqp::close_bounded(&old.connection, "publish failed").await },
            );
        }
    }
}
