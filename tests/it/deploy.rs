//! The deployment files say only what the daemon understands.

use std::collections::HashSet;

mod helm;
mod image;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every variable the daemon reads: each key's names, and the `_FILE` forms of those that
/// take a secret file.
fn known_env() -> HashSet<String> {
    opencti_connectors::registry::all_keys()
        .into_iter()
        .flat_map(|k| {
            let files = opencti_connectors::config::files::file_names(&k);
            k.env.into_iter().chain(files)
        })
        .collect()
}

/// The variables of the keys that hold a secret (tokens, keys, passwords, proxy URLs): the
/// deployment files never set them, only their `_FILE` forms.
fn secret_env() -> HashSet<String> {
    opencti_connectors::registry::all_keys()
        .into_iter()
        .filter(|k| k.kind == opencti_connectors::config::Kind::Secret)
        .flat_map(|k| k.env)
        .collect()
}

/// A directory standing for where the secrets are mounted (`/run/secrets`, systemd's `%d`):
/// every `<VARIABLE>_FILE` of `env` that names a file under `mount` is pointed at a file of
/// that name in a temporary directory, holding `content` (empty: as created by the README's
/// steps, before the operator fills it in).
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn new() -> Mounted {
        let dir = crate::common::scratch_dir("occ-secrets");
        Mounted(dir)
    }

    fn remap(&self, env: &mut [(String, String)], mount: &str, content: &str) {
        for (name, value) in env.iter_mut() {
            if !name.ends_with("_FILE") || name == "CONFIG_FILE" {
                continue;
            }
            let file = value
                .strip_prefix(mount)
                .and_then(|f| f.strip_prefix('/'))
                .unwrap_or_else(|| panic!("{name}={value}: not under {mount}"));
            let path = self.0.join(file);
            std::fs::write(&path, content).unwrap();
            *value = path.to_str().unwrap().to_string();
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `check-config` with exactly `env`: its exit code and output.
fn check_config(env: &[(String, String)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(crate::common::daemon::BIN)
        .arg("check-config")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
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

/// The compose service's `environment:` as (name, value) pairs.
fn compose_env() -> Vec<(String, String)> {
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    compose["services"]["connectors"]["environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The names of a compose file's top-level secrets, each checked to be a file under
/// `./secrets/` of its own name.
fn compose_secrets() -> std::collections::BTreeSet<String> {
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for (name, secret) in compose["secrets"].as_mapping().expect("top-level secrets") {
        let name = name.as_str().unwrap();
        assert_eq!(
            secret["file"].as_str(),
            Some(format!("./secrets/{name}").as_str()),
            "secret {name}"
        );
        names.insert(name.to_string());
    }
    names
}

#[test]
fn the_compose_file_takes_every_secret_from_a_secret_file() {
    let text = read("docker-compose.yml");
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let secret_vars = secret_env();
    let defined = compose_secrets();
    let granted: std::collections::BTreeSet<String> = compose["services"]["connectors"]["secrets"]
        .as_sequence()
        .expect("the service's secrets")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        granted, defined,
        "the service is given every secret defined"
    );
    // No secret in the environment, set or suggested; each _FILE names a granted secret.
    let mut read_from: std::collections::BTreeSet<String> = Default::default();
    for (name, value) in compose_env() {
        assert!(
            !secret_vars.contains(&name),
            "docker-compose.yml sets the secret {name} in the environment"
        );
        if let Some(var) = name.strip_suffix("_FILE") {
            let secret = value
                .strip_prefix("/run/secrets/")
                .unwrap_or_else(|| panic!("{name}={value}: not a compose secret"));
            assert!(granted.contains(secret), "{name}: no secret {secret}");
            assert!(secret_vars.contains(var), "{name}: {var} is no secret");
            read_from.insert(secret.to_string());
        }
    }
    assert_eq!(read_from, defined, "every secret is read by a variable");
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("# - ") {
            let name = rest.split('=').next().unwrap();
            assert!(!secret_vars.contains(name), "suggests the secret {name}");
        }
    }
    // The connectors' own token, never the admin's.
    assert!(
        compose_env()
            .iter()
            .any(|(k, v)| k == "OPENCTI_TOKEN_FILE" && v == "/run/secrets/opencti_token")
    );
    assert!(
        !text.contains("ADMIN"),
        "docker-compose.yml names an admin variable"
    );
    assert!(
        !read(".env.sample").contains("OPENCTI_CONNECTORS_TOKEN"),
        "the token is no .env variable any more"
    );
}

/// The secret files the README's docker compose steps create (its `for s in ...; do` line).
fn readme_secret_files(section: &str) -> std::collections::BTreeSet<String> {
    let readme = read("README.md");
    let start = readme
        .find(section)
        .unwrap_or_else(|| panic!("a {section} section"));
    let block = &readme[start..];
    let block = &block[block.find("```sh").unwrap()..];
    let block = &block[..block[5..].find("```").unwrap() + 5];
    let line = block
        .lines()
        .find(|l| l.trim_start().starts_with("for s in "))
        .unwrap_or_else(|| panic!("no `for s in` loop in\n{block}"));
    line.trim_start()["for s in ".len()..]
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_compose_steps_create_every_secret_file_of_the_compose_file() {
    // Compose refuses to start while a secret's file is missing.
    assert_eq!(readme_secret_files("### docker compose"), compose_secrets());
    // The compose file's own header says the same.
    let header = read("docker-compose.yml");
    let line = header
        .lines()
        .find(|l| l.starts_with("#   for s in "))
        .expect("the header's loop");
    let listed: std::collections::BTreeSet<String> = line["#   for s in ".len()..]
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(listed, compose_secrets());
}

/// The compose environment with the secrets mounted (`/run/secrets/<name>` as files holding
/// `content`), `section` enabled and each `ChangeMe` id a UUID of its own.
fn compose_start(mounted: &Mounted, section: &str, content: &str) -> (Option<i32>, String) {
    let mut env: Vec<(String, String)> = compose_env()
        .into_iter()
        .map(|(k, v)| {
            let v = if k == format!("{}_ENABLED", section.to_uppercase()) {
                "true".to_string()
            } else if v == "ChangeMe" {
                uuid::Uuid::new_v4().to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    mounted.remap(&mut env, "/run/secrets", content);
    check_config(&env)
}

#[test]
fn the_compose_environment_starts_from_its_secret_files() {
    let mounted = Mounted::new();
    for spec in opencti_connectors::registry::specs() {
        let section = spec.section;
        // The files as the README's steps leave them: empty. The enabled connector's are
        // not set, which stops the start, naming them, not the files.
        let (code, text) = compose_start(&mounted, section, "");
        assert_eq!(code, Some(2), "{section}: {text}");
        assert!(
            text.contains("opencti.token (env OPENCTI_TOKEN)") && !text.contains("secret file"),
            "{section}: {text}"
        );
        // Filled in: the daemon reads every secret of the connector from its file.
        let (code, text) = compose_start(&mounted, section, "from-a-file\n");
        assert_eq!(code, Some(0), "{section}: {text}");
        assert!(text.contains(&format!("{section}: ")), "{section}: {text}");
        assert!(!text.contains("from-a-file"), "{section}: {text}");
    }
    // Disabled connectors' empty files stop nothing (every connector disabled, as shipped).
    let (code, text) = compose_start(&mounted, "", "");
    assert_eq!(code, Some(0), "{text}");
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
    assert!(text.contains("cargo auditable build --release --locked"));
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

/// Every metric family the Grafana dashboard queries (`_total`, `_bucket`, `_sum`, `_count`
/// stripped: the names of the `# TYPE` lines).
pub fn dashboard_families() -> std::collections::BTreeSet<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/opencti-connectors.json")).unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        exprs.push(variable["query"].as_str().unwrap().to_string());
    }
    let mut families = std::collections::BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("opencti_connectors_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            families.insert(base.to_string());
        }
    }
    families
}

#[tokio::test]
async fn the_dashboard_queries_only_metrics_the_daemon_exports() {
    use opencti_connectors::cache::{AnswerCache, CacheConfig};
    use opencti_connectors::metrics::{Event, Metrics};
    use opencti_connectors::ratelimit::Gate;

    let families = dashboard_families();
    assert!(families.len() >= 8, "{families:?}");
    // A family is exported once it has a series: make one of each the way the daemon does.
    let metrics = Metrics::default();
    metrics.set_up("dashboard", true);
    metrics.count("dashboard", Event::EnrichmentSucceeded);
    metrics.import_succeeded("dashboard");
    drop(metrics.request_started("dashboard"));
    metrics.count("dashboard", Event::RunFailed);
    metrics.sent("dashboard", 2, 3);
    metrics.ping("dashboard", false);
    metrics.set_import_lock("dashboard", true);
    let upstream = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .mount(&upstream)
        .await;
    let gate = Gate::new("dashboard", 0.0);
    let cache = AnswerCache::<u32>::new(
        "dashboard",
        &CacheConfig::keeping_for(std::time::Duration::from_secs(60)),
    );
    for _ in 0..2 {
        let answer = cache
            .get_or_fetch("k", || async {
                let response = gate.send(reqwest::Client::new().get(upstream.uri())).await;
                response
                    .map(|r| u32::from(r.status().as_u16()))
                    .map_err(|e| {
                        opencti_connectors::connectors::ConnectorError::Rejected(e.to_string())
                    })
            })
            .await;
        assert_eq!(answer, Ok(429));
    }
    gate.wait().await; // held back by the 429's pause
    let exported = metrics.render();
    for family in &families {
        assert!(
            exported.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {family}, which the daemon does not export:\n{exported}"
        );
    }
}

#[test]
fn the_prometheus_example_scrapes_every_replica_of_the_compose_service() {
    let scrape: serde_yaml::Value = serde_yaml::from_str(&read("deploy/prometheus.yml")).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let job = &scrape["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/metrics");
    let sd = &job["dns_sd_configs"][0];
    let service = sd["names"][0].as_str().unwrap();
    let connectors = &compose["services"][service];
    assert!(connectors.is_mapping(), "no compose service {service}");
    let listen = format!("DAEMON_LISTEN=0.0.0.0:{}", sd["port"].as_u64().unwrap());
    let env = connectors["environment"].as_sequence().unwrap();
    assert!(env.iter().any(|e| e.as_str() == Some(listen.as_str())));
}

/// Every port a compose file publishes: (service, host address, host port, container port),
/// from the short syntax (`[[ip:]host:]container`) or the long one.
fn published(file: &str) -> Vec<(String, String, String, String)> {
    let compose: serde_yaml::Value = serde_yaml::from_str(&read(file)).unwrap();
    let mut ports = Vec::new();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap().to_string();
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let (ip, host, container) = match port {
                serde_yaml::Value::String(short) => {
                    let mut parts: Vec<&str> = short.rsplitn(3, ':').collect();
                    parts.reverse();
                    match parts[..] {
                        [container] => ("", "", container),
                        [host, container] => ("", host, container),
                        [ip, host, container] => (ip, host, container),
                        _ => unreachable!("rsplitn(3) gives 1 to 3 parts"),
                    }
                }
                long => {
                    let text = |key: &str| match &long[key] {
                        serde_yaml::Value::Number(n) => n.to_string(),
                        other => other.as_str().unwrap_or("").to_string(),
                    };
                    ports.push((
                        name.clone(),
                        text("host_ip"),
                        text("published"),
                        text("target"),
                    ));
                    continue;
                }
            };
            ports.push((name.clone(), ip.into(), host.into(), container.into()));
        }
    }
    ports
}

#[test]
fn the_compose_service_scales_and_publishes_on_loopback_only() {
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let connectors = &compose["services"]["connectors"];
    // A fixed name or host port would stop `docker compose up --scale connectors=N`.
    assert!(connectors.get("container_name").is_none());
    let ports = published("docker-compose.yml");
    assert_eq!(ports.len(), 1, "{ports:?}");
    for (service, ip, host, container) in ports {
        assert_eq!(service, "connectors");
        assert_eq!(container, "9095", "/healthz and /metrics");
        assert!(
            host.is_empty(),
            "{service} binds host port {host}: one replica only"
        );
        assert_eq!(
            ip, "127.0.0.1",
            "{service} publishes {container} beyond the host's loopback"
        );
    }
}

#[test]
fn the_stack_publishes_nothing_beyond_loopback() {
    let ports = published("docker-compose.stack.yml");
    assert!(!ports.is_empty());
    for (service, ip, _, container) in ports {
        assert_eq!(
            ip, "127.0.0.1",
            "{service} publishes {container} beyond the host's loopback"
        );
    }
}

#[test]
fn every_image_the_dockerfile_pulls_is_pinned_by_digest() {
    let text = read("Dockerfile");
    let pinned = |reference: &str| {
        reference
            .split_once("@sha256:")
            .is_some_and(|(image, digest)| {
                image.contains(':')
                    && digest.len() == 64
                    && digest
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            })
    };
    let syntax = text.lines().next().unwrap();
    let frontend = syntax.strip_prefix("# syntax=").expect("a syntax line");
    assert!(pinned(frontend), "{syntax}");
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(froms.len() >= 2);
    // A stage may start from an earlier one (`FROM daemon AS ipinfo`): that is no pull.
    let mut stages: Vec<&str> = Vec::new();
    let mut pulled = 0;
    for from in froms {
        let mut words = from
            .split_whitespace()
            .skip_while(|w| w.starts_with("--platform="));
        let image = words.next().unwrap();
        if let (Some(_), Some(name)) = (words.next(), words.next()) {
            stages.push(name);
        }
        if stages.contains(&image) {
            continue;
        }
        pulled += 1;
        assert!(pinned(image), "FROM {from}: not image:tag@sha256:<digest>");
    }
    assert_eq!(pulled, 2, "the build image and the runtime image");
    // And says how to move a pin.
    assert!(text.contains("docker buildx imagetools inspect"));
}

#[test]
fn local_configuration_and_secrets_are_ignored_by_git() {
    let ignored: HashSet<String> = read(".gitignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').to_string())
        .collect();
    // The files the README tells operators to create, and migrate's default outputs.
    for file in ["config.yml", ".env", "connectors.env", "secrets/"] {
        assert!(ignored.contains(file), ".gitignore lacks {file}");
    }
    for tracked in ["config.yml.sample", ".env.sample"] {
        assert!(!ignored.contains(tracked), "{tracked} must stay tracked");
    }
}

#[test]
fn the_systemd_steps_install_the_configuration_and_secrets_owner_only() {
    let readme = read("README.md");
    let start = readme.find("### systemd").expect("a systemd section");
    let block = &readme[start..];
    let block = &block[block.find("```sh").unwrap()..];
    let block = &block[..block[5..].find("```").unwrap() + 5];
    for target in [
        "/etc/opencti-connectors/config.yml",
        "/etc/opencti-connectors/env",
        "/etc/opencti-connectors/secrets/$s",
    ] {
        let line = block
            .lines()
            .find(|l| l.contains("install ") && l.contains(target))
            .unwrap_or_else(|| panic!("no install of {target} in\n{block}"));
        assert!(line.contains(" -m 0600 "), "{line}");
    }
    assert!(block.contains("install -d -m 0700 /etc/opencti-connectors/secrets"));
    // The service's dynamic user cannot read a root 0600 file: systemd hands it a copy.
    let unit = read("deploy/opencti-connectors.service");
    assert!(unit.contains("LoadCredential=config.yml:/etc/opencti-connectors/config.yml"));
    assert!(unit.contains("--config %d/config.yml"));
    assert!(unit.contains("EnvironmentFile=-/etc/opencti-connectors/env"));
    // Each secret: a credential of its own, read by its variable's _FILE form; the same
    // secrets as the compose file's, and the ones the README's loop creates.
    let secret_vars = secret_env();
    let mut credentials = std::collections::BTreeSet::new();
    for line in unit.lines() {
        if let Some(rest) = line.strip_prefix("LoadCredential=") {
            let (id, path) = rest.split_once(':').unwrap();
            if id != "config.yml" {
                assert_eq!(path, format!("/etc/opencti-connectors/secrets/{id}"));
                credentials.insert(id.to_string());
            }
        }
    }
    let mut read_from = std::collections::BTreeSet::new();
    for line in unit.lines() {
        if let Some(rest) = line.strip_prefix("Environment=") {
            let (name, value) = rest.split_once('=').unwrap();
            assert!(
                !secret_vars.contains(name),
                "the unit sets the secret {name}"
            );
            let var = name.strip_suffix("_FILE").expect("only _FILE variables");
            assert!(secret_vars.contains(var), "{name}: {var} is no secret");
            let id = value
                .strip_prefix("%d/")
                .expect("in the credentials directory");
            assert!(credentials.contains(id), "{name}: no credential {id}");
            read_from.insert(id.to_string());
        }
    }
    assert_eq!(read_from, credentials, "every credential is read");
    assert!(unit.contains("Environment=OPENCTI_TOKEN_FILE=%d/opencti_token"));
    assert_eq!(credentials, compose_secrets());
    assert_eq!(readme_secret_files("### systemd"), credentials);
}

#[test]
fn the_systemd_environment_starts_from_its_credentials() {
    // The unit's Environment= lines, `%d` a directory of the credentials.
    let unit = read("deploy/opencti-connectors.service");
    let mut env: Vec<(String, String)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let mounted = Mounted::new();
    mounted.remap(&mut env, "%d", "");
    let enable = |env: &mut Vec<(String, String)>| {
        env.extend(
            [
                ("OPENCTI_URL", "http://opencti:8080".to_string()),
                ("IPINFO_ENABLED", "true".into()),
                ("IPINFO_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        )
    };
    // Installed empty, as the README's steps do: not set.
    let mut empty = env.clone();
    enable(&mut empty);
    let (code, text) = check_config(&empty);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("opencti.token (env OPENCTI_TOKEN)")
            && text.contains("ipinfo.token (env IPINFO_TOKEN)"),
        "{text}"
    );
    // Filled in.
    mounted.remap(
        &mut env,
        &mounted.0.to_string_lossy(),
        "from-a-credential\n",
    );
    enable(&mut env);
    let (code, text) = check_config(&env);
    assert_eq!(code, Some(0), "{text}");
    // A secret also left in the env file stops the start: the README says not to.
    env.push(("IPINFO_TOKEN".into(), "from-the-env-file".into()));
    let (code, text) = check_config(&env);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("IPINFO_TOKEN and IPINFO_TOKEN_FILE"),
        "{text}"
    );
}

/// The Kubernetes manifest's documents by kind.
fn kubernetes() -> std::collections::HashMap<String, serde_yaml::Value> {
    use serde::Deserialize;
    let text = read("deploy/kubernetes/opencti-connectors.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let doc = serde_yaml::Value::deserialize(doc).unwrap();
            (doc["kind"].as_str().unwrap().to_string(), doc)
        })
        .collect()
}

#[test]
fn the_kubernetes_deployment_probes_drains_and_is_bounded() {
    let docs = kubernetes();
    let deployment = &docs["Deployment"];
    let spec = &deployment["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let config: serde_yaml::Value =
        serde_yaml::from_str(docs["ConfigMap"]["data"]["config.yml"].as_str().unwrap()).unwrap();

    // Readiness on /healthz, on the port the daemon listens on.
    let listen = config["daemon"]["listen"].as_str().unwrap();
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let ready = &container["readinessProbe"]["httpGet"];
    assert_eq!(ready["path"], "/healthz");
    let named = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ready["port"])
        .expect("the probe's port is declared");
    assert_eq!(named["containerPort"].as_u64(), Some(port));
    // Liveness must not follow OpenCTI's availability (/healthz is 503 while it is down).
    assert!(container["livenessProbe"]["httpGet"]["path"] != "/healthz");

    // The grace period covers the drain, the connectors' hard stop and the last ping.
    let drain: opencti_connectors::config::IsoDuration =
        serde_yaml::from_value(config["daemon"]["shutdown_timeout"].clone()).unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let needed =
        drain.0 + opencti_connectors::runtime::HARD_STOP + std::time::Duration::from_secs(5);
    assert!(
        grace >= needed.as_secs(),
        "terminationGracePeriodSeconds {grace} < {needed:?}"
    );

    let resources = &container["resources"];
    for key in ["requests", "limits"] {
        assert!(
            resources[key]["memory"].is_string(),
            "resources.{key}.memory"
        );
    }
    assert!(resources["requests"]["cpu"].is_string());

    // The config file is where the container reads it.
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .expect("the config volume's mount")["mountPath"]
        .as_str()
        .unwrap();
    let env = container["env"].as_sequence().unwrap();
    // CONFIG_FILE is the command line's `--config`.
    let known: HashSet<String> = known_env()
        .into_iter()
        .chain(["CONFIG_FILE".into()])
        .collect();
    for e in env {
        let name = e["name"].as_str().unwrap();
        assert!(
            known.contains(name),
            "the manifest sets {name}, which the daemon does not read"
        );
    }
    let file = env
        .iter()
        .find(|e| e["name"] == "CONFIG_FILE")
        .map(|e| e["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(file, format!("{mount}/config.yml"));
}

#[test]
fn the_kubernetes_config_map_is_a_configuration_the_daemon_accepts() {
    let docs = kubernetes();
    // Each placeholder id becomes a UUID of its own.
    let mut text = docs["ConfigMap"]["data"]["config.yml"]
        .as_str()
        .unwrap()
        .to_string();
    while text.contains("ChangeMe") {
        text = text.replacen("ChangeMe", &uuid::Uuid::new_v4().to_string(), 1);
    }
    let mounted = Mounted::new();
    let config = mounted.0.join("config.yml");
    std::fs::write(&config, text).unwrap();
    // The container's environment, the Secret's files (the items the volume projects)
    // mounted where the manifest says.
    let (mut env, secrets_mount) = kubernetes_env(&docs);
    for (name, value) in env.iter_mut() {
        if name == "CONFIG_FILE" {
            *value = config.to_str().unwrap().to_string();
        }
    }
    mounted.remap(&mut env, &secrets_mount, "from-the-secret\n");
    let (code, stdout) = check_config(&env);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("ipinfo: IPInfo (INTERNAL_ENRICHMENT"),
        "{stdout}"
    );
    assert!(stdout.contains("ipsum: IPsum (EXTERNAL_IMPORT"), "{stdout}");
    assert!(!stdout.contains("from-the-secret"), "{stdout}");
}

/// The Deployment container's plain environment, each `<VARIABLE>_FILE` checked to name a
/// key of the Secret volume the container mounts; and that mount's path.
fn kubernetes_env(
    docs: &std::collections::HashMap<String, serde_yaml::Value>,
) -> (Vec<(String, String)>, String) {
    let pod = &docs["Deployment"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert!(
        container.get("envFrom").is_none(),
        "no variables from the Secret: its keys are files"
    );
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["secret"].is_mapping())
        .expect("a Secret volume");
    let items: HashSet<&str> = volume["secret"]["items"]
        .as_sequence()
        .expect("the keys projected")
        .iter()
        .map(|i| {
            assert_eq!(i["key"], i["path"]);
            i["path"].as_str().unwrap()
        })
        .collect();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the Secret volume is mounted");
    assert_eq!(mount["readOnly"], true);
    let mount = mount["mountPath"].as_str().unwrap().to_string();
    assert!(mount.starts_with("/run/secrets/"), "{mount}");
    let secret_vars = secret_env();
    let mut read = HashSet::new();
    let env: Vec<(String, String)> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            assert!(
                e.get("valueFrom").is_none(),
                "{name}: no secretKeyRef, a file"
            );
            assert!(!secret_vars.contains(&name), "sets the secret {name}");
            let value = e["value"].as_str().unwrap().to_string();
            if let Some(var) = name.strip_suffix("_FILE").filter(|_| name != "CONFIG_FILE") {
                assert!(secret_vars.contains(var), "{name}: {var} is no secret");
                let key = value
                    .strip_prefix(&format!("{mount}/"))
                    .unwrap_or_else(|| panic!("{name}={value}: not in {mount}"));
                assert!(items.contains(key), "{name}: the volume lacks {key}");
                read.insert(key.to_string());
            }
            (name, value)
        })
        .collect();
    assert_eq!(read, items.iter().map(|k| k.to_string()).collect());
    (env, mount)
}
