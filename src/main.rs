//! `opencti-connectors`: args, config, tracing, run, exit code.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use opencti_connectors::config::LogFormat;
use opencti_connectors::metrics::Metrics;
use opencti_connectors::registry::{self, Config};
use opencti_connectors::runtime::{self, Platform, Shutdown, retry::RetryPolicy};
use opencti_connectors::{connectors, dropin, health, shutdown};

#[derive(Parser)]
#[command(
    version,
    about = "One daemon hosting OpenCTI connectors (IPinfo, IVRE, RiskIQ, LastInfoSec, IPsum)"
)]
struct Args {
    /// Config file; when the default is absent the environment alone configures the daemon.
    #[arg(
        long,
        short,
        env = "CONFIG_FILE",
        default_value = "config.yml",
        global = true
    )]
    config: String,
    /// Host only this connector (ipinfo, ipsum, riskiq, lastinfosec, ivre), configured as its
    /// official image is: OPENCTI_*, the bare CONNECTOR_* names and the connector's own
    /// (run and check-config).
    #[arg(long = "as", value_name = "CONNECTOR", env = dropin::AS_ENV, global = true)]
    as_connector: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the enabled connectors (the default).
    Run,
    /// Load and validate the configuration, print the enabled connectors, exit.
    CheckConfig {
        /// Also check, with one cheap call each, the OpenCTI URL and token, each connector's
        /// registration, RabbitMQ, and each enabled connector's upstream key; one line per
        /// check, exit 1 when one fails.
        #[arg(long)]
        online: bool,
    },
    /// Print the Markdown table of every configuration key.
    ConfigTable,
    /// Ask a running daemon's health endpoint; exit 0 when healthy (for Docker HEALTHCHECK).
    Healthcheck {
        /// Default: http://127.0.0.1:<port>/healthz, the port of DAEMON_LISTEN, else of
        /// CONNECTOR_METRICS_PORT (a drop-in's), else 9095.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the integration manager's custom catalog: one contract per connector, each
    /// pointing at that connector's image (`<image>-<connector>:<version>`).
    Catalog {
        /// The images' name before `-<connector>`.
        #[arg(long, default_value = "opencti-connectors")]
        image: String,
        /// The images' tag.
        #[arg(long, default_value = "latest")]
        version: String,
    },
    /// Enrich one entity with a connector and print the STIX bundle the daemon would send.
    /// Needs only the connector's upstream settings: no OpenCTI, no RabbitMQ.
    Enrich {
        /// The connector (ipinfo, riskiq, lastinfosec, ivre).
        connector: String,
        /// The OpenCTI entity type (IPv4-Addr, Domain-Name, StixFile, …).
        entity_type: String,
        /// The value (an address, a name, a hash, an AS number).
        value: String,
        /// The entity's marking, checked against the connector's max TLP.
        #[arg(long, default_value = "TLP:CLEAR")]
        tlp: String,
    },
    /// Read the official connectors' docker-compose files and write the daemon's config.yml,
    /// with the secrets in a separate env file; report what could not be mapped.
    Migrate {
        /// The compose files (docker-compose.yml of connector-ipinfo, -ipsum, …).
        #[arg(required = true)]
        compose_files: Vec<std::path::PathBuf>,
        /// The configuration to write.
        #[arg(long, short, default_value = "config.yml")]
        output: std::path::PathBuf,
        /// The env file for the secrets (OPENCTI_TOKEN, IPINFO_TOKEN, …).
        #[arg(long, default_value = "connectors.env")]
        env_file: std::path::PathBuf,
        /// Overwrite the output files when they exist.
        #[arg(long)]
        force: bool,
    },
    /// Run one import and write its STIX bundle. Needs no OpenCTI; with no configuration it
    /// imports IPsum's public feed.
    Import {
        /// The importer (ipsum).
        connector: String,
        /// A feed file or URL instead of the configured one.
        #[arg(long)]
        feed: Option<String>,
        /// Where to write the bundle (stdout by default).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: a background thread hands freed memory back to the system within a
/// second (`dirty_decay_ms`, no muzzy stage), over two arenas.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main(args))
}

async fn async_main(args: Args) -> ExitCode {
    let command = args.command.unwrap_or(Command::Run);
    // OPENCTI_CONNECTORS_AS selects the drop-in for the commands that load a configuration
    // (an image made for one connector sets it, and still runs its other commands); `--as`
    // given to another command is a mistake.
    let as_connector = args.as_connector.filter(|s| !s.trim().is_empty());
    let dropin_command = matches!(command, Command::Run | Command::CheckConfig { .. });
    let as_flag = std::env::args().any(|a| a == "--as" || a.starts_with("--as="));
    if as_flag && !dropin_command {
        eprintln!("error: --as applies to run and check-config only");
        return ExitCode::from(2);
    }
    if let Command::ConfigTable = command {
        print!("{}", registry::markdown_table());
        return ExitCode::SUCCESS;
    }
    if let Command::Catalog { image, version } = &command {
        // A map of plain JSON values always serialises.
        let text = serde_json::to_string_pretty(&dropin::catalog::catalog(image, version))
            .unwrap_or_default();
        println!("{text}");
        return ExitCode::SUCCESS;
    }
    if let Command::Healthcheck { url } = &command {
        let url = url.clone().unwrap_or_else(|| {
            let env: std::collections::HashMap<String, String> = std::env::vars().collect();
            health::default_url(&env)
        });
        return match health::probe(&url).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Migrate {
        compose_files,
        output,
        env_file,
        force,
    } = &command
    {
        return migrate(compose_files, output, env_file, *force);
    }
    let explicit = std::env::args()
        .any(|a| a == "--config" || a == "-c" || a.starts_with("--config="))
        || std::env::var_os("CONFIG_FILE").is_some();
    if matches!(command, Command::Enrich { .. } | Command::Import { .. }) {
        return one_shot(command, &args.config, explicit).await;
    }
    let loaded = match &as_connector {
        Some(name) => dropin::load(name, &args.config, explicit)
            .map(|d| (d.config, Some((d.official, d.notes)))),
        None => Config::load(&args.config, explicit).map(|c| (c, None)),
    };
    let (config, dropin) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config, false);
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
    let built = match registry::build_all(&config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig { online } = command {
        for (s, _) in &built {
            println!(
                "{}: {} ({}, id {})",
                s.key,
                s.name,
                s.connector_type(),
                s.id
            );
        }
        if let Some((official, notes)) = &dropin {
            println!(
                "drop-in for opencti/connector-{} (--as {})",
                official.image, official.section
            );
            for note in notes {
                println!("note: {note}");
            }
        }
        println!("configuration OK ({} connector(s) enabled)", built.len());
        if !online {
            return ExitCode::SUCCESS;
        }
        // Checked by build_all above.
        if let Ok(egress) = config.egress() {
            for line in config.routes(&egress) {
                println!("{line}");
            }
        }
        let checks = opencti_connectors::online::check(&config, &built, |c| println!("{c}")).await;
        let failed = checks.iter().filter(|c| c.result.is_err()).count();
        return if failed == 0 {
            println!("online checks OK ({} check(s))", checks.len());
            ExitCode::SUCCESS
        } else {
            println!("{failed} of {} online check(s) failed", checks.len());
            ExitCode::FAILURE
        };
    }
    if built.is_empty() {
        eprintln!(
            "error: no connector is enabled; set e.g. ipinfo.enabled: true (env IPINFO_ENABLED=true)"
        );
        return ExitCode::from(2);
    }
    match run(config, built).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Fatal error.");
            ExitCode::FAILURE
        }
    }
}

