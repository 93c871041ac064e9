//! `migrate` through the binary: the official compose files, a filled-in stack file whose
//! result `check-config` accepts with the same connector ids, and no overwrite by default.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::daemon::BIN;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/migrate/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn scratch() -> PathBuf {
    crate::common::scratch_dir("occ-migrate")
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear().args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// `NAME=value` lines, as docker compose and systemd read them (values quoted when needed).
fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[test]
fn the_official_files_become_one_config_with_every_placeholder_reported() {
    let dir = scratch();
    let mut args = vec!["migrate".to_string()];
    for name in [
        "ipinfo",
        "ipsum",
        "riskiq-passive-total",
        "lastinfosec-enrichment",
        "ivre",
        "lastinfosec-feed",
    ] {
        args.push(
            fixture(&format!("official/{name}.docker-compose.yml"))
                .display()
                .to_string(),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&dir, &args, &[]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("config.yml")).unwrap()).unwrap();
    for section in ["ipinfo", "ipsum", "riskiq", "lastinfosec", "ivre"] {
        assert_eq!(config[section]["enabled"], true, "{section}");
    }
    assert_eq!(config["riskiq"]["connector"]["name"], "RiskIQ PassiveTotal");
    assert_eq!(
        config["lastinfosec"]["connector"]["scope"],
        "StixFile,Domain-Name,Hostname,Url"
    );
    assert_eq!(config["ivre"]["max_tlp"], "TLP:AMBER");
    for line in [
        "wrote config.yml (ipinfo, ipsum, riskiq, lastinfosec, ivre) and connectors.env (0 secret(s))",
        "connector-ipinfo: IPINFO_TOKEN is the placeholder `ChangeMe`, left out: set ipinfo.token (env IPINFO_TOKEN)",
        "connector-riskiq-passive-total: RISKIQ_MAX_TLP is the placeholder `ChangeMe`",
        "connector-lastinfosec-feed (",
        "the configuration does not load yet",
    ] {
        assert!(report.contains(line), "`{line}` in\n{report}");
    }
    // Run again: the files exist, so nothing is overwritten without --force.
    let again = run(&dir, &args, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let mut forced = args.clone();
    forced.push("--force");
    assert_eq!(run(&dir, &forced, &[]).status.code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_filled_in_stack_migrates_to_a_config_the_daemon_accepts_with_the_same_ids() {
    let dir = scratch();
    let compose = dir.join("docker-compose.yml");
    std::fs::copy(fixture("stack.docker-compose.yml"), &compose).unwrap();
    std::fs::write(
        dir.join(".env"),
        "OPENCTI_ADMIN_TOKEN=admin-secret-0001\nCONNECTOR_IPINFO_ID=2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60\nIPINFO_TOKEN=ipinfo-secret-0002\nRISKIQ_API_KEY=riskiq-secret-0003\nLIS_KEY=lis-secret-0004\n",
    )
    .unwrap();
    let out = run(
        &dir,
        &[
            "migrate",
            "docker-compose.yml",
            "--output",
            "daemon.yml",
            "--env-file",
            "daemon.env",
        ],
        &[],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("the configuration loads"), "{report}");
    for line in [
        "connector-ipsum: CONNECTOR_RUN_AND_TERMINATE has no equivalent in the daemon",
        "connector-ipsum: CONNECTOR_IPSUM_API_KEY is empty, left out",
        "connector-ipinfo: IPINFO_TOKEN -> IPINFO_TOKEN (env file: a secret)",
        "connector-ipsum: CONNECTOR_DURATION_PERIOD -> ipsum.connector.duration_period",
        "opencti (",
        "connector-export-file-stix (",
    ] {
        assert!(report.contains(line), "`{line}` in\n{report}");
    }
    let yaml = std::fs::read_to_string(dir.join("daemon.yml")).unwrap();
    for secret in [
        "admin-secret",
        "ipinfo-secret",
        "riskiq-secret",
        "lis-secret",
    ] {
        assert!(
            !yaml.contains(secret) && !report.contains(secret),
            "{secret}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("daemon.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the env file is private");
    }
    let secrets = env_file(&dir.join("daemon.env"));
    let names: Vec<&str> = secrets.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "IPINFO_TOKEN",
            "IVRE_API_BASE_URL",
            "LASTINFOSEC_API_KEY_CTI",
            "OPENCTI_TOKEN",
            "RISKIQ_API_KEY",
            "RISKIQ_USERNAME"
        ]
    );
    // The daemon takes the pair as it is and registers the official connectors' ids.
    let env: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let check = run(&dir, &["--config", "daemon.yml", "check-config"], &env);
    let listed = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{listed}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for line in [
        "ipinfo: IpInfo (INTERNAL_ENRICHMENT, id 2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60)",
        "ipsum: IPsum (EXTERNAL_IMPORT, id 9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37)",
        "riskiq: RiskIQ PassiveTotal (INTERNAL_ENRICHMENT, id 5d1f6a0e-8c3b-4f2a-9e7d-2b4c6d8e0f12)",
        "lastinfosec: Last Info Sec Enrichment (INTERNAL_ENRICHMENT, id 7c4e2a10-3b5d-4e6f-8a9b-0c1d2e3f4a5b)",
        "ivre: ivre (INTERNAL_ENRICHMENT, id 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d)",
    ] {
        assert!(listed.contains(line), "`{line}` in\n{listed}");
    }
    let config: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(config["ipinfo"]["use_asn_name"], false);
    assert_eq!(config["ipsum"]["tlp_level"], "green");
    assert_eq!(config["ipsum"]["default_x_opencti_score"], 70);
    assert_eq!(config["riskiq"]["import_last_seen_time_window"], "P7D");
    // The official file's explicit TLP is kept, not the daemon's stricter default.
    assert_eq!(config["riskiq"]["max_tlp"], "TLP:GREEN");
    assert!(
        report.contains("connector-riskiq-passive-total: RISKIQ_MAX_TLP -> riskiq.max_tlp"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn force_makes_an_existing_env_file_private_before_writing_the_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let compose = dir.join("docker-compose.yml");
    std::fs::copy(fixture("stack.docker-compose.yml"), &compose).unwrap();
    std::fs::write(dir.join(".env"), "IPINFO_TOKEN=ipinfo-secret-0002\n").unwrap();
    // Left readable by everyone, as an editor or `cp` would leave it.
    let env_path = dir.join("connectors.env");
    std::fs::write(&env_path, "OLD=1\n").unwrap();
    std::fs::set_permissions(&env_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(dir.join("config.yml"), "# old\n").unwrap();
    let out = run(&dir, &["migrate", "docker-compose.yml", "--force"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&env_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let written = std::fs::read_to_string(&env_path).unwrap();
    assert!(
        written.contains("IPINFO_TOKEN=ipinfo-secret-0002") && !written.contains("OLD=1"),
        "{written}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
