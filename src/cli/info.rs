//! The commands that print what the binary knows, with no configuration: `config-table`,
//! `catalog`, `generate` (hidden: the files written from the registry), and `healthcheck`
//! (a probe of a running daemon).

use std::io;
use std::process::ExitCode;

use opencti_connectors::{dropin, generate, health};

use super::out;

/// `config-table`: the Markdown table of every configuration key.
pub fn config_table() -> io::Result<ExitCode> {
    out::text(generate::markdown_table())?;
    Ok(ExitCode::SUCCESS)
}

/// `catalog`: the integration manager's custom catalog.
pub fn catalog(image: &str, version: &str) -> io::Result<ExitCode> {
    out::line(dropin::catalog::text(image, version))?;
    Ok(ExitCode::SUCCESS)
}

/// `healthcheck`: exit 0 when the daemon's health endpoint says healthy.
pub async fn healthcheck(url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let env: std::collections::HashMap<String, String> = std::env::vars().collect();
        health::default_url(&env)
    });
    match health::probe(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `generate`: rewrites the generated files under `root`, or with `check` only says which
/// differ (exit 1).
pub fn generate(root: &std::path::Path, check: bool) -> ExitCode {
    let result = if check {
        generate::check(root).map(|()| Vec::new())
    } else {
        generate::write(root)
    };
    match result {
        Ok(written) => {
            for file in written {
                println!("regenerated {file}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
