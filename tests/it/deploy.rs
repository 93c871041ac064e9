//! The deployment files say only what the daemon understands.

use std::collections::HashSet;

mod helm;
mod image;

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
fn the_daemon_uses_the_connectors_own_token_never_the_admin_s() {
    let text = read("docker-compose.yml");
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let env = compose["services"]["connectors"]["environment"]
        .as_sequence()
        .unwrap();
    let token = env
        .iter()
        .filter_map(|e| e.as_str()?.strip_prefix("OPENCTI_TOKEN="))
        .collect::<Vec<_>>();
    assert_eq!(token, ["${OPENCTI_CONNECTORS_TOKEN:-ChangeMe}"]);
    assert!(
        !text.contains("ADMIN"),
        "docker-compose.yml names an admin variable"
    );
    // The variable is documented where the operator sets it.
    let sample = read(".env.sample");
    assert!(
        sample
            .lines()
            .any(|l| l.starts_with("OPENCTI_CONNECTORS_TOKEN=")),
        ".env.sample lacks OPENCTI_CONNECTORS_TOKEN"
    );
    assert!(read("README.md").contains("OPENCTI_CONNECTORS_TOKEN"));
    // Left unset, the placeholder stops the daemon at start-up rather than running tokenless.
    let env: std::collections::HashMap<String, String> = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "ChangeMe"),
        ("IPINFO_ENABLED", "true"),
        (
            "IPINFO_CONNECTOR_ID",
            "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60",
        ),
        ("IPINFO_TOKEN", "t"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let err = opencti_connectors::registry::Config::from_sources(None, &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("opencti.token (env OPENCTI_TOKEN)"), "{err}");
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
    for file in ["config.yml", ".env", "connectors.env"] {
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
    ] {
        let line = block
            .lines()
            .find(|l| l.contains("install ") && l.contains(target))
            .unwrap_or_else(|| panic!("no install of {target} in\n{block}"));
        assert!(line.contains(" -m 0600 "), "{line}");
    }
    // The service's dynamic user cannot read a root 0600 file: systemd hands it a copy.
    let unit = read("deploy/opencti-connectors.service");
    assert!(unit.contains("LoadCredential=config.yml:/etc/opencti-connectors/config.yml"));
    assert!(unit.contains("--config %d/config.yml"));
    assert!(unit.contains("EnvironmentFile=-/etc/opencti-connectors/env"));
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
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
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
    let dir = std::env::temp_dir().join(format!("occ-k8s-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.yml"), text).unwrap();
    // The secrets come from the Secret, by environment.
    let out = std::process::Command::new(crate::common::daemon::BIN)
        .arg("check-config")
        .current_dir(&dir)
        .env("CONFIG_FILE", dir.join("config.yml"))
        .env("OPENCTI_TOKEN", "a-token")
        .env("IPINFO_TOKEN", "an-ipinfo-token")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ipinfo: IPInfo (INTERNAL_ENRICHMENT"),
        "{stdout}"
    );
    assert!(stdout.contains("ipsum: IPsum (EXTERNAL_IMPORT"), "{stdout}");
}
