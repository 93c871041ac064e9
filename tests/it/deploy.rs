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
                    .map_err(|_| ())
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
fn the_prometheus_example_scrapes_the_compose_service() {
    let scrape = read("deploy/prometheus.yml");
    let compose = read("docker-compose.yml");
    assert!(scrape.contains("metrics_path: /metrics"));
    assert!(compose.contains("DAEMON_LISTEN=0.0.0.0:9095") && scrape.contains(":9095"));
    let service = scrape
        .split("targets: [\"")
        .nth(1)
        .and_then(|t| t.split(':').next())
        .unwrap();
    assert!(
        compose.contains(&format!("\n  {service}:")),
        "no compose service {service}"
    );
}
