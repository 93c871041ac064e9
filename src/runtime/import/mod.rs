//! The scheduled importer: run at start, then every `duration_period` after the end of the
//! previous run (fixed delay, as pycti's `schedule_iso`). Each run: workAdd → send chunks →
//! state → ping → toProcessed. A run that fails transiently is run again under the retry
//! policy within the run's budget (ids are deterministic, so re-sent objects merge); then
//! its work fails. A run cut short by the shutdown deadline fails its work as interrupted and
//! keeps the previous state. A run that could not go on because OpenCTI went down, or
//! because RabbitMQ did not take its bundles in time, says so on its work and is redone as
//! soon as the cause clears, not a period later.
//!
//! Across replicas (`daemon.import_lock`), [`lock`] keeps one holder of the importer and
//! `takeover` runs the scheduler under it.

pub mod lock;
mod once;
mod schedule;
mod takeover;

pub use once::{INTERRUPTED, LOCK_LOST, PLATFORM_DOWN, STALLED};
pub use schedule::{Progress, Schedule, run};
pub(crate) use takeover::import_under_lock;
pub use takeover::{next_due, stall_limit};
