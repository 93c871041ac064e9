//! Capped exponential backoff, cancellable.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Delays `base`, `2·base`, ... up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
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
        let d = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = cancel.cancelled() => false,
        }
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

/// Why a platform call gave up.
#[derive(Debug)]
pub enum Gave<E> {
    /// A permanent error.
    Up(E),
    /// Shutdown deadline: stop and leave the message for redelivery.
    Aborted,
}

/// Retries `op` while `transient(err)`, with capped backoff, until `abort` fires.
pub async fn until_done<T, E, F, Fut>(
    abort: &CancellationToken,
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, Gave<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        if abort.is_cancelled() {
            return Err(Gave::Aborted);
        }
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) => {
                tracing::warn!(error = %e, operation = what, "OpenCTI call failed; retrying.");
                if !backoff.wait(abort).await {
                    return Err(Gave::Aborted);
                }
            }
            Err(e) => return Err(Gave::Up(e)),
        }
    }
}
