//! `migrate`: the official connectors' compose files → the daemon's config.yml and an env
//! file of the secrets.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use opencti_connectors::registry::{self, Config};

use super::out;

/// Writes the configuration and the env file, prints the report; exit 2 when nothing could
/// be written.
pub fn migrate(
    files: &[PathBuf],
    output: &Path,
    env_file: &Path,
    force: bool,
) -> io::Result<ExitCode> {
    let m = match opencti_connectors::migrate::migrate(files) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    for path in [output, env_file] {
        if path.exists() && !force {
            eprintln!(
                "error: {} exists; use --force to overwrite it",
                path.display()
            );
            return Ok(ExitCode::from(2));
        }
    }
    if let Err(e) = write_private(env_file, &m.env_file) {
        eprintln!("error: cannot write {}: {e}", env_file.display());
        return Ok(ExitCode::from(2));
    }
    if let Err(e) = std::fs::write(output, &m.yaml) {
        eprintln!("error: cannot write {}: {e}", output.display());
        return Ok(ExitCode::from(2));
    }
    out::line("mapped:")?;
    for line in &m.mapped {
        out::line(format_args!("  {line}"))?;
    }
    if !m.unmapped.is_empty() {
        out::line("not mapped:")?;
        for line in &m.unmapped {
            out::line(format_args!("  {line}"))?;
        }
    }
    out::line(format_args!(
        "wrote {} ({}) and {} ({} secret(s))",
        output.display(),
        m.sections.join(", "),
        env_file.display(),
        m.secrets.len()
    ))?;
    let env = m.secrets.clone().into_iter().collect();
    match Config::from_sources(Some(&m.yaml), &env)
        .and_then(|c| registry::build_all(&c).map(|_| ()))
    {
        Ok(()) => out::line(format_args!(
            "the configuration loads: run `opencti-connectors --config {}` with the variables of {}",
            output.display(),
            env_file.display()
        ))?,
        Err(e) => out::line(format_args!("the configuration does not load yet: {e}"))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path`, readable by its owner only (it holds secrets).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
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
