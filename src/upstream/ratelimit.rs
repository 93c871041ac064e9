//! The gate every upstream request of a connector passes: a token bucket
//! (`<connector>.rate_limit`, requests per second; governor) and a pause that a 429 with
//! `Retry-After` puts on **all** of the connector's requests, not just the one refused.

use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::metrics::UPSTREAM;

/// The longest `Retry-After` honoured before the next attempt; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A connector's upstream gate. Shared by its clients (cheap to hold in an `Arc`).
pub struct Gate {
    connector: &'static str,
    limiter: Option<DefaultDirectRateLimiter>,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gate(limited: {})", self.limiter.is_some())
    }
}

/// The longest spacing the bucket puts between two requests, whatever the rate: a day.
/// `rate_limit`'s range stays well within it (one request every 1,000 s at least).
pub const MAX_PERIOD: Duration = Duration::from_secs(86400);

/// The spacing between two requests at `per_second`, within 1 ns to [`MAX_PERIOD`]; `None`
/// (no bucket) for 0, a negative rate or NaN. Never panics: a rate too small for a
/// `Duration` gets the longest spacing.
pub fn period(per_second: f64) -> Option<Duration> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(MAX_PERIOD);
    Some(period.clamp(Duration::from_nanos(1), MAX_PERIOD))
}

impl Gate {
    /// `connector`'s gate: at most `per_second` requests a second (fractions allowed); 0 or
    /// less: no limit.
    pub fn new(connector: &'static str, per_second: f64) -> Gate {
        let limiter = period(per_second)
            .and_then(Quota::with_period)
            .map(RateLimiter::direct);
        Gate {
            connector,
            limiter,
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request may go: past any pause, then for a token.
    pub async fn wait(&self) {
        let started = Instant::now();
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let waited = started.elapsed();
        if waited >= Duration::from_millis(1) {
            UPSTREAM.waited(self.connector, waited);
        }
    }

    /// Holds every request back for `delay` (a 429's `Retry-After`, at most
    /// [`MAX_RETRY_AFTER`]); a longer pause already in force stays.
    pub fn pause(&self, delay: Duration) {
        let now = Instant::now();
        // Sixty seconds from now is always representable; should it ever not be, no pause.
        let until = now.checked_add(delay.min(MAX_RETRY_AFTER)).unwrap_or(now);
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// After an answer: a 429 with `Retry-After` pauses the connector.
    pub fn observe(&self, response: &reqwest::Response) {
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
            && let Some(delay) = crate::upstream::http::retry_after(response.headers())
        {
            tracing::warn!(
                seconds = delay.as_secs_f64(),
                "The upstream asked to slow down; pausing this connector's requests."
            );
            self.pause(delay);
        }
    }

    /// Sends `request` through the gate.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        self.wait().await;
        let response = crate::upstream::http::send_counted(self.connector, request).await?;
        self.observe(&response);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_back() {
        let gate = Gate::new("test", 0.0);
        let started = Instant::now();
        gate.wait().await;
        assert!(
            started.elapsed() < Duration::from_millis(1),
            "no limit, no pause"
        );
        gate.pause(Duration::from_secs(3));
        gate.pause(Duration::from_secs(1));
        gate.wait().await;
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "the longer pause stays"
        );
        gate.pause(Duration::from_secs(86400));
        let before = Instant::now();
        gate.wait().await;
        assert!(before.elapsed() <= MAX_RETRY_AFTER + Duration::from_secs(1));
    }

    /// Rates of every magnitude, and every class of `f64` (NaN, infinities, subnormals).
    fn any_rate() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            any::<f64>(),
            (-320i32..320).prop_map(|e| 10f64.powi(e)),
            0.001f64..10_000.0,
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any rate: a spacing within 1 ns to a day, or no bucket, and a gate built without
        /// panicking; within `rate_limit`'s range, the spacing is the rate's.
        #[test]
        fn any_rate_gives_a_bounded_spacing_without_panicking(rate in any_rate()) {
            match period(rate) {
                Some(p) => {
                    proptest::prop_assert!(rate.is_finite() && rate > 0.0);
                    proptest::prop_assert!(p >= Duration::from_nanos(1) && p <= MAX_PERIOD);
                    if (0.001..=10_000.0).contains(&rate) {
                        let exact = 1.0 / rate;
                        // To the nanosecond a `Duration` holds.
                        proptest::prop_assert!((p.as_secs_f64() - exact).abs() <= 1.5e-9);
                    }
                }
                None => proptest::prop_assert!(!(rate.is_finite() && rate > 0.0)),
            }
            let gate = Gate::new("test", rate);
            proptest::prop_assert_eq!(gate.limiter.is_some(), period(rate).is_some());
        }

        /// Any `Retry-After`, the end of time included: the pause ends within a minute.
        #[test]
        fn any_pause_ends_within_a_minute(
            secs in proptest::prelude::any::<u64>(),
            nanos in 0u32..1_000_000_000,
        ) {
            let gate = Gate::new("test", 0.0);
            let before = Instant::now();
            gate.pause(Duration::new(secs, nanos));
            let until = gate.paused_until.lock().unwrap().expect("paused");
            proptest::prop_assert!(until >= before);
            proptest::prop_assert!(until <= Instant::now() + MAX_RETRY_AFTER);
        }
    }

    #[tokio::test]
    async fn the_bucket_spaces_requests_out() {
        let gate = Gate::new("test", 20.0);
        let started = std::time::Instant::now();
        for _ in 0..10 {
            gate.wait().await;
        }
        // The first goes at once, the nine others 50 ms apart.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }
}
