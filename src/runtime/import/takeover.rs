//! The importer across replicas: the holder of the import lock runs the scheduler; a replica
//! that takes the lock over adopts the state and schedule the last holder's pings stored, and
//! gives the lock up when its run stalls.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lock;
use super::{Progress, Schedule};
use crate::metrics::Metrics;
use crate::opencti::client::StoredSchedule;
use crate::runtime::send::Sender;
use crate::runtime::{
    ConnectorRun, Platform, Shutdown, final_ping, pinging, register, retry, state,
};

/// The importer across replicas: only the holder of the import lock runs imports and pings
/// the connector's state. Each replica that takes the lock reads the state the last
/// holder's pings stored. One that takes it over from another also keeps the stored
/// schedule, and runs when the next run is due (at once when it is past: a run cut short
/// with its holder is redone). One that finds the lock free at start runs at once, as pycti.
pub(crate) async fn import_under_lock(
    run: &Arc<ConnectorRun>,
    importer: Arc<dyn crate::connectors::ImportConnector>,
    sender: Arc<Sender>,
    schedule: Schedule,
    shutdown: &Shutdown,
) {
    let connector = run.settings.key;
    let metrics = &run.metrics;
    let id = run.settings.id.to_string();
    let lock = lock::ImportLock::new(
        run.broker.clone(),
        &id,
        connector,
        run.platform.ping_interval,
    );
    let mut first = true;
    metrics.set_import_lock(connector, false);
    loop {
        let Some(lock::Acquired { held, waited }) = lock.acquire(&shutdown.stop).await else {
            break;
        };
        metrics.set_import_lock(connector, true);
        // The hold's own shutdown: the daemon's, the loss of the lock, or a stalled run.
        let stalled = CancellationToken::new();
        let hold = Shutdown {
            stop: shutdown.stop.child_token(),
            abort: shutdown.abort.child_token(),
            lock_lost: Some(held.lost.clone()),
            stalled: Some(stalled.clone()),
        };
        // Ends the watch below on every way out, a panic of the scheduler included.
        let _stop_hold = hold.stop.clone().drop_guard();
        let _end_hold = tokio::spawn(watch_hold(
            hold.clone(),
            held.lost.clone(),
            run.progress.clone(),
            stall_limit(&run.platform),
            lock::poll_interval(run.platform.ping_interval),
            metrics.clone(),
            connector,
        ));
        // The state as stored now (the registration's may be older than another replica's
        // last run); the schedule is kept only when this replica takes over from another.
        let due = adopt_stored(run, schedule.period, &hold.stop).await;
        let start_at = if first && !waited {
            due.map(|_| None)
        } else {
            due.map(Some)
        };
        first = false;
        if let Some(start_at) = start_at {
            let scheduler = super::run(
                run.clone(),
                importer.clone(),
                sender.clone(),
                schedule,
                hold.clone(),
                start_at,
            );
            pinging(run, Some(&held.lost), scheduler).await;
            // A replica that lost or gave up the lock leaves the state to the new holder.
            if !hold.lock_gone() {
                final_ping(run).await;
            }
        }
        hold.stop.cancel();
        metrics.set_import_lock(connector, false);
        held.release().await;
        if shutdown.stop.is_cancelled() {
            break;
        }
        if stalled.is_cancelled() {
            // Leave a standby replica the time to take the lock before trying again.
            let pause = 2 * lock::poll_interval(run.platform.ping_interval);
            if !retry::sleep(pause, &shutdown.stop).await {
                break;
            }
        }
        tracing::info!(connector, "Import lock given up; waiting to take it again.");
    }
}

/// How long a run under the import lock may go without progress before its replica gives
/// the lock up: twice the retry budget (every wait of a run is bounded by it).
pub fn stall_limit(platform: &Platform) -> Duration {
    platform.max_retry.saturating_mul(2)
}

