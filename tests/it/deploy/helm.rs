//! `deploy/helm/`: values for the community chart (devops-ia/helm-opencti, chart `opencti`
//! 2.0.0). The chart's `values.schema.json` does not describe `connectors:`, so the shape is
//! the one its `values.yaml` documents for a connector and its templates read
//! (`templates/connector/*.yaml`). Each connector's environment must be one the daemon
//! loads, in full mode or as a drop-in, with its metrics where the chart's Service looks.

use std::collections::HashMap;

use serde_yaml::Value;

use super::read;

/// The keys of one `connectors:` entry: the documented example's, and those the templates
/// read besides (`autoscaling`, `imagePullSecrets`, `serviceMonitor`, `networkPolicy`).
const CONNECTOR_KEYS: &[&str] = &[
    "name",
    "enabled",
    "replicas",
    "autoscaling",
    "strategy",
    "image",
    "imagePullSecrets",
    "serviceAccount",
    "podSecurityContext",
    "securityContext",
    "deploymentAnnotations",
    "podAnnotations",
    "podLabels",
    "env",
    "envFromSecrets",
    "envFromConfigMap",
    "envFromFiles",
    "volumes",
    "volumeMounts",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "dnsConfig",
    "dnsPolicy",
    "lifecycle",
    "terminationGracePeriodSeconds",
    "readyChecker",
    "serviceMonitor",
    "networkPolicy",
];
const IMAGE_KEYS: &[&str] = &["repository", "pullPolicy", "tag"];
const SERVICE_MONITOR_KEYS: &[&str] = &[
    "enabled",
    "interval",
    "scrapeTimeout",
    "metricRelabelings",
    "relabelings",
];
/// The chart's metrics port when `CONNECTOR_METRICS_PORT` is unset.
const CHART_METRICS_PORT: u16 = 9095;

/// README Benchmarks: the highest RSS measured, in MiB: an IPsum import of levels/1
/// (38.9 MiB) and 20,000 enrichments with every connector enabled (23.7 MiB).
const IPSUM_PEAK_MIB: u64 = 39;
const ENRICHMENT_PEAK_MIB: u64 = 24;
/// The smallest limit under which the memory budget's default (75 % of the limit) keeps the
/// peak under the limit when answers fill it: the peak is about the budget plus 50 MiB
/// (README: Benchmarks, "Eight large answers at once"), and any upstream answer may be as
/// large as 32 MiB.
const BUDGET_FLOOR_MIB: u64 = 220;

fn connectors(file: &str) -> Vec<Value> {
    let values: Value = serde_yaml::from_str(&read(file)).unwrap();
    let keys: Vec<&str> = values
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["connectors"], "{file} sets the connectors only");
    values["connectors"].as_sequence().unwrap().clone()
}

/// A Kubernetes quantity in MiB (`64Mi`, `1Gi`).
fn mib(quantity: &Value) -> u64 {
    let text = quantity.as_str().unwrap();
    if let Some(n) = text.strip_suffix("Mi") {
        n.parse().unwrap()
    } else if let Some(n) = text.strip_suffix("Gi") {
        n.parse::<u64>().unwrap() * 1024
    } else {
        panic!("{text}: expected Mi or Gi")
    }
}

