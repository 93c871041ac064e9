//! Poison messages: a request whose processing killed the process twice is not processed a
//! third time; requests that were merely in flight beside it are processed normally.
//!
//! OpenCTI's listen queues are classic queues and count no deliveries, so what is known of a
//! message lives on the broker, where every replica reads it, as flags: durable queues named
//! `opencti-connectors.delivery.<connector id>.<sha-256 of the body, 128 bits>.<flag>`,
//! carrying no message (their existence is the flag), expiring after 7 days unused.
//!
//! - A first delivery (`redelivered` false) is processed with the others: no flag is read,
//!   the hot path makes no extra call.
//! - When a replica gives a message back on purpose (OpenCTI down, the drain deadline, held
//!   too long), it first sets the message's `returned` flag: its next delivery is processed
//!   with the others too.
//! - A redelivered message without that flag may have been in flight when a process died. It
//!   is a suspect: it waits until nothing else runs in the process, sets its `alone` flag,
//!   runs alone, and clears the flag once settled. If the process dies meanwhile, it died of
//!   this message alone: the next delivery finds the flag, and the message is failed on its
//!   work and acked without being processed. A poison message therefore costs two crashes,
//!   the first with its neighbours (who run alone next, one by one, and succeed), the second
//!   alone.

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ErrorKind};
use sha2::{Digest, Sha256};

use crate::amqp::{self, OPERATION_TIMEOUT};

/// The work message of a request that crashed the process twice.
pub const CONVICTED: &str = "This request crashed the connector twice (the process died while processing it, once alone); it was not retried.";

/// How long an unused flag lives on the broker (ms): a message left in its queue longer
/// than this loses what was known of it.
const FLAG_EXPIRES_MS: u32 = 7 * 24 * 3600 * 1000;

/// What is known of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A first delivery: processed with the others.
    Fresh,
    /// Given back on purpose by a replica: processed with the others.
    Returned,
    /// Redelivered for no known reason: it may have been in flight when a process died, so
    /// it runs alone.
    Suspect,
    /// Its run alone ended with the process: not processed again.
    Convicted,
}

/// A flag of one message.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    /// The message runs alone in a process now.
    Alone,
    /// A replica gave the message back on purpose.
    Returned,
}

impl Flag {
    fn name(self) -> &'static str {
        match self {
            Flag::Alone => "alone",
            Flag::Returned => "returned",
        }
    }
}

/// The flags of one message, on the broker connection that consumed it.
pub struct Records<'a> {
    connection: &'a Connection,
    prefix: String,
}

/// Whether the broker answered that the queue does not exist.
fn not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}

impl<'a> Records<'a> {
    pub fn new(connection: &'a Connection, connector_id: &str, body: &[u8]) -> Self {
        let digest = Sha256::digest(body);
        let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Records {
            connection,
            prefix: format!("opencti-connectors.delivery.{connector_id}.{hash}"),
        }
    }

    fn queue(&self, flag: Flag) -> String {
        format!("{}.{}", self.prefix, flag.name())
    }

    /// What is known of a redelivered message. A flag that cannot be read counts as absent:
    /// the message is then a suspect, the safe side.
    pub async fn verdict(&self, connector: &str) -> Verdict {
        match self.exists(Flag::Alone).await {
            Ok(true) => return Verdict::Convicted,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(connector, %error, "Cannot read a redelivered message's flags on RabbitMQ; processing it alone.");
                return Verdict::Suspect;
            }
        }
        match self.exists(Flag::Returned).await {
            Ok(true) => {
                if let Err(error) = self.clear(Flag::Returned).await {
                    tracing::warn!(connector, %error, "Cannot clear a message's flag on RabbitMQ.");
                }
                Verdict::Returned
            }
            Ok(false) => Verdict::Suspect,
            Err(error) => {
                tracing::warn!(connector, %error, "Cannot read a redelivered message's flags on RabbitMQ; processing it alone.");
                Verdict::Suspect
            }
        }
    }

    /// Sets `flag` (durably: it must outlive a crash of this process).
    pub async fn mark(&self, flag: Flag) -> Result<(), lapin::Error> {
        let channel = amqp::channel(self.connection).await?;
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongUInt(FLAG_EXPIRES_MS));
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let queue = self.queue(flag);
        let declare = channel.queue_declare(queue.as_str().into(), options, args);
        let declared = amqp::bounded("a flag's declare", OPERATION_TIMEOUT, declare).await;
        amqp::close_channel(&channel, "flag set").await;
        declared.map(drop)
    }

    /// Clears `flag` (a flag already gone is cleared).
    pub async fn clear(&self, flag: Flag) -> Result<(), lapin::Error> {
        let channel = amqp::channel(self.connection).await?;
        let queue = self.queue(flag);
        let delete = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default());
        match amqp::bounded("a flag's delete", OPERATION_TIMEOUT, delete).await {
            Ok(_) => {
                amqp::close_channel(&channel, "flag cleared").await;
                Ok(())
            }
            Err(error) if not_found(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Whether `flag` is set (a passive declare; a missing queue closes its channel).
    async fn exists(&self, flag: Flag) -> Result<bool, lapin::Error> {
        let channel = amqp::channel(self.connection).await?;
        let queue = self.queue(flag);
        let options = QueueDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        };
        let declare = channel.queue_declare(queue.as_str().into(), options, FieldTable::default());
        match amqp::bounded("a flag's read", OPERATION_TIMEOUT, declare).await {
            Ok(_) => {
                amqp::close_channel(&channel, "flag read").await;
                Ok(true)
            }
            Err(error) if not_found(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }
}
