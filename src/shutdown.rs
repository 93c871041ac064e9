//! SIGINT / SIGTERM → one cancellation token; a second signal exits at once.

use tokio_util::sync::CancellationToken;

/// Cancels `stop` on the first signal; exits the process with 130 on the second.
pub fn install(stop: CancellationToken) {
    tokio::spawn(async move {
        wait_signal().await;
        tracing::info!(
            "Shutdown requested; finishing in-flight work (send the signal again to exit at once)."
        );
        stop.cancel();
        wait_signal().await;
        tracing::warn!("Second signal: exiting now.");
        std::process::exit(130);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
