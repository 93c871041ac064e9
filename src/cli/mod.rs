//! The subcommands: their arguments, and one module per group. `main.rs` parses the arguments
//! and dispatches here.

pub mod info;
pub mod migrate;
pub mod oneshot;
pub mod out;
pub mod run;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use opencti_connectors::config::{LogFormat, SectionSpec};
use opencti_connectors::dropin;
use opencti_connectors::registry::{self, Config};

// The help texts that name the connectors are built from the registry (`about = about()`,
// `help = …`), so a new connector appears in them.
#[derive(Parser)]
#[command(version, about = about())]
pub struct Args {
    /// Config file; when the default is absent the environment alone configures the daemon.
    #[arg(
        long,
        short,
        env = "CONFIG_FILE",
        default_value = "config.yml",
        global = true
    )]
    pub config: String,
    // Host only this connector, configured as its official image is.
    #[arg(
        long = "as",
        value_name = "CONNECTOR",
        env = dropin::AS_ENV,
        global = true,
        help = format!(
            "Host only this connector ({}), configured as its official image is: OPENCTI_*, \
             the bare CONNECTOR_* names and the connector's own (run and check-config)",
            sections(|_| true)
        )
    )]
    pub as_connector: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
        #[arg(long, default_value = dropin::catalog::DEFAULT_IMAGE)]
        image: String,
        /// The images' tag.
        #[arg(long, default_value = dropin::catalog::DEFAULT_VERSION)]
        version: String,
    },
    /// Enrich one entity with a connector and print the STIX bundle the daemon would send.
    /// Needs only the connector's upstream settings: no OpenCTI, no RabbitMQ.
    Enrich {
        // The enrichment connectors.
        #[arg(help = format!("The connector ({})", sections(|s| !s.kind.is_import())))]
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
        // The importers.
        #[arg(help = format!("The importer ({})", sections(|s| s.kind.is_import())))]
        connector: String,
        /// A feed file or URL instead of the configured one.
        #[arg(long)]
        feed: Option<String>,
        /// Where to write the bundle (stdout by default).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Rewrite the files generated from the registry (scripts/regenerate runs it).
    #[command(hide = true)]
    Generate {
        /// Change nothing; exit 1 naming each file that differs.
        #[arg(long)]
        check: bool,
        /// The repository.
        #[arg(long, default_value = ".")]
        root: std::path::PathBuf,
    },
}

/// The program's one-line description, naming every connector.
fn about() -> String {
    let names: Vec<&str> = registry::specs().iter().map(|s| s.default_name).collect();
    format!(
        "One daemon hosting OpenCTI connectors ({})",
        names.join(", ")
    )
}

/// The sections of the connectors `which` selects, as typed on the command line.
fn sections(which: impl Fn(&SectionSpec) -> bool) -> String {
    let names: Vec<&str> = registry::specs()
        .into_iter()
        .filter(|s| which(s))
        .map(|s| s.section)
        .collect();
    names.join(", ")
}

/// Dispatches one parsed command line to its subcommand.
pub async fn dispatch(args: Args) -> ExitCode {
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
    let explicit = std::env::args()
        .any(|a| a == "--config" || a == "-c" || a.starts_with("--config="))
        || std::env::var_os("CONFIG_FILE").is_some();
    let printed = match command {
        Command::ConfigTable => info::config_table(),
        Command::Catalog { image, version } => info::catalog(&image, &version),
        Command::Healthcheck { url } => return info::healthcheck(url).await,
        Command::Generate { check, root } => return info::generate(&root, check),
        Command::Migrate {
            compose_files,
            output,
            env_file,
            force,
        } => migrate::migrate(&compose_files, &output, &env_file, force),
        Command::Enrich {
            connector,
            entity_type,
            value,
            tlp,
        } => {
            let request = oneshot::Request::Enrich {
                connector,
                entity_type,
                value,
                tlp,
            };
            oneshot::one_shot(request, &args.config, explicit).await
        }
        Command::Import {
            connector,
            feed,
            output,
        } => {
            let request = oneshot::Request::Import {
                connector,
                feed,
                output,
            };
            oneshot::one_shot(request, &args.config, explicit).await
        }
        Command::CheckConfig { online } => {
            run::check_or_run(Some(online), &args.config, explicit, as_connector).await
        }
        Command::Run => run::check_or_run(None, &args.config, explicit, as_connector).await,
    };
    printed.unwrap_or_else(|e| {
        eprintln!("error: cannot write to stdout: {e}");
        ExitCode::FAILURE
    })
}

/// Logs to stdout (the daemon) or stderr (one-shot commands, whose stdout is the bundle).
pub fn init_tracing(config: &Config, to_stderr: bool) {
    let filter = EnvFilter::try_new(config.log_filter()).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: piped and journald logs stay plain text.
    use std::io::IsTerminal;
    let ansi = if to_stderr {
        io::stderr().is_terminal()
    } else {
        io::stdout().is_terminal()
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
            .with_writer(io::stderr)
            .init(),
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.with_writer(io::stderr).init(),
    }
}
