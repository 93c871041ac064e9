//! The health and metrics endpoint: `GET /healthz` (200 when every enabled connector is
//! registered and serving, else 503) and `GET /metrics` (Prometheus text).
//!
//! While OpenCTI is down, `/healthz` answers 503 and says since when and why: every
//! connector has paused. The body of `/healthz` also says, for each importer, whether this replica holds its import
//! lock (`import lock held`) or stands by (`standby`); a standby replica is ready.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    connectors: Arc<Vec<&'static str>>,
}

/// Serves until `stop`; returns the bound address through `bound`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    connectors: Vec<&'static str>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState {
            metrics,
            connectors: Arc::new(connectors),
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(local)
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, String) {
    let down: Vec<&str> = s
        .connectors
        .iter()
        .copied()
        .filter(|c| !s.metrics.all_up(&[c]))
        .collect();
    let outage = s.metrics.platform_unavailable();
    let (status, mut body) = if down.is_empty() && outage.is_none() {
        (StatusCode::OK, "ok\n".to_string())
    } else if down.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", down.join(", ")),
        )
    };
    if let Some(outage) = outage {
        body.push_str(&format!(
            "opencti: {outage}; every connector is paused and its messages wait in the queue\n"
        ));
    }
    for connector in s.connectors.iter() {
        match s.metrics.import_lock(connector) {
            Some(true) => body.push_str(&format!("{connector}: import lock held\n")),
            Some(false) => body.push_str(&format!(
                "{connector}: standby, waiting for the import lock\n"
            )),
            None => {}
        }
    }
    (status, body)
}

async fn metrics_text(
    State(s): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// The `/healthz` a `healthcheck` without `--url` asks, on the loopback: at the port of
/// `DAEMON_LISTEN`, else of `CONNECTOR_METRICS_PORT` (where a drop-in listens when that is
/// set), else 9095. It reads the environment only: the image's `HEALTHCHECK` runs in the
/// daemon's environment, whatever the mode.
pub fn default_url(env: &std::collections::HashMap<String, String>) -> String {
    let set = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let port = set("DAEMON_LISTEN")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
        .or_else(|| set("CONNECTOR_METRICS_PORT").and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(crate::dropin::PYCTI_METRICS_PORT);
    format!("http://127.0.0.1:{port}/healthz")
}

/// `opencti-connectors healthcheck`: asks a running daemon's `/healthz`.
pub async fn probe(url: &str) -> Result<(), String> {
    // A local port: never through a proxy the environment names.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::upstream::http::describe(&e)))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "{url}: HTTP {} {}",
            response.status().as_u16(),
            response.text().await.unwrap_or_default().trim()
        ))
    }
}
