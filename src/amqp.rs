//! RabbitMQ plumbing shared by every connector: connecting with the registration's broker
//! details (plus `mq.*` overrides), consuming a listen queue, publishing with confirms.
//! Queues and exchanges belong to the platform: nothing here declares or binds them.
//!
//! Every broker operation is bounded in time ([`bounded`]): a broker that stops answering
//! (a hung node, a resource alarm blocking publishers) fails the operation instead of
//! holding its caller.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

use crate::config::{MqConfig, Secret};
use crate::opencti::client::Connection as RegisteredConnection;

/// The largest AMQP frame the daemon proposes (the broker may lower it, never raise it).
pub const FRAME_MAX: u32 = 16 * 1024;
/// The smallest frame AMQP 0-9-1 allows: enough for connections that carry no messages.
pub const FRAME_MIN: u32 = 4096;

/// The heartbeat (seconds) of the connectors' connections, as pycti's.
pub const HEARTBEAT: u16 = 10;

/// How long connecting may take: TCP, TLS and the AMQP handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one other broker operation may take (a channel, a declare, a consume, an ack).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a publish may go without the broker confirming anything.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// `op`, failed with a timeout error after `limit`.
pub async fn bounded<T>(
    what: &str,
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, lapin::Error>>,
) -> Result<T, lapin::Error> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(what, limit)),
    }
}

/// The error of an operation that did not complete in time.
fn timed_out(what: &str, limit: Duration) -> lapin::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "RabbitMQ did not complete {what} within {} s",
            limit.as_secs_f64()
        ),
    )
    .into()
}

/// Where the broker is, after overrides.
#[derive(Clone, PartialEq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub use_ssl: bool,
    pub user: String,
    pub pass: Secret,
    /// Extra CA certificates (PEM) trusted for amqps.
    pub ca_pem: Option<std::sync::Arc<str>>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.use_ssl { "amqps" } else { "amqp" };
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.vhost
        )
    }
}

impl BrokerAddress {
    /// The registration's details with `mq.*` overrides applied.
    pub fn resolve(registered: &RegisteredConnection, overrides: &MqConfig) -> Self {
        BrokerAddress {
            host: overrides
                .host
                .clone()
                .unwrap_or_else(|| registered.host.clone()),
            port: overrides.port.unwrap_or(registered.port),
            vhost: overrides
                .vhost
                .clone()
                .unwrap_or_else(|| registered.vhost.clone()),
            use_ssl: overrides.use_ssl.unwrap_or(registered.use_ssl),
            user: overrides
                .user
                .clone()
                .unwrap_or_else(|| registered.user.clone()),
            pass: overrides
                .pass
                .clone()
                .unwrap_or_else(|| registered.pass.clone()),
            ca_pem: None,
        }
    }

    /// The same address, trusting `egress`'s roots too when it uses TLS (the web PKI,
    /// `tls.ca_certificates`, `tls.ca_file`; the system store is always trusted).
    pub fn trusting(mut self, egress: Option<&crate::upstream::http::Egress>) -> Self {
        self.ca_pem = egress.and_then(|e| e.trust.amqp_pem());
        self
    }

    fn uri(&self, heartbeat: u16, frame_max: u32) -> AMQPUri {
        AMQPUri {
            scheme: if self.use_ssl {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.user.clone(),
                    password: self.pass.expose().to_string(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(heartbeat),
                connection_timeout: Some(10_000),
                // lapin keeps 2 × 32 frames of buffer per connection, zero-filled: at the
                // broker's 128 KiB that is 8 MiB resident per connector; at 16 KiB, 1 MiB.
                // Larger messages simply travel in more frames.
                frame_max: Some(frame_max),
                ..Default::default()
            },
        }
    }

    /// Opens a connection (heartbeat 10 s, as pycti); amqps verifies the broker against the
    /// system's roots and the extra CA certificates.
    pub async fn connect(&self, name: &str) -> Result<Connection, lapin::Error> {
        self.connect_with(name, HEARTBEAT, FRAME_MAX).await
    }

    /// [`BrokerAddress::connect`] with another heartbeat (seconds) and largest frame.
    pub async fn connect_with(
        &self,
        name: &str,
        heartbeat: u16,
        frame_max: u32,
    ) -> Result<Connection, lapin::Error> {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.as_deref().map(str::to_string),
        };
        let runtime = lapin::runtime::default_runtime()?;
        let connect = Connection::connect_uri_with_config(
            self.uri(heartbeat, frame_max),
            props,
            tls,
            runtime,
        );
        bounded("the connection", CONNECT_TIMEOUT, connect).await
    }
}