fn keys_of(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Checks an entry against the documented shape; its plain environment, as the chart writes
/// it (every value quoted).
fn shape(c: &Value) -> HashMap<String, String> {
    let name = c["name"].as_str().expect("name");
    for key in keys_of(c) {
        assert!(
            CONNECTOR_KEYS.contains(&key.as_str()),
            "{name}: {key} is not a connector key of the chart"
        );
    }
    // The chart names the Deployment `<release>-opencti-<name>-connector`.
    assert!(
        name.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
        "{name}"
    );
    assert_eq!(c["enabled"], true, "{name}");
    assert!(c["replicas"].as_u64().unwrap() >= 1, "{name}");
    for key in keys_of(&c["image"]) {
        assert!(IMAGE_KEYS.contains(&key.as_str()), "{name}: image.{key}");
    }
    assert!(
        c["image"]["repository"].is_string(),
        "{name}: the image is ours, not opencti/{name}"
    );
    for key in keys_of(&c["serviceMonitor"]) {
        assert!(
            SERVICE_MONITOR_KEYS.contains(&key.as_str()),
            "{name}: serviceMonitor.{key}"
        );
    }
    // The secrets are files from the Secret, not variables.
    assert!(
        c.get("envFromSecrets").is_none(),
        "{name}: envFromSecrets passes secrets as variables"
    );
    let env: HashMap<String, String> = c["env"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => panic!("{name}: env {k:?} is {other:?}, not a scalar"),
            };
            (k.as_str().unwrap().to_string(), value)
        })
        .collect();
    // Unset, the chart passes the admin's token: set, empty, it passes nothing, and the
    // connectors' own user's comes from the file.
    assert_eq!(
        env.get("OPENCTI_TOKEN").map(String::as_str),
        Some(""),
        "{name}: OPENCTI_TOKEN set empty"
    );
    assert!(env.contains_key("OPENCTI_TOKEN_FILE"), "{name}");
    let secret_vars = super::secret_env();
    let (mount, items) = secret_mount(name, c);
    let mut read = std::collections::BTreeSet::new();
    for (var, value) in &env {
        assert!(
            !secret_vars.contains(var) || value.is_empty(),
            "{name}: sets the secret {var}"
        );
        if let Some(plain) = var.strip_suffix("_FILE") {
            assert!(secret_vars.contains(plain), "{name}: {plain} is no secret");
            let key = value
                .strip_prefix(&format!("{mount}/"))
                .unwrap_or_else(|| panic!("{name}: {var}={value} not in {mount}"));
            assert!(items.contains(key), "{name}: the volume lacks {key}");
            read.insert(key.to_string());
        }
    }
    assert_eq!(read, items, "{name}: every key projected is read");
    // The chart's metrics Service follows CONNECTOR_EXPOSE_METRICS (any string is true to
    // it), and its templates read `serviceMonitor.interval` then.
    if let Some(expose) = env.get("CONNECTOR_EXPOSE_METRICS") {
        assert_eq!(
            expose, "true",
            "{name}: only `true` means something to the chart"
        );
        assert_eq!(
            c["serviceMonitor"]["enabled"], true,
            "{name}: serviceMonitor"
        );
    }
    // Drain, hard stop, last ping.
    let grace = c["terminationGracePeriodSeconds"].as_u64().unwrap();
    let needed = std::time::Duration::from_secs(30)
        + opencti_connectors::runtime::HARD_STOP
        + std::time::Duration::from_secs(5);
    assert!(
        grace >= needed.as_secs(),
        "{name}: terminationGracePeriodSeconds {grace}"
    );
    // The image's user; nothing written to the root file system.
    assert_eq!(c["podSecurityContext"]["runAsUser"], 65532, "{name}");
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"], true,
        "{name}"
    );
    env
}

