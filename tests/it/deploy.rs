//! The deployment files say only what the daemon understands.

use std::collections::HashSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn known_env() -> HashSet<String> {
    opencti_connectors::registry::all_keys()
        .into_iter()
        .flat_map(|k| k.env)
        .collect()
}

#[test]
fn every_env_var_of_the_compose_file_is_read_by_the_config_loader() {
    let known = known_env();
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let env = compose["services"]["connectors"]["environment"]
        .as_sequence()
        .unwrap();
    assert!(env.len() > 30);
    for entry in env {
        let name = entry.as_str().unwrap().split('=').next().unwrap();
        assert!(
            known.contains(name),
            "docker-compose.yml sets {name}, which the daemon does not read"
        );
    }
    // Commented-out examples too.
    for line in read("docker-compose.yml").lines() {
        if let Some(rest) = line.trim().strip_prefix("# - ") {
            let name = rest.split('=').next().unwrap();
            assert!(
                known.contains(name),
                "docker-compose.yml suggests {name}, which the daemon does not read"
            );
        }
    }
}

#[test]
fn every_connector_is_configurable_from_the_compose_file() {
    let text = read("docker-compose.yml");
    for section in opencti_connectors::registry::specs() {
        let enabled = format!("{}_ENABLED=", section.section.to_uppercase());
        assert!(
            text.contains(&enabled),
            "docker-compose.yml lacks {enabled}"
        );
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let text = read("Dockerfile");
    assert!(
        text.contains("AS build")
            && text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2
    );
    assert!(text.contains("cargo build --release --locked"));
    let user = text
        .lines()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") || user.contains("nonroot"));
    assert!(!user.trim_start_matches("USER ").starts_with("0"), "{user}");
    assert!(
        text.contains("HEALTHCHECK") && text.contains("\"healthcheck\""),
        "the HEALTHCHECK uses the daemon's own subcommand"
    );
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/opencti-connectors\"]"));
    assert!(text.contains("EXPOSE 9095"));
    assert!(read(".dockerignore").lines().any(|l| l.trim() == "target/"));
}

#[test]
fn systemd_unit_runs_the_daemon_hardened() {
    let text = read("deploy/opencti-connectors.service");
    for needle in [
        "Type=exec",
        "EnvironmentFile=",
        "Restart=always",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ] {
        assert!(text.contains(needle), "the unit lacks {needle}");
    }
}
