//! `enrich` and `import`: one enrichment or one import without OpenCTI, printing the bundle.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use opencti_connectors::connectors::FeedSource;
use opencti_connectors::oneshot::{self, OneShotError, Printed};
use opencti_connectors::registry::Config;

use super::out;

/// What to run once.
pub enum Request {
    /// `enrich CONNECTOR ENTITY_TYPE VALUE --tlp TLP`.
    Enrich {
        connector: String,
        entity_type: String,
        value: String,
        tlp: String,
    },
    /// `import CONNECTOR [--feed F] [--output PATH]`.
    Import {
        connector: String,
        feed: Option<String>,
        output: Option<PathBuf>,
    },
}

/// Exit 0 on success, 1 when the upstream or the network failed, 2 on bad arguments or
/// configuration.
pub async fn one_shot(request: Request, path: &str, explicit: bool) -> io::Result<ExitCode> {
    let config = match Config::load_unchecked(path, explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    super::init_tracing(&config, true);
    let (result, output) = match request {
        Request::Enrich {
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
        Request::Import {
            connector,
            feed,
            output,
        } => {
            let feed = feed.map(|f| {
                if f.starts_with("http://") || f.starts_with("https://") {
                    FeedSource::Url(f)
                } else {
                    FeedSource::File(f.into())
                }
            });
            let result = oneshot::import(&config, &connector, feed).await;
            (result, output)
        }
    };
    Ok(match result {
        Ok(Printed::Bundle(bundle)) => {
            // A bundle of plain JSON values always serialises.
            let text = serde_json::to_string_pretty(&bundle).unwrap_or_default();
            let written = match &output {
                Some(path) => std::fs::write(path, text + "\n"),
                None => out::line(text),
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
    })
}
