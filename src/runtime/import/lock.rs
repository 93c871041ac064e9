//! The import lock: one scheduled importer across replicas, coordinated by RabbitMQ alone.
//!
//! The lock is an exclusive queue, `opencti-connectors.import-lock.<connector id>`. The broker
//! lets one connection declare it and refuses the others (`RESOURCE_LOCKED`) until that
//! connection closes, when the broker deletes the queue. A SIGKILLed holder's socket closes
//! at once; a holder cut off from the network is dropped after the lock connection's missed
//! heartbeats (a heartbeat of a quarter of the ping interval). Replicas that wait try again
//! every quarter of the ping interval, so one of them takes over within two ping intervals.
//!
//! The holder checks its hold on the same schedule (a passive declare on its connection):
//! when the check fails or does not answer in time, the hold is lost and the holder stops
//! importing, since another replica may hold the lock by then.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::runtime::retry::{self, BROKER_BACKOFF};
// The lock connection carries no message: the smallest frames keep its buffers small.
use crate::amqp::{BrokerAddress, FRAME_MIN, close_bounded};

/// The lock queue of a connector.
pub fn queue_name(connector_id: &str) -> String {
    format!("opencti-connectors.import-lock.{connector_id}")
}

/// How often a waiting replica tries the lock and a holder checks its hold.
pub fn poll_interval(ping_interval: Duration) -> Duration {
    (ping_interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(10))
}

/// The lock connection's heartbeat (seconds): a quarter of the ping interval, 1 to 10 s. The
/// broker drops a silent peer after two to three heartbeats (measured: 3 s at 1 s), so a
/// holder lost to the network is replaced within two ping intervals from PT2S on.
pub fn heartbeat(ping_interval: Duration) -> u16 {
    (ping_interval.as_secs() / 4).clamp(1, 10) as u16
}

/// One connector's lock.
pub struct ImportLock {
    broker: BrokerAddress,
    queue: String,
    connector: &'static str,
    ping_interval: Duration,
}

/// The lock, held: dropping it (or [`Held::release`]) lets another replica take it.
pub struct Held {
    connection: Connection,
    /// Fires when the hold is lost (the broker connection failed or stopped answering).
    pub lost: CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
}

/// How an acquisition went.
pub struct Acquired {
    pub held: Held,
    /// Another replica held the lock while this one tried: this is a takeover.
    pub waited: bool,
}

/// Whether the broker refused the declare because another connection owns the queue.
fn is_locked(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(e)
            if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED))
    )
}

impl ImportLock {
    pub fn new(
        broker: BrokerAddress,
        connector_id: &str,
        connector: &'static str,
        ping_interval: Duration,
    ) -> Self {
        ImportLock {
            broker,
            queue: queue_name(connector_id),
            connector,
            ping_interval,
        }
    }

