//! `run` (the daemon) and `check-config`: both load the configuration (or a drop-in's) and
//! build every enabled connector; `check-config` prints what was built, `run` hosts it.

use std::io;
use std::process::ExitCode;
use std::sync::Arc;

use opencti_connectors::config::ConnectorSettings;
use opencti_connectors::connectors::Hosted;
use opencti_connectors::dropin::{self, Note};
use opencti_connectors::metrics::Metrics;
use opencti_connectors::migrate::Official;
use opencti_connectors::registry::{self, Config};
use opencti_connectors::runtime::{self, Platform, Shutdown, retry::RetryPolicy};
use opencti_connectors::upstream::http::Egress;
use opencti_connectors::{health, shutdown};

use super::out;

/// `check-config [--online]` when `check` is `Some(online)`, else `run`.
pub async fn check_or_run(
    check: Option<bool>,
    path: &str,
    explicit: bool,
    as_connector: Option<String>,
) -> io::Result<ExitCode> {
    let loaded = match &as_connector {
        Some(name) => {
            dropin::load(name, path, explicit).map(|d| (d.config, Some((d.official, d.notes))))
        }
        None => Config::load(path, explicit).map(|c| (c, None)),
    };
    let (config, dropin) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    super::init_tracing(&config, false);
    if let Some((official, notes)) = &dropin {
        let connector = official.section;
        tracing::info!(
            connector,
            image = %format!("opencti/connector-{}", official.image),
            "Drop-in for the official image: hosting this connector alone."
        );
        for note in notes {
            tracing::warn!(connector, %note, "Drop-in configuration.");
        }
    }
    // Trust and proxies are read once, for the OpenCTI client and every connector.
    let read = config
        .egress()
        .and_then(|egress| Ok((registry::build_with(&config, &egress)?, egress)));
    let (built, egress) = match read {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(online) = check {
        return check_config(&config, &egress, &built, dropin.as_ref(), online).await;
    }
    if built.is_empty() {
        eprintln!(
            "error: no connector is enabled; set e.g. ipinfo.enabled: true (env IPINFO_ENABLED=true)"
        );
        return Ok(ExitCode::from(2));
    }
    Ok(match run(config, egress, built).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Fatal error.");
            ExitCode::FAILURE
        }
    })
}

/// `check-config`: one line per enabled connector; with `online`, one line per check.
async fn check_config(
    config: &Config,
    egress: &Egress,
    built: &[(ConnectorSettings, Hosted)],
    dropin: Option<&(&'static Official, Vec<Note>)>,
    online: bool,
) -> io::Result<ExitCode> {
    for (s, _) in built {
        out::line(format_args!(
            "{}: {} ({}, id {})",
            s.key,
            s.name,
            s.connector_type(),
            s.id
        ))?;
    }
    if let Some((official, notes)) = dropin {
        out::line(format_args!(
            "drop-in for opencti/connector-{} (--as {})",
            official.image, official.section
        ))?;
        for note in notes {
            out::line(format_args!("note: {note}"))?;
        }
    }
    out::line(format_args!(
        "configuration OK ({} connector(s) enabled)",
        built.len()
    ))?;
    if !online {
        return Ok(ExitCode::SUCCESS);
    }
    for line in config.routes(egress) {
        out::line(line)?;
    }
    // A write error ends the printing, not the checks; it is returned after them.
    let mut printed = Ok(());
    let checks = opencti_connectors::online::check(config, egress, built, |c| {
        if printed.is_ok() {
            printed = out::line(c);
        }
    })
    .await;
    printed?;
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    Ok(if failed == 0 {
        out::line(format_args!("online checks OK ({} check(s))", checks.len()))?;
        ExitCode::SUCCESS
    } else {
        out::line(format_args!(
            "{failed} of {} online check(s) failed",
            checks.len()
        ))?;
        ExitCode::FAILURE
    })
}

/// The memory budget: `daemon.memory_budget`, else derived from the cgroup limit, else the
/// fixed default; said once at start-up.
fn memory_budget(config: &Config) -> Arc<opencti_connectors::memory::MemoryBudget> {
    use opencti_connectors::memory;
    let (bytes, from) = match (config.daemon.memory_budget, memory::cgroup_limit()) {
        (Some(bytes), _) => (bytes, "daemon.memory_budget".to_string()),
        (None, Some(limit)) => (
            memory::default_budget(),
            format!(
                "{} % of the cgroup memory limit ({} MiB)",
                memory::CGROUP_SHARE_PERCENT,
                limit / (1024 * 1024)
            ),
        ),
        (None, None) => (memory::DEFAULT_BUDGET, "the default".to_string()),
    };
    tracing::info!(mib = bytes / (1024 * 1024), from = %from, "Memory budget set.");
    memory::MemoryBudget::new(bytes)
}

/// The daemon: OpenCTI client, health endpoint, the platform, then the supervisor until
/// shutdown.
async fn run(
    config: Config,
    egress: Egress,
    built: Vec<(ConnectorSettings, Hosted)>,
) -> anyhow::Result<()> {
    // Validation guarantees url and token when a connector is enabled.
    let url = config.opencti.url.clone().unwrap_or_default();
    let client = config
        .opencti_client(Some(&egress))
        .map_err(anyhow::Error::msg)?;
    let metrics = Arc::new(Metrics::default());
    let shutdown_tokens = Shutdown::default();
    shutdown::install(shutdown_tokens.stop.clone());

    // Informational only (connectors retry on their own), so bounded.
    let check =
        tokio::time::timeout(std::time::Duration::from_secs(15), client.health_check()).await;
    match check.unwrap_or_else(|_| {
        Err(opencti_connectors::opencti::OpenctiError::Transport(
            "timed out".into(),
        ))
    }) {
        Ok(version) => {
            tracing::info!(version = %version, dialect = client.dialect().label(), url = %url, "OpenCTI reachable.")
        }
        Err(error) => {
            tracing::warn!(%error, url = %url, "OpenCTI not reachable yet; connectors will keep retrying.")
        }
    }
    if !config.daemon.listen.is_empty() {
        let addr = config.daemon.listen.parse()?;
        let names = built.iter().map(|(s, _)| s.key).collect();
        let bound =
            health::serve(addr, metrics.clone(), names, shutdown_tokens.stop.clone()).await?;
        tracing::info!(address = %bound, "Health and metrics endpoint listening.");
    }
    let platform = Arc::new(Platform {
        client,
        mq: config.mq.clone(),
        egress: Some(egress),
        ping_interval: config.daemon.ping_interval.0,
        retry: RetryPolicy::default(),
        max_retry: config.daemon.max_retry_duration.0,
        hold_limit: opencti_connectors::config::hold_limit(config.mq.consumer_timeout.0),
        publish_timeout: opencti_connectors::amqp::PUBLISH_TIMEOUT,
        work_ping_interval: runtime::WORK_PING_INTERVAL,
        import_lock: config.daemon.import_lock,
        availability: runtime::availability::Availability::new(metrics.clone()),
        isolation: Arc::default(),
        memory: memory_budget(&config).shown_in(&metrics),
        metrics,
    });
    runtime::run(
        platform,
        built,
        shutdown_tokens,
        config.daemon.shutdown_timeout.0,
    )
    .await;
    tracing::info!("All connectors stopped.");
    Ok(())
}
