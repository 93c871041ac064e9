//! Capped exponential backoff (cancellable), the named backoffs of the runtime, and the
//! retry policy of connector calls. How long a message's calls may be retried in all is its
//! [`super::delivery::Budget`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::connectors::ConnectorError;

/// Registering with OpenCTI, and restarting a connector that failed or panicked.
pub const RESTART_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// Connecting to RabbitMQ and consuming a queue.
pub const BROKER_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// Retrying an OpenCTI call that failed transiently.
pub const OPENCTI_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
pub use crate::upstream::ratelimit::MAX_RETRY_AFTER;

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

/// The instant `after` from `from`, saturating at about 30 years ahead (as tokio's own far
/// future): no duration, however long, can make the runtime's deadlines panic.
pub fn deadline(from: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(after.min(FAR))
        .or_else(|| from.checked_add(FAR))
        .unwrap_or(from)
}

/// Sleeps for `delay`; false when `cancel` fired first.
pub async fn sleep(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every deadline the runtime computes (a message's budget, its hold limit, whether a
        /// wait fits) goes through `deadline`: any duration gives an instant, never a panic.
        #[test]
        fn any_duration_gives_a_deadline_never_a_panic(secs in proptest::num::u64::ANY, nanos in 0u32..1_000_000_000) {
            let now = tokio::time::Instant::now();
            let after = Duration::new(secs, nanos);
            let at = deadline(now, after);
            proptest::prop_assert!(at >= now);
            proptest::prop_assert!(at - now <= after);
        }
    }

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
}
