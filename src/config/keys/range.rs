//! The range a numeric key accepts, how it is said in errors and in the README table, and
//! the ranges several keys share.

use std::time::Duration;

use super::IsoDuration;

/// The values of a numeric key: `min` to `max`, both included, and also 0 when `or_zero`
/// (a key whose 0 means "off", such as `rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
    pub or_zero: bool,
}

impl<T: Copy> Range<T> {
    pub const fn new(min: T, max: T) -> Self {
        Range {
            min,
            max,
            or_zero: false,
        }
    }

    /// The same range, with 0 accepted too.
    pub const fn or_zero(self) -> Self {
        Range {
            min: self.min,
            max: self.max,
            or_zero: true,
        }
    }
}

/// A value a [`Range`] can bound.
pub trait Bound: Copy + PartialOrd {
    const ZERO: Self;
    /// As the configuration spells it (`PT1H` for a duration).
    fn show(self) -> String;
}

impl Bound for i64 {
    const ZERO: Self = 0;
    fn show(self) -> String {
        self.to_string()
    }
}

impl Bound for f64 {
    const ZERO: Self = 0.0;
    fn show(self) -> String {
        self.to_string()
    }
}

impl Bound for Duration {
    const ZERO: Self = Duration::ZERO;
    fn show(self) -> String {
        IsoDuration(self).to_string()
    }
}

impl<T: Bound> Range<T> {
    /// Whether `value` is allowed (NaN never is).
    pub fn contains(&self, value: T) -> bool {
        (self.or_zero && value == T::ZERO) || (self.min <= value && value <= self.max)
    }

    /// `1 to 1000`, `0, or 0.001 to 10000`, `PT1S to PT1H`.
    pub fn describe(&self) -> String {
        let span = format!("{} to {}", self.min.show(), self.max.show());
        if self.or_zero {
            format!("{}, or {span}", T::ZERO.show())
        } else {
            span
        }
    }
}

/// 1 KiB, 1 MiB and 1 GiB, for byte ranges.
pub const KIB: i64 = 1024;
pub const MIB: i64 = 1024 * KIB;
pub const GIB: i64 = 1024 * MIB;

/// The ranges shared by several keys. Each says what an operator may want and no more: the
/// code behind a key stays correct across its whole range.
pub mod ranges {
    use super::{GIB, KIB, MIB, Range};
    use std::time::Duration;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const DAY: u64 = 86400;

    /// A timeout of one upstream request: a second to an hour.
    pub const REQUEST_TIMEOUT: Range<Duration> = Range::new(secs(1), secs(3600));
    /// How long an answer is cached: off (PT0S) to a year.
    pub const CACHE_TTL: Range<Duration> = Range::new(secs(0), secs(365 * DAY));
    /// Answers cached: none to a million.
    pub const CACHE_CAPACITY: Range<i64> = Range::new(0, 1_000_000);
    /// Bytes of answers cached: none to 1 GiB.
    pub const CACHE_MAX_BYTES: Range<i64> = Range::new(0, GIB);
    /// Upstream requests a second: 0 (no limit), or one every 1,000 s to 10,000 a second.
    pub const RATE_LIMIT: Range<f64> = Range::new(0.001, 10_000.0).or_zero();
    /// Requests in flight per connector (the AMQP prefetch).
    pub const CONCURRENCY: Range<i64> = Range::new(1, 1000);
    /// An importer's period: a second to a year.
    pub const PERIOD: Range<Duration> = Range::new(secs(1), secs(365 * DAY));
    /// The push queue size, in MB, above which an importer buffers.
    pub const QUEUE_THRESHOLD: Range<f64> = Range::new(1.0, 1_000_000.0);
    /// OpenCTI's confidence scale.
    pub const CONFIDENCE: Range<i64> = Range::new(0, 100);
    /// A score (`x_opencti_score`).
    pub const SCORE: Range<i64> = Range::new(0, 100);
    /// A TCP port.
    pub const PORT: Range<i64> = Range::new(1, 65535);
    /// The pings' interval: at least a second, and at most OpenCTI's 5 minutes, after which
    /// it considers a connector gone (and sends it no auto-enrichment).
    pub const PING_INTERVAL: Range<Duration> =
        Range::new(crate::config::MIN_PING_INTERVAL, secs(300));
    /// The drain on SIGTERM: none to an hour.
    pub const SHUTDOWN_TIMEOUT: Range<Duration> = Range::new(secs(0), secs(3600));
    /// How long transient OpenCTI failures are retried: not at all to a day.
    pub const MAX_RETRY_DURATION: Range<Duration> = Range::new(secs(0), secs(DAY));
    /// A cap on one upstream answer: 1 KiB to 1 GiB.
    pub const UPSTREAM_BYTES: Range<i64> = Range::new(KIB, GIB);
    /// A cap on one GraphQL answer: 1 MiB to 4 GiB.
    pub const OPENCTI_ANSWER_BYTES: Range<i64> = Range::new(MIB, 4 * GIB);
    /// The process's memory budget: 16 MiB to 1 TiB.
    pub const MEMORY_BUDGET: Range<i64> = Range::new(16 * MIB, 1024 * GIB);
    /// The broker's `consumer_timeout`: a minute to 30 days (a broker with none: set the most).
    pub const CONSUMER_TIMEOUT: Range<Duration> = Range::new(secs(60), secs(30 * DAY));
    /// How often IVRE's MaxMind files are checked for a replacement: every lookup to a day.
    pub const FILE_CHECK_INTERVAL: Range<Duration> = Range::new(secs(0), secs(DAY));
}
