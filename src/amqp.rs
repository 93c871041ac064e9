//! RabbitMQ plumbing shared by every connector: connecting with the registration's broker
//! details (plus `mq.*` overrides), consuming a listen queue, publishing with confirms.
//! Queues and exchanges belong to the platform: nothing here declares or binds them.

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

use crate::config::{MqConfig, Secret};
use crate::opencti::client::Connection as RegisteredConnection;

/// Where the broker is, after overrides.
#[derive(Clone, PartialEq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub use_ssl: bool,
    pub user: String,
    pub pass: Secret,
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
                .unwrap_or_else(|| Secret::new(registered.pass.clone())),
        }
    }

    fn uri(&self) -> AMQPUri {
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
                heartbeat: Some(10),
                connection_timeout: Some(10_000),
                ..Default::default()
            },
        }
    }

    /// Opens a connection (heartbeat 10 s, as pycti).
    pub async fn connect(&self, name: &str) -> Result<Connection, lapin::Error> {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        Connection::connect_uri(self.uri(), props).await
    }
}

/// Starts consuming `queue` with manual acks and `prefetch` unacked messages at most.
pub async fn consume(
    connection: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> Result<(Channel, Consumer), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}

/// A channel in confirm mode for publishing.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publishes one persistent UTF-8 message and waits for the broker's confirm.
/// Returns false when the broker nacked it.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
) -> Result<bool, lapin::Error> {
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_encoding("utf-8".into());
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?
        .await?;
    Ok(!confirm.is_nack())
}
