//! What becomes of a message (or an import run) that did not simply succeed: the one failure
//! type ([`Stop`]), the one retry budget per message or run ([`Budget`]), and the one place
//! that settles a message ([`settle`]: ack or give back).
//!
//! The rules:
//! - OpenCTI being **down** is not a failure of the message. A call that fails with a refused
//!   connection, a timeout or a 5xx/429 is followed by a probe of `about`; when that fails
//!   too, the platform is down ([`super::availability`]): the message is given back and
//!   every connector pauses until `about` answers again.
//! - OpenCTI **refusing** this message (a GraphQL error, or a 5xx on one operation while
//!   `about` answers) is a failure of the message. Transient refusals are retried within the
//!   message's budget (`daemon.max_retry_duration`, counted once for the whole handling,
//!   upstream retries included), then the failure is recorded on its work.
//! - A message is acked only once its bundle was accepted, its failure was recorded on its
//!   work (reporting has a budget of its own), or its playbook step was answered; or when
//!   the platform refuses for good to record the outcome (it is then logged). Anything else
//!   gives it back.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Platform;
use super::retry::{OPENCTI_BACKOFF, deadline};
use crate::opencti::OpenctiError;

/// Why a message or a run stopped short of success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It failed for good: its failure is recorded on its work (then it is acked).
    Failed(String),
    /// It did nothing wrong but cannot go on now: the message goes back to its queue, a run
    /// is redone later.
    GiveBack(GiveBack),
}

/// Why a message is given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveBack {
    /// OpenCTI is down: every connector pauses until it answers.
    PlatformDown,
    /// The drain deadline, a lost consumer or a lost import lock.
    Aborted,
    /// Held as long as the broker allows (`mq.consumer_timeout`).
    HeldTooLong,
    /// RabbitMQ did not take a publish in time (a resource alarm blocks publishers).
    Broker(String),
    /// The memory budget stayed full for the whole retry budget.
    MemoryBusy,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed(message) => f.write_str(message),
            Stop::GiveBack(why) => write!(f, "given back: {why}"),
        }
    }
}

impl std::fmt::Display for GiveBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GiveBack::PlatformDown => f.write_str("OpenCTI is unavailable"),
            GiveBack::Aborted => f.write_str("interrupted (shutdown, lost consumer or lock)"),
            GiveBack::HeldTooLong => {
                f.write_str("held as long as RabbitMQ allows (mq.consumer_timeout)")
            }
            GiveBack::Broker(error) => write!(f, "RabbitMQ did not take the bundle: {error}"),
            GiveBack::MemoryBusy => {
                f.write_str("the memory budget (daemon.memory_budget) stayed full")
            }
        }
    }
}

/// The retry budget of one message or run: per-message failures are retried until its
/// deadline; an abort (or a platform found down) gives it back at once.
#[derive(Clone, Copy)]
pub struct Budget<'a> {
    platform: &'a Platform,
    abort: &'a CancellationToken,
    deadline: Instant,
}

impl<'a> Budget<'a> {
    /// A budget of `daemon.max_retry_duration` from now.
    pub fn new(platform: &'a Platform, abort: &'a CancellationToken) -> Self {
        Budget {
            platform,
            abort,
            deadline: deadline(Instant::now(), platform.max_retry),
        }
    }

    /// A fresh budget for recording the outcome: the handling's retries never leave the
    /// report without any.
    pub fn renewed(&self) -> Self {
        Budget::new(self.platform, self.abort)
    }

    /// Fires when the message must be given back.
    pub fn abort(&self) -> &'a CancellationToken {
        self.abort
    }

    /// When the budget ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A ledger of the memory budget for this message or run: its waits for room end with
    /// this budget.
    pub fn ledger(&self) -> crate::memory::Ledger {
        self.platform
            .memory
            .ledger(self.deadline, self.abort.clone())
    }

    /// Whether waiting `delay` before another attempt still fits in the budget.
    pub fn allows(&self, delay: Duration) -> bool {
        deadline(Instant::now(), delay) < self.deadline
    }

    /// What an abort means now: the platform is down, or the message is simply interrupted.
    pub fn why_given_back(&self) -> GiveBack {
        if self.platform.availability.is_down() {
            GiveBack::PlatformDown
        } else {
            GiveBack::Aborted
        }
    }

    /// [`Budget::why_given_back`] as a [`Stop`].
    pub fn given_back(&self) -> Stop {
        Stop::GiveBack(self.why_given_back())
    }

    /// Sleeps `delay`; gives the message back when aborted first.
    pub async fn sleep(&self, delay: Duration) -> Result<(), Stop> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.abort.cancelled() => Err(self.given_back()),
        }
    }

    /// Runs the OpenCTI call `op` under the rules above: retried while the platform refuses
    /// it transiently and the budget lasts; the message is given back when the platform is
    /// down or the abort fires. Each attempt is raced against the abort, so a hung call
    /// cannot hold the message.
    pub async fn opencti<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OpenctiError>>,
    {
        let platform = self.platform;
        let mut backoff = OPENCTI_BACKOFF;
        loop {
            if self.abort.is_cancelled() || platform.availability.is_down() {
                return Err(self.given_back());
            }
            let result = tokio::select! {
                r = op() => r,
                _ = self.abort.cancelled() => return Err(self.given_back()),
            };
            let error = match result {
                Ok(v) => return Ok(v),
                Err(error) => error,
            };
            if error.may_mean_down()
                && !platform
                    .availability
                    .answers(&platform.client, &error)
                    .await
            {
                tracing::warn!(%error, operation = what, "OpenCTI is down; giving the message back.");
                return Err(Stop::GiveBack(GiveBack::PlatformDown));
            }
            if starved() {
                return Err(Stop::GiveBack(GiveBack::MemoryBusy));
            }
            if !error.is_transient() {
                return Err(Stop::Failed(error.to_string()));
            }
            let delay = backoff.next_delay();
            if !self.allows(delay) {
                tracing::warn!(%error, operation = what, "OpenCTI keeps refusing this call; giving up.");
                return Err(Stop::Failed(error.to_string()));
            }
            tracing::warn!(%error, operation = what, "OpenCTI refused the call; retrying.");
            self.sleep(delay).await?;
        }
    }
}

/// Whether the current request waited for the memory budget in vain: whatever failed then
/// failed for want of room, and the message is given back.
pub fn starved() -> bool {
    crate::memory::current().is_some_and(|ledger| ledger.starved())
}

/// The [`Stop`] of a charge the memory budget refused.
pub fn memory_stop(error: crate::memory::MemoryError) -> Stop {
    match error {
        crate::memory::MemoryError::Busy => Stop::GiveBack(GiveBack::MemoryBusy),
        never => Stop::Failed(never.to_string()),
    }
}

/// What becomes of a message once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    /// Nack with requeue: the broker delivers it again (here or to another replica).
    GiveBack,
}

/// The one place that decides: a handled message is acked; one that must be given back is
/// given back; one whose outcome the platform refused to record is acked with an error
/// logged (retrying could not change the platform's answer).
pub fn settle(connector: &str, result: &Result<(), Stop>) -> Settlement {
    match result {
        Ok(()) => Settlement::Ack,
        Err(Stop::GiveBack(why)) => {
            tracing::info!(connector, reason = %why, "Giving the message back to the queue.");
            Settlement::GiveBack
        }
        Err(Stop::Failed(error)) => {
            tracing::error!(connector, %error, "OpenCTI refused to record the outcome of the message; acking it.");
            Settlement::Ack
        }
    }
}