/// `migrate`: writes the configuration and the env file, prints the report; exit 2 when
/// nothing could be written.
fn migrate(
    files: &[std::path::PathBuf],
    output: &std::path::Path,
    env_file: &std::path::Path,
    force: bool,
) -> ExitCode {
    let m = match opencti_connectors::migrate::migrate(files) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for path in [output, env_file] {
        if path.exists() && !force {
            eprintln!(
                "error: {} exists; use --force to overwrite it",
                path.display()
            );
            return ExitCode::from(2);
        }
    }
    if let Err(e) = write_private(env_file, &m.env_file) {
        eprintln!("error: cannot write {}: {e}", env_file.display());
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::write(output, &m.yaml) {
        eprintln!("error: cannot write {}: {e}", output.display());
        return ExitCode::from(2);
    }
    println!("mapped:");
    for line in &m.mapped {
        println!("  {line}");
    }
    if !m.unmapped.is_empty() {
        println!("not mapped:");
        for line in &m.unmapped {
            println!("  {line}");
        }
    }
    println!(
        "wrote {} ({}) and {} ({} secret(s))",
        output.display(),
        m.sections.join(", "),
        env_file.display(),
        m.secrets.len()
    );
    let env = m.secrets.clone().into_iter().collect();
    match Config::from_sources(Some(&m.yaml), &env)
        .and_then(|c| registry::build_all(&c).map(|_| ()))
    {
        Ok(()) => println!(
            "the configuration loads: run `opencti-connectors --config {}` with the variables of {}",
            output.display(),
            env_file.display()
        ),
        Err(e) => println!("the configuration does not load yet: {e}"),
    }
    ExitCode::SUCCESS
}

/// Writes `text` to `path`, readable by its owner only (it holds secrets).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // The mode above applies only to a file this creates: one that `--force` overwrites is
    // made private too, before the secrets go in.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// Logs to stdout (the daemon) or stderr (one-shot commands, whose stdout is the bundle).
fn init_tracing(config: &Config, to_stderr: bool) {
    let filter = EnvFilter::try_new(config.log_filter()).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: piped and journald logs stay plain text.
    use std::io::IsTerminal;
    let ansi = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    match (config.log.format, to_stderr) {
        (LogFormat::Json, false) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        (LogFormat::Json, true) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .init(),
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).init(),
    }
}