/// How long a close may wait for the broker (the connection is dropped after that).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes `connection`, waiting [`CLOSE_TIMEOUT`] at most for the broker.
pub async fn close_bounded(connection: &Connection, reason: &str) {
    let close = connection.close(200, reason.into());
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
}

/// Closes `channel`, waiting [`CLOSE_TIMEOUT`] at most.
pub async fn close_channel(channel: &Channel, reason: &str) {
    let close = channel.close(200, reason.into());
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
}

/// A new channel, bounded.
pub async fn channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    bounded(
        "channel.open",
        OPERATION_TIMEOUT,
        connection.create_channel(),
    )
    .await
}

/// Starts consuming `queue` with manual acks and `prefetch` unacked messages at most.
pub async fn consume(
    connection: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> Result<(Channel, Consumer), lapin::Error> {
    let channel = channel(connection).await?;
    let qos = channel.basic_qos(prefetch, BasicQosOptions::default());
    bounded("basic.qos", OPERATION_TIMEOUT, qos).await?;
    let consume = channel.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    let consumer = bounded("basic.consume", OPERATION_TIMEOUT, consume).await?;
    Ok((channel, consumer))
}

/// A channel in confirm mode for publishing.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = channel(connection).await?;
    let select = channel.confirm_select(ConfirmSelectOptions::default());
    bounded("confirm.select", OPERATION_TIMEOUT, select).await?;
    Ok(channel)
}

/// Messages published before their confirms are awaited (bounds memory and lets the
/// broker confirm in bulk instead of one round trip per message).
pub const CONFIRM_WINDOW: usize = 500;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker refused (nacked) a message")]
    Nacked,
    /// Published as mandatory and returned: no queue is bound to the routing key, so the
    /// message would have been dropped.
    #[error(
        "the broker could route a message to no queue (exchange {exchange}, routing key {routing_key})"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    /// The broker confirmed nothing for `limit` (a resource alarm blocks publishers).
    #[error("the broker confirmed no message for {} s (is a resource alarm blocking publishers?)", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error(transparent)]
    Broker(#[from] lapin::Error),
}

/// Publishes persistent UTF-8 messages as mandatory, pipelined, and waits until the broker
/// confirmed every one of them. A message the broker returns (routed to no queue) fails the
/// publish even though the broker acks it. Each window of [`CONFIRM_WINDOW`] messages must
/// be published and confirmed within `limit`.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    bodies: impl IntoIterator<Item = Vec<u8>>,
    limit: Duration,
) -> Result<(), PublishError> {
    let mut bodies = bodies.into_iter().peekable();
    while bodies.peek().is_some() {
        let window = bodies.by_ref().take(CONFIRM_WINDOW);
        let publish = publish_window(channel, exchange, routing_key, window);
        match tokio::time::timeout(limit, publish).await {
            Ok(result) => result?,
            Err(_) => return Err(PublishError::TimedOut(limit)),
        }
    }
    Ok(())
}

/// Publishes one window of messages and waits for their confirms.
async fn publish_window(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    bodies: impl Iterator<Item = Vec<u8>>,
) -> Result<(), PublishError> {
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_encoding("utf-8".into());
    let mut pending = Vec::with_capacity(CONFIRM_WINDOW);
    for body in bodies {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &body,
                props.clone(),
            )
            .await?;
        pending.push(confirm);
    }
    await_confirms(&mut pending, exchange, routing_key).await
}

async fn await_confirms(
    pending: &mut Vec<lapin::PublisherConfirm>,
    exchange: &str,
    routing_key: &str,
) -> Result<(), PublishError> {
    for confirm in pending.drain(..) {
        match confirm.await? {
            lapin::Confirmation::Nack(_) => return Err(PublishError::Nacked),
            lapin::Confirmation::Ack(Some(_returned)) => {
                return Err(PublishError::Unroutable {
                    exchange: exchange.to_string(),
                    routing_key: routing_key.to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}
