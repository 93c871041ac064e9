//! A connector's presence in the platform: its registration (retried until it works) and its
//! pings, which store its state, every ping interval and once more on the way out.

use super::*;

/// The registration input for a connector, in `dialect` (7.x adds `version` and `slug`).
pub fn register_input(settings: &ConnectorSettings, dialect: Dialect) -> RegisterInput {
    let (auto, auto_update, playbook_compatible) = match settings.mode {
        Mode::Enrichment {
            auto,
            auto_update,
            playbook_compatible,
            ..
        } => (auto, auto_update, playbook_compatible),
        Mode::Import { .. } => (false, false, false),
    };
    RegisterInput {
        id: settings.id.to_string(),
        name: settings.name.clone(),
        connector_type: settings.connector_type().to_string(),
        scope: settings.scope.clone(),
        auto,
        auto_update,
        enrichment_resolution: "none".into(),
        only_contextual: false,
        playbook_compatible,
        listen_callback_uri: None,
        v7: Register7x::with_slug(crate::migrate::manifest_slug(settings.key), dialect),
    }
}

/// Registers, retrying until it works; `None` on shutdown.
pub(super) async fn register(
    platform: &Platform,
    settings: &ConnectorSettings,
    shutdown: &Shutdown,
) -> Option<Registration> {
    let connector = settings.key;
    let mut backoff = RESTART_BACKOFF;
    loop {
        // The dialect as the platform's version says now (read first when still unknown).
        let attempt = tokio::select! {
            r = async {
                let input = register_input(settings, platform.client.read_dialect().await);
                platform.client.register_connector(&input).await
            } => r,
            _ = shutdown.stop.cancelled() => return None,
        };
        match attempt {
            Ok(r) => return Some(r),
            Err(error) => {
                let level_error = !error.is_transient();
                if level_error {
                    tracing::error!(connector, %error, "OpenCTI refused the registration; check opencti.token and the connector user's rights.");
                } else {
                    tracing::warn!(connector, %error, "Cannot register with OpenCTI yet; retrying.");
                }
                if !backoff.wait(&shutdown.stop).await {
                    return None;
                }
            }
        }
    }
}

/// Runs `body` while pinging the connector's state every ping interval (the first at once).
/// With `lock_lost`, no ping is sent once it fired: the state is the new holder's.
pub(super) async fn pinging(
    run: &ConnectorRun,
    lock_lost: Option<&CancellationToken>,
    body: impl std::future::Future<Output = ()>,
) {
    let stop = lock_lost.map_or_else(CancellationToken::new, CancellationToken::child_token);
    // Stops the pinger on every way out of this function, a panic of the body included.
    let _stop_pinging = stop.clone().drop_guard();
    let pinger = tokio::spawn(state::ping_loop(
        run.state.clone(),
        run.platform.clone(),
        run.settings.id.to_string(),
        run.settings.key,
        stop.clone(),
    ));
    body.await;
    stop.cancel();
    let _ = pinger.await;
}

/// A last ping so the newest state is stored before we exit; bounded, so a hung platform
/// cannot hold the shutdown.
pub(super) async fn final_ping(run: &ConnectorRun) {
    let (connector, id) = (run.settings.key, run.settings.id.to_string());
    let ping = run
        .state
        .ping(&run.platform.client, &id, connector, &run.metrics);
    match tokio::time::timeout(FINAL_PING_TIMEOUT, ping).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(connector, %error, "Final ping failed; the last state may be lost.")
        }
        Err(_) => tracing::warn!(
            connector,
            "Final ping timed out; the last state may be lost."
        ),
    }
}

/// How long the last ping on shutdown may take.
const FINAL_PING_TIMEOUT: Duration = Duration::from_secs(2);
