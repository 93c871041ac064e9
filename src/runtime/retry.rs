//! Capped exponential backoff (cancellable), the named backoffs of the runtime, and the
//! retry policy of connector calls.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::connectors::ConnectorError;
use crate::opencti::OpenctiError;

/// Registering with OpenCTI, and restarting a connector that failed or panicked.
pub const RESTART_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// Connecting to RabbitMQ and consuming a queue.
pub const BROKER_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// Retrying an OpenCTI call that failed transiently.
pub const OPENCTI_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// The longest `Retry-After` honoured before the next attempt; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Delays `base`, `2·base`, ... up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { next: base, max }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Sleeps for the next delay; false when `cancel` fired first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        sleep(self.next_delay(), cancel).await
    }
}

/// How upstream calls that fail transiently are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_secs(2),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The retry state of one call.
    pub fn start(&self) -> Retry {
        Retry {
            attempt: 1,
            attempts: self.attempts,
            backoff: Backoff::new(self.base, self.max),
        }
    }
}

/// Where one connector call stands in its [`RetryPolicy`].
#[derive(Debug)]
pub struct Retry {
    /// The attempt that just ran (1 for the first).
    pub attempt: u32,
    attempts: u32,
    backoff: Backoff,
}

impl Retry {
    /// After a failed attempt: the delay before the next one, or `None` when the error is
    /// not transient or the attempts are used up. A `Retry-After` lengthens the delay (up to
    /// [`MAX_RETRY_AFTER`]).
    pub fn after(&mut self, error: &ConnectorError) -> Option<Duration> {
        let ConnectorError::Retryable { retry_after, .. } = error else {
            return None;
        };
        if self.attempt >= self.attempts {
            return None;
        }
        self.attempt += 1;
        let delay = self.backoff.next_delay();
        Some(retry_after.map_or(delay, |r| r.min(MAX_RETRY_AFTER).max(delay)))
    }
}

/// Sleeps for `delay`; false when `cancel` fired first.
pub async fn sleep(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = cancel.cancelled() => false,
    }
}

/// Why a platform call gave up.
#[derive(Debug)]
pub enum Gave<E> {
    /// A permanent error.
    Up(E),
    /// Shutdown deadline: stop and leave the message for redelivery.
    Aborted,
}

/// How long the platform calls of one message or run may be retried, and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Patience<'a> {
    /// Fired at the drain deadline (or when the consumer pauses): give the work back.
    pub abort: &'a CancellationToken,
    /// Transient failures are retried this long (`daemon.max_retry_duration`), then the
    /// last one is final.
    pub max: Duration,
}

impl Patience<'_> {
    /// Retries the OpenCTI call `op` while it fails transiently. A platform that cannot be
    /// connected to at all is given [`UNREACHABLE_PATIENCE`] at most, so the consumer pauses
    /// soon instead of holding its messages for the whole budget.
    pub async fn opencti<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Gave<OpenctiError>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OpenctiError>>,
    {
        let unreachable_since = std::sync::Mutex::new(None::<tokio::time::Instant>);
        let patience = UNREACHABLE_PATIENCE.min(self.max);
        let transient = |e: &OpenctiError| {
            if !e.is_unreachable() {
                return e.is_transient();
            }
            let mut since = unreachable_since.lock().unwrap_or_else(|p| p.into_inner());
            since
                .get_or_insert_with(tokio::time::Instant::now)
                .elapsed()
                < patience
        };
        until_done(*self, what, transient, op).await
    }
}

/// How long a platform that refuses connections is retried inside one message before the
/// message is given back and the consumer pauses.
pub const UNREACHABLE_PATIENCE: Duration = Duration::from_secs(30);

/// Retries `op` while `transient(err)`, with capped backoff, for at most `patience.max`
/// after the first failure (then the last error is returned) or until `patience.abort`.
/// Each attempt is raced against the abort, so a call that hangs cannot hold it.
pub async fn until_done<T, E, F, Fut>(
    patience: Patience<'_>,
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, Gave<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let abort = patience.abort;
    let mut backoff = OPENCTI_BACKOFF;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        if abort.is_cancelled() {
            return Err(Gave::Aborted);
        }
        let result = tokio::select! {
            r = op() => r,
            _ = abort.cancelled() => return Err(Gave::Aborted),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= patience.max {
                    tracing::warn!(error = %e, operation = what, "OpenCTI call still failing; giving up.");
                    return Err(Gave::Up(e));
                }
                tracing::warn!(error = %e, operation = what, "OpenCTI call failed; retrying.");
                if !backoff.wait(abort).await {
                    return Err(Gave::Aborted);
                }
            }
            Err(e) => return Err(Gave::Up(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_transient_errors_within_the_attempts_honouring_retry_after() {
        let policy = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(100),
            max: Duration::from_millis(150),
        };
        let mut retry = policy.start();
        let plain = ConnectorError::retryable("busy");
        assert_eq!(retry.after(&plain), Some(Duration::from_millis(100)));
        let slow = ConnectorError::Retryable {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(retry.after(&slow), Some(Duration::from_secs(2)));
        assert_eq!(retry.after(&plain), None, "three attempts in all");
        assert_eq!(retry.attempt, 3);

        let mut retry = policy.start();
        assert_eq!(retry.after(&ConnectorError::Rejected("no".into())), None);
        assert_eq!(
            retry.after(&ConnectorError::Misconfigured("key".into())),
            None
        );
        let huge = ConnectorError::Retryable {
            message: "tomorrow".into(),
            retry_after: Some(Duration::from_secs(86400)),
        };
        assert_eq!(retry.after(&huge), Some(MAX_RETRY_AFTER));
    }

    async fn attempts_until_given_up(error: OpenctiError) -> (u32, Duration) {
        let abort = CancellationToken::new();
        let patience = Patience {
            abort: &abort,
            max: Duration::from_secs(600),
        };
        let started = tokio::time::Instant::now();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let result: Result<(), _> = patience
            .opencti("test", || {
                attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let error = error.clone();
                async move { Err(error) }
            })
            .await;
        assert!(matches!(result, Err(Gave::Up(_))));
        (attempts.into_inner(), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_platform_is_retried_for_the_budget_and_an_unreachable_one_for_less() {
        let (_, took) = attempts_until_given_up(OpenctiError::Http {
            status: 503,
            body: String::new(),
        })
        .await;
        assert!(
            took >= Duration::from_secs(600) && took < Duration::from_secs(700),
            "{took:?}"
        );
        let (_, took) =
            attempts_until_given_up(OpenctiError::Unreachable("connection refused".into())).await;
        assert!(
            took >= UNREACHABLE_PATIENCE && took < UNREACHABLE_PATIENCE * 3,
            "{took:?}"
        );
        let (attempts, _) = attempts_until_given_up(OpenctiError::Decode("no".into())).await;
        assert_eq!(attempts, 1, "a permanent error is not retried");
    }
}