/// Watches a hold of the import lock until `hold.stop`: when the lock is lost, or the run
/// makes no progress for `stall_limit`, stops the hold's scheduler and its run.
async fn watch_hold(
    hold: Shutdown,
    lost: CancellationToken,
    progress: Arc<Progress>,
    stall_limit: Duration,
    poll: Duration,
    metrics: Arc<Metrics>,
    connector: &'static str,
) {
    let mut tick = tokio::time::interval(poll);
    loop {
        tokio::select! {
            _ = lost.cancelled() => {
                // Said at once: the run may take a moment to close its work.
                metrics.set_import_lock(connector, false);
                break;
            }
            _ = hold.stop.cancelled() => return,
            _ = tick.tick() => {
                if let Some(idle) = progress.stalled_for(stall_limit) {
                    tracing::warn!(connector, seconds = idle.as_secs(), "The import run made no progress for too long; stopping it and giving the import lock up.");
                    if let Some(stalled) = &hold.stalled {
                        stalled.cancel();
                    }
                    break;
                }
            }
        }
    }
    hold.stop.cancel();
    hold.abort.cancel();
}

/// On taking the lock: reads the state and the schedule the last holder's pings stored into
/// the run; returns when the next run is due. `None` when `stop` fires first.
async fn adopt_stored(
    run: &ConnectorRun,
    period: Duration,
    stop: &CancellationToken,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let connector = run.settings.key;
    let id = run.settings.id.to_string();
    let mut backoff = retry::OPENCTI_BACKOFF;
    let stored = loop {
        let read = tokio::select! {
            r = run.platform.client.connector_schedule(&id) => r,
            _ = stop.cancelled() => return None,
        };
        match read {
            Ok(stored) => break stored.unwrap_or_default(),
            Err(error) if error.is_transient() => {
                tracing::warn!(connector, %error, "Cannot read the connector's state from OpenCTI yet; retrying.");
                if !backoff.wait(stop).await {
                    return None;
                }
            }
            Err(error) => {
                // A platform that refuses the read: register again, which answers the state
                // as at start-up, and run at once, as a restarted connector does.
                tracing::warn!(connector, %error, "OpenCTI refused the schedule read; taking the state from a new registration and running now.");
                let shutdown = Shutdown {
                    stop: stop.clone(),
                    ..Default::default()
                };
                let registration = register(&run.platform, &run.settings, &shutdown).await?;
                break StoredSchedule {
                    state: registration.connector_state,
                    ..Default::default()
                };
            }
        }
    };
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let now = chrono::Utc::now();
    let due = next_due(parse(&stored.next_run), now, period);
    run.state
        .set(state::parse_state(stored.state.as_deref()))
        .await;
    // The pings keep the stored schedule until this replica's first run sets its own.
    run.state
        .set_schedule(stored.last_run.clone(), stored.next_run.clone())
        .await;
    tracing::info!(connector, next_run = %due.to_rfc3339(), "Holding the importer; continuing from the state stored in OpenCTI.");
    Some(due)
}

/// When a holder runs next, from the stored `next_run`: at once without one, and never
/// later than one period from now, whatever a skewed clock or a corrupt state stored.
pub fn next_due(
    stored: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    period: Duration,
) -> chrono::DateTime<chrono::Utc> {
    let latest = chrono::Duration::from_std(period)
        .ok()
        .and_then(|p| now.checked_add_signed(p))
        .unwrap_or(now);
    stored.map_or(now, |due| due.min(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_next_run_never_delays_an_import_by_more_than_one_period() {
        let now = chrono::Utc::now();
        let period = Duration::from_secs(6 * 3600);
        let hour = chrono::Duration::hours(1);
        assert_eq!(next_due(None, now, period), now, "nothing stored: run now");
        assert_eq!(next_due(Some(now - hour), now, period), now - hour);
        assert_eq!(next_due(Some(now + hour), now, period), now + hour);
        let skewed = now + chrono::Duration::days(3650);
        assert_eq!(
            next_due(Some(skewed), now, period),
            now + chrono::Duration::hours(6)
        );
        let end_of_time = chrono::DateTime::<chrono::Utc>::MAX_UTC;
        assert_eq!(
            next_due(Some(end_of_time), now, Duration::MAX),
            now,
            "a period past representable time saturates to now, never panics"
        );
    }
}