    /// The connector's key.
    pub fn connector(&self) -> &'static str {
        self.connector
    }

    fn options(passive: bool) -> QueueDeclareOptions {
        QueueDeclareOptions {
            passive,
            exclusive: true,
            auto_delete: true,
            durable: false,
            nowait: false,
        }
    }

    /// Waits until this replica holds the lock; `None` when `stop` fires first.
    pub async fn acquire(&self, stop: &CancellationToken) -> Option<Acquired> {
        let connector = self.connector;
        let poll = poll_interval(self.ping_interval);
        let mut waited = false;
        let mut backoff = BROKER_BACKOFF;
        loop {
            let name = format!("opencti-connectors {connector} import lock");
            let connect = self
                .broker
                .connect_with(&name, heartbeat(self.ping_interval), FRAME_MIN);
            let connection = tokio::select! {
                c = connect => c,
                _ = stop.cancelled() => return None,
            };
            let connection = match connection {
                Ok(c) => c,
                Err(error) => {
                    tracing::warn!(connector, broker = ?self.broker, %error, "Cannot reach RabbitMQ for the import lock; retrying.");
                    if !backoff.wait(stop).await {
                        return None;
                    }
                    continue;
                }
            };
            backoff = BROKER_BACKOFF;
            let mut told = false;
            // Tries on this connection until it fails.
            loop {
                // A broker gone silent answers nothing: that is a lost connection too.
                let bound = Duration::from_secs(3 * u64::from(heartbeat(self.ping_interval)));
                let attempt = tokio::select! {
                    a = tokio::time::timeout(bound, self.try_declare(&connection)) => a,
                    _ = stop.cancelled() => {
                        close_bounded(&connection, "shutdown").await;
                        return None;
                    }
                };
                let Ok(attempt) = attempt else {
                    tracing::warn!(
                        connector,
                        "RabbitMQ did not answer the import lock's declare; reconnecting."
                    );
                    break;
                };
                match attempt {
                    Ok(channel) => {
                        tracing::info!(connector, queue = %self.queue, "Holding the import lock: this replica runs the imports.");
                        return Some(Acquired {
                            held: self.hold(connection, channel),
                            waited,
                        });
                    }
                    Err(error) if is_locked(&error) => {
                        waited = true;
                        if !told {
                            tracing::info!(connector, queue = %self.queue, "Another replica holds the import lock; standing by.");
                            told = true;
                        }
                    }
                    Err(error) if connection.status().connected() => {
                        // Refused for another reason (permissions, a queue of that name
                        // declared otherwise): say so, keep trying at the slower pace.
                        tracing::error!(connector, queue = %self.queue, %error, "RabbitMQ refused the import lock queue; the connection's user needs the configure permission on it.");
                        if !backoff.wait(stop).await {
                            close_bounded(&connection, "shutdown").await;
                            return None;
                        }
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(connector, %error, "Lost the broker connection while waiting for the import lock; reconnecting.");
                        break;
                    }
                }
                if !retry::sleep(poll, stop).await {
                    close_bounded(&connection, "shutdown").await;
                    return None;
                }
            }
            if !backoff.wait(stop).await {
                return None;
            }
        }
    }

    /// One try without waiting (`check-config --online`): whether the lock is free (`true`)
    /// or held by a running replica (`false`); an error when the broker refuses the queue.
    /// A free lock is let go at once.
    pub async fn probe(&self) -> Result<bool, String> {
        let name = format!("opencti-connectors {} import lock check", self.connector);
        let connection = self
            .broker
            .connect_with(&name, heartbeat(self.ping_interval), FRAME_MIN)
            .await
            .map_err(|e| format!("{:?}: {e}", self.broker))?;
        let attempt = self.try_declare(&connection).await;
        close_bounded(&connection, "check done").await;
        match attempt {
            Ok(_) => Ok(true),
            Err(error) if is_locked(&error) => Ok(false),
            Err(error) => Err(format!(
                "RabbitMQ refused the lock queue {} (the user needs the configure permission on it): {error}",
                self.queue
            )),
        }
    }

    /// One try: a channel and an exclusive declare (a refused declare closes the channel,
    /// which the client then forgets, so a standby can try for as long as it runs).
    pub async fn try_declare(&self, connection: &Connection) -> Result<Channel, lapin::Error> {
        let channel = crate::amqp::channel(connection).await?;
        let declare = channel.queue_declare(
            self.queue.as_str().into(),
            Self::options(false),
            FieldTable::default(),
        );
        crate::amqp::bounded(
            "the lock's declare",
            crate::amqp::OPERATION_TIMEOUT,
            declare,
        )
        .await?;
        Ok(channel)
    }

    /// Watches the hold: a passive declare every poll, each bounded by the poll interval or
    /// one heartbeat, whichever is longer (a loaded machine can take longer than a short
    /// poll to answer; a broker silent for a heartbeat has lost the connection anyway).
    fn hold(&self, connection: Connection, channel: Channel) -> Held {
        let lost = CancellationToken::new();
        let poll = poll_interval(self.ping_interval);
        let bound = poll.max(Duration::from_secs(heartbeat(self.ping_interval).into()));
        let (queue, connector) = (self.queue.clone(), self.connector);
        let watcher = tokio::spawn({
            let lost = lost.clone();
            async move {
                loop {
                    tokio::time::sleep(poll).await;
                    let check = channel.queue_declare(
                        queue.as_str().into(),
                        Self::options(true),
                        FieldTable::default(),
                    );
                    let why = match tokio::time::timeout(bound, check).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(error)) => error.to_string(),
                        Err(_) => "the broker did not answer in time".to_string(),
                    };
                    tracing::warn!(connector, reason = %why, "Lost the import lock; stopping the imports of this replica.");
                    lost.cancel();
                    return;
                }
            }
        });
        Held {
            connection,
            lost,
            watcher,
        }
    }
}

impl Held {
    /// Gives the lock up: closes its connection, so the broker deletes the queue at once.
    pub async fn release(self) {
        self.watcher.abort();
        // A lost hold's connection may not answer: dropping it is all that is left to do.
        if !self.lost.is_cancelled() {
            close_bounded(&self.connection, "import lock released").await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_and_dead_holders_fit_in_two_ping_intervals() {
        for secs in [2, 3, 5, 8, 19, 40, 120, 3600] {
            let ping = Duration::from_secs(secs);
            let poll = poll_interval(ping);
            let beat = Duration::from_secs(heartbeat(ping).into());
            // The broker drops a silent holder after at most three heartbeats; a waiting
            // replica then needs at most one poll.
            assert!(3 * beat + poll <= 2 * ping, "ping {secs} s");
            assert!(poll >= Duration::from_millis(250));
            assert!(beat <= Duration::from_secs(crate::amqp::HEARTBEAT.into()));
        }
    }
}
