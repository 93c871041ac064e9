//! Connector state kept in OpenCTI through pings, and the ping loop.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::opencti::OpenctiClient;
use crate::opencti::client::ConnectorInfo;

/// A connector's state: a JSON object or nothing.
#[derive(Debug, Default)]
pub struct StateCell {
    inner: Mutex<StateInner>,
}

#[derive(Debug, Default)]
struct StateInner {
    state: Option<Value>,
    version: u64,
    info: ConnectorInfo,
}

/// pycti `get_state`: null, unparsable, non-object or empty-object states are "none".
pub fn parse_state(text: Option<&str>) -> Option<Value> {
    let v: Value = serde_json::from_str(text?).ok()?;
    match &v {
        Value::Object(m) if !m.is_empty() => Some(v),
        _ => None,
    }
}

/// The wire form: JSON text, `"null"` when empty.
pub fn state_text(state: Option<&Value>) -> String {
    state.map(Value::to_string).unwrap_or_else(|| "null".into())
}

impl StateCell {
    pub fn new(initial: Option<Value>) -> Arc<Self> {
        Arc::new(StateCell {
            inner: Mutex::new(StateInner {
                state: initial,
                version: 0,
                info: ConnectorInfo {
                    queue_threshold: 500.0,
                    ..Default::default()
                },
            }),
        })
    }

    pub async fn get(&self) -> Option<Value> {
        self.inner.lock().await.state.clone()
    }

    pub async fn set(&self, state: Option<Value>) {
        let mut g = self.inner.lock().await;
        g.state = state;
        g.version += 1;
    }

    /// Records the push queue's size (MB), the threshold and whether runs are held back.
    pub async fn set_buffering(&self, queue_mb: f64, threshold: f64, buffering: bool) {
        let mut g = self.inner.lock().await;
        g.info.queue_messages_size = queue_mb;
        g.info.queue_threshold = threshold;
        g.info.buffering = buffering;
    }

    /// Records the schedule shown in OpenCTI (`last_run_datetime`, `next_run_datetime`).
    /// A `None` last run (a run held back) keeps the previous one.
    pub async fn set_schedule(&self, last_run: Option<String>, next_run: Option<String>) {
        let mut g = self.inner.lock().await;
        if last_run.is_some() {
            g.info.last_run_datetime = last_run;
        }
        g.info.next_run_datetime = next_run;
    }

    /// One ping: sends the state; adopts the platform's only when it was reset from the UI
    /// (the platform answers no state while we have one). A different, non-empty answer is a
    /// platform lagging behind our pings, and is not adopted (pycti 7 adopted it: the state
    /// could go back to an older run).
    /// Counted in `metrics` (`ping_api_total`, `ping_api_errors_total`).
    pub async fn ping(
        &self,
        client: &OpenctiClient,
        connector_id: &str,
        connector: &str,
        metrics: &Metrics,
    ) -> Result<(), crate::opencti::OpenctiError> {
        let (sent, version, info) = {
            let g = self.inner.lock().await;
            (state_text(g.state.as_ref()), g.version, g.info.clone())
        };
        let remote = client.ping_connector(connector_id, &sent, &info).await;
        metrics.ping(connector, remote.is_ok());
        let remote = remote?;
        let remote_state = parse_state(remote.as_deref());
        if remote_state.is_none() && sent != "null" {
            let mut g = self.inner.lock().await;
            // Only adopt when nothing changed locally since the ping was sent.
            if g.version == version {
                g.state = None;
                g.version += 1;
                tracing::info!(connector, "Connector state has been remotely reset.");
            }
        } else if let Some(remote) = remote_state
            && state_text(Some(&remote)) != sent
        {
            tracing::debug!(connector, remote = %remote, "The platform answered an older state; keeping ours.");
        }
        Ok(())
    }
}

/// Pings every ping interval (first ping at once) until `stop`; never once `stop` fired. A
/// failed ping that may mean the platform is down asks [`super::availability`], so an outage
/// pauses the connectors and shows in `/healthz` even with no message in flight.
pub async fn ping_loop(
    state: Arc<StateCell>,
    platform: Arc<super::Platform>,
    connector_id: String,
    connector: &'static str,
    stop: CancellationToken,
) {
    let client = &platform.client;
    loop {
        // A hung platform must not hold the loop past `stop`; `biased`: no ping starts after it.
        let ping = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = state.ping(client, &connector_id, connector, &platform.metrics) => r,
        };
        if let Err(error) = ping {
            tracing::warn!(connector, %error, "Ping failed.");
            if error.may_mean_down() {
                platform.availability.answers(client, &error).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(platform.ping_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_states_are_none() {
        assert_eq!(parse_state(None), None);
        assert_eq!(parse_state(Some("")), None);
        assert_eq!(parse_state(Some("null")), None);
        assert_eq!(parse_state(Some("{}")), None);
        assert_eq!(parse_state(Some("[1]")), None);
        assert_eq!(
            parse_state(Some("{\"last_run\": 1}")),
            Some(serde_json::json!({"last_run": 1}))
        );
        assert_eq!(state_text(None), "null");
    }
}