/// `enrich` and `import`: exit 0 on success, 1 when the upstream or the network failed, 2 on
/// bad arguments or configuration.
async fn one_shot(command: Command, path: &str, explicit: bool) -> ExitCode {
    use opencti_connectors::oneshot::{self, Feed, OneShotError, Printed};
    let config = match Config::load_unchecked(path, explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config, true);
    let (result, output) = match command {
        Command::Enrich {
            connector,
            entity_type,
            value,
            tlp,
        } => {
            let result = match opencti_connectors::stix::Tlp::parse(&tlp) {
                Some(tlp) => oneshot::enrich(&config, &connector, &entity_type, &value, tlp).await,
                None => Err(OneShotError::Usage(format!(
                    "`{tlp}` is not a TLP; expected e.g. TLP:GREEN"
                ))),
            };
            (result, None)
        }
        Command::Import {
            connector,
            feed,
            output,
        } => {
            let feed = match feed {
                None => Feed::Configured,
                Some(f) if f.starts_with("http://") || f.starts_with("https://") => Feed::Url(f),
                Some(f) => Feed::File(f.into()),
            };
            let result = if connector == "ipsum" {
                oneshot::import_ipsum(&config, feed).await
            } else {
                Err(OneShotError::Usage(format!(
                    "`{connector}` is not an importer; expected: ipsum"
                )))
            };
            (result, output)
        }
        _ => unreachable!("only one-shot commands come here"),
    };
    match result {
        Ok(Printed::Bundle(bundle)) => {
            // A bundle of plain JSON values always serialises.
            let text = serde_json::to_string_pretty(&bundle).unwrap_or_default();
            let written = match &output {
                Some(path) => std::fs::write(path, text + "\n"),
                None => {
                    println!("{text}");
                    Ok(())
                }
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the bundle: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Ok(Printed::Nothing(message)) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
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

async fn run(
    config: Config,
    built: Vec<(
        opencti_connectors::config::ConnectorSettings,
        connectors::Hosted,
    )>,
) -> anyhow::Result<()> {
    // Validation guarantees url and token when a connector is enabled.
    let url = config.opencti.url.clone().unwrap_or_default();
    // Read (and so checked) by build_all before this runs.
    let egress = config.egress()?;
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