/// The Secret volume an entry mounts: its mount path (under /run/secrets/, read-only) and
/// the keys it projects (each at a path of its own name).
fn secret_mount(name: &str, c: &Value) -> (String, std::collections::BTreeSet<String>) {
    let volume = c["volumes"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: volumes"))
        .iter()
        .find(|v| v["secret"].is_mapping())
        .unwrap_or_else(|| panic!("{name}: a Secret volume"));
    let items = volume["secret"]["items"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: the keys projected"))
        .iter()
        .map(|i| {
            assert_eq!(i["key"], i["path"], "{name}");
            i["path"].as_str().unwrap().to_string()
        })
        .collect();
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: volumeMounts"))
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap_or_else(|| panic!("{name}: the Secret volume is mounted"));
    assert_eq!(mount["readOnly"], true, "{name}");
    let path = mount["mountPath"].as_str().unwrap().to_string();
    assert!(path.starts_with("/run/secrets/"), "{name}: {path}");
    (path, items)
}

/// The environment the pod gets: the plain values, the Secret's files (made up here, under
/// `mounted`), and the chart's OPENCTI_URL; each `ChangeMe` id a UUID of its own.
fn pod_env(
    c: &Value,
    plain: HashMap<String, String>,
    mounted: &super::Mounted,
) -> HashMap<String, String> {
    let env: HashMap<String, String> = plain
        .into_iter()
        .map(|(k, v)| {
            let v = if v == "ChangeMe" {
                uuid::Uuid::new_v4().to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    let (mount, _) = secret_mount(c["name"].as_str().unwrap(), c);
    let mut pairs: Vec<(String, String)> = env.into_iter().collect();
    mounted.remap(&mut pairs, &mount, "from-the-secret\n");
    let mut env: HashMap<String, String> = pairs.into_iter().collect();
    env.insert("OPENCTI_URL".into(), "http://opencti-server:80".into());
    env
}

/// The chart's metrics port for an entry, and the address the daemon listens on.
fn assert_metrics_port(name: &str, env: &HashMap<String, String>, listen: &str) {
    let port = env
        .get("CONNECTOR_METRICS_PORT")
        .map_or(CHART_METRICS_PORT, |p| p.parse().unwrap());
    assert_eq!(
        listen,
        format!("0.0.0.0:{port}"),
        "{name}: the chart's Service targets port {port} on the pod's address"
    );
}

fn assert_resources(name: &str, c: &Value, peak_mib: u64) {
    let resources = &c["resources"];
    assert!(resources["requests"]["cpu"].is_string(), "{name}");
    let request = mib(&resources["requests"]["memory"]);
    let limit = mib(&resources["limits"]["memory"]);
    assert!(request >= 16, "{name}: {request} MiB below the idle RSS");
    assert!(
        limit >= BUDGET_FLOOR_MIB,
        "{name}: a {limit} MiB limit makes a budget that large answers would push past it"
    );
    assert!(
        limit >= 2 * peak_mib,
        "{name}: a {limit} MiB limit leaves no room over the measured {peak_mib} MiB"
    );
}

#[test]
fn the_full_daemon_is_one_connector_of_the_chart() {
    let entries = connectors("deploy/helm/values-daemon.yaml");
    assert_eq!(entries.len(), 1);
    let c = &entries[0];
    let plain = shape(c);
    assert!(
        !plain.contains_key(opencti_connectors::dropin::AS_ENV),
        "full mode: every enabled connector"
    );
    let mounted = super::Mounted::new();
    let env = pod_env(c, plain.clone(), &mounted);
    // Every variable is the daemon's, but the two the chart reads for its metrics Service.
    let known: std::collections::HashSet<String> = super::known_env();
    for name in env.keys() {
        assert!(
            known.contains(name)
                || name == "CONNECTOR_EXPOSE_METRICS"
                || name == "CONNECTOR_METRICS_PORT",
            "{name} is read by neither the daemon nor the chart"
        );
    }
    let config = opencti_connectors::registry::Config::from_sources(None, &env).unwrap();
    let built = opencti_connectors::registry::build_all(&config).unwrap();
    assert!(built.len() >= 2, "{:?}", config.enabled_sections());
    assert_metrics_port("opencti-connectors", &plain, &config.daemon.listen);
    let peak = if config.enabled_sections().contains(&"ipsum") {
        IPSUM_PEAK_MIB
    } else {
        ENRICHMENT_PEAK_MIB
    };
    assert_resources("opencti-connectors", c, peak);
}

#[test]
fn each_official_connector_runs_as_a_drop_in_of_the_chart() {
    let entries = connectors("deploy/helm/values-dropin.yaml");
    let mut hosted: Vec<String> = Vec::new();
    for c in &entries {
        let name = c["name"].as_str().unwrap().to_string();
        let plain = shape(c);
        let section = plain
            .get(opencti_connectors::dropin::AS_ENV)
            .unwrap_or_else(|| panic!("{name}: which connector"))
            .clone();
        let mounted = super::Mounted::new();
        let env = pod_env(c, plain.clone(), &mounted);
        let dropin = opencti_connectors::dropin::from_sources(&section, None, &env)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            dropin
                .notes
                .iter()
                .all(|n| matches!(n, opencti_connectors::dropin::Note::DefaultId(_))),
            "{name}: every variable is read: {:?}",
            dropin.notes
        );
        let built = opencti_connectors::registry::build_all(&dropin.config)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(built.len(), 1);
        assert_metrics_port(&name, &plain, &dropin.config.daemon.listen);
        let peak = if section == "ipsum" {
            IPSUM_PEAK_MIB
        } else {
            ENRICHMENT_PEAK_MIB
        };
        assert_resources(&name, c, peak);
        hosted.push(section);
    }
    // A connector of the daemon's own replaces no official image: the chart's drop-in values
    // are for those that do.
    let every: Vec<&str> = opencti_connectors::registry::specs()
        .iter()
        .filter(|s| s.official.is_some())
        .map(|s| s.section)
        .collect();
    assert_eq!(
        hosted, every,
        "one entry per official connector, in the registry's order"
    );
}
