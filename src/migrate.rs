//! `migrate <compose-file>...`: the official connectors' docker-compose files → one
//! `config.yml` for the daemon, with the secrets in a separate env file.
//!
//! A service is recognised by its image (`opencti/connector-ipinfo:…`) or else by its name
//! (`connector-ipinfo`). Its environment (list or map form, `env_file:` included, `${VAR}`
//! resolved from the environment and the compose file's `.env`, as docker compose does) is
//! mapped with the daemon's own key table: `OPENCTI_*` to the global keys, `CONNECTOR_<KEY>`
//! to `<section>.connector.<key>`, and every other name to the section key that accepts it as
//! an environment name (`IPINFO_TOKEN`, `CONNECTOR_IPSUM_API_KEY`, `CONFIG_LIS_APIKEY_CTI`).
//! The connector id is kept, so OpenCTI sees the same connectors. What cannot be mapped, and
//! placeholder values (`ChangeMe`), are reported, never guessed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::config::{KeySpec, Kind};
use crate::registry;

mod compose;
mod official;

use compose::*;
pub use official::*;

/// What a migration made of its compose files.
#[derive(Debug, Default)]
pub struct Migration {
    /// The daemon's YAML: `opencti` then one section per recognised connector.
    pub yaml: String,
    /// `NAME=value` lines for the secrets, by the daemon's environment names.
    pub env_file: String,
    /// The secrets as a map (to check the result loads).
    pub secrets: BTreeMap<String, String>,
    /// One line per mapped variable: `service: NAME -> key`.
    pub mapped: Vec<String>,
    /// One line per thing that was not mapped, and why.
    pub unmapped: Vec<String>,
    /// The sections written, in order.
    pub sections: Vec<&'static str>,
}

/// `(dotted key path, value)` pairs, in the order they were found.
type Pairs = Vec<(String, Value)>;

/// A variable of one service, after interpolation.
struct Var {
    name: String,
    value: String,
}

/// Reads `files` and maps every recognised service.
pub fn migrate(files: &[PathBuf]) -> Result<Migration, String> {
    let keys = registry::all_keys();
    let mut m = Migration::default();
    let mut global: Vec<(String, Value)> = Vec::new();
    let mut sections: BTreeMap<usize, (&'static str, Pairs)> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let compose: Value = serde_yaml::from_str(&text)
            .map_err(|e| format!("{} is not YAML: {e}", file.display()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let dotenv = read_env_file(&dir.join(".env")).unwrap_or_default();
        let Some(services) = compose.get("services").and_then(Value::as_mapping) else {
            m.unmapped
                .push(format!("{}: no `services:`", file.display()));
            continue;
        };
        for (name, service) in services {
            let name = name.as_str().unwrap_or_default().to_string();
            let Some((order, section)) = recognise(&name, service) else {
                m.unmapped.push(format!(
                    "{name} ({}): not one of the daemon's connectors",
                    file.display()
                ));
                continue;
            };
            if sections.contains_key(&order) {
                m.unmapped.push(format!(
                    "{name} ({}): a second {section} service; the daemon runs one per connector, the first is kept",
                    file.display()
                ));
                continue;
            }
            let vars = environment(service, dir, &dotenv, &name, &mut m.unmapped);
            report_stricter_defaults(&keys, section, &name, &vars, &mut m.unmapped);
            let sets_id = vars.iter().any(|v| v.name == "CONNECTOR_ID");
            let mut section_keys = Vec::new();
            for var in vars {
                map_var(
                    &keys,
                    section,
                    &name,
                    var,
                    &mut global,
                    &mut section_keys,
                    &mut m,
                );
            }
            if !sets_id {
                keep_default_id(section, &name, &mut section_keys, &mut m);
            }
            sections.insert(order, (section, section_keys));
        }
    }
    if sections.is_empty() {
        return Err(format!(
            "no service of the daemon's connectors ({}) was found",
            RECOGNISED
                .iter()
                .map(|o| format!("opencti/connector-{}", o.image))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut root = Mapping::new();
    if !global.is_empty() {
        insert_all(&mut root, global);
    }
    for (section, pairs) in sections.into_values() {
        m.sections.push(section);
        let mut pairs = pairs;
        pairs.insert(0, (format!("{section}.enabled"), Value::Bool(true)));
        insert_all(&mut root, pairs);
    }
    let header = format!(
        "# Written by `opencti-connectors migrate` from: {}.\n# Secrets are in the env file beside it, not here.\n",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    m.yaml = header + &serde_yaml::to_string(&Value::Mapping(root)).unwrap_or_default();
    m.env_file = m
        .secrets
        .iter()
        .map(|(k, v)| format!("{k}={}\n", env_quote(v)))
        .collect();
    Ok(m)
}

/// A service that does not set `CONNECTOR_ID` registers with its image's default id: it is
/// written out, so OpenCTI keeps seeing the same connector (its state and works).
fn keep_default_id(
    section: &'static str,
    service: &str,
    section_keys: &mut Pairs,
    m: &mut Migration,
) {
    let path = format!("{section}.connector.id");
    let Some(id) = official(section).and_then(|o| o.default_id) else {
        return;
    };
    if section_keys.iter().any(|(p, _)| *p == path) {
        return;
    }
    m.mapped.push(format!(
        "{service}: CONNECTOR_ID not set -> {path}: {id} (the official image's default)"
    ));
    section_keys.push((path, Value::String(id.to_string())));
}

/// Keys whose default here is stricter than the official connector's, and what the
/// official one does without them: a service that leaves one unset is told.
const STRICTER_DEFAULTS: &[(&str, &str, &str)] = &[(
    "riskiq",
    "max_tlp",
    "the official connector then sends every TLP; set TLP:RED for that",
)];

/// Reports each of [`STRICTER_DEFAULTS`] that `service` (section `section`) does not set:
/// the daemon's default applies where the official connector had none.
fn report_stricter_defaults(
    keys: &[KeySpec],
    section: &str,
    service: &str,
    vars: &[Var],
    unmapped: &mut Vec<String>,
) {
    let set = |spec: &KeySpec| vars.iter().any(|v| spec.env.contains(&v.name));
    for line in stricter_defaults(keys, section, set) {
        unmapped.push(format!("{service}: {line}"));
    }
}

/// One line for each of [`STRICTER_DEFAULTS`] of `section` whose key `is_set` says is unset:
/// the daemon's default applies where the official connector had none.
pub fn stricter_defaults(
    keys: &[KeySpec],
    section: &str,
    is_set: impl Fn(&KeySpec) -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (stricter_section, key, official) in STRICTER_DEFAULTS {
        let path = format!("{section}.{key}");
        let Some(spec) = keys.iter().find(|k| k.path == path) else {
            continue;
        };
        if section == *stricter_section && !is_set(spec) {
            lines.push(format!(
                "{} is not set, so the daemon's default {path}: {} applies ({official})",
                spec.env[0], spec.default
            ));
        }
    }
    lines
}

/// The section a service becomes, by image or else by service name, with its registry order.
fn recognise(name: &str, service: &Value) -> Option<(usize, &'static str)> {
    let image = service.get("image").and_then(Value::as_str).unwrap_or("");
    let repo = image.rsplit_once(':').map_or(image, |(repo, _)| repo);
    let from_image = repo
        .rsplit('/')
        .next()
        .and_then(|i| i.strip_prefix("connector-"));
    let from_name = name.strip_prefix("connector-");
    RECOGNISED
        .iter()
        .position(|o| from_image.or(from_name) == Some(o.image))
        .map(|i| (i, RECOGNISED[i].section))
}

/// A value the official files ship as a placeholder.
pub fn placeholder(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("changeme")
}

/// Maps one variable of `service` (section `section`).
fn map_var(
    keys: &[KeySpec],
    section: &'static str,
    service: &str,
    var: Var,
    global: &mut Vec<(String, Value)>,
    section_keys: &mut Vec<(String, Value)>,
    m: &mut Migration,
) {
    let Var { name, value } = var;
    let value = unquote(value.trim()).to_string();
    let Some(key) = official_key(keys, section, &name) else {
        m.unmapped
            .push(format!("{service}: {name} has no equivalent in the daemon"));
        return;
    };
    if value.is_empty() {
        m.unmapped
            .push(format!("{service}: {name} is empty, left out"));
        return;
    }
    if placeholder(&value) {
        m.unmapped.push(format!(
            "{service}: {name} is the placeholder `{value}`, left out: set {} (env {})",
            key.path, key.env[0]
        ));
        return;
    }
    if secret(key, &value) {
        let env = key.env[0].clone();
        match m.secrets.get(&env) {
            Some(existing) if *existing != value => m.unmapped.push(format!(
                "{service}: {name} differs from an earlier service's; the first is kept for {env}"
            )),
            Some(_) => {}
            None => {
                m.secrets.insert(env.clone(), value);
                m.mapped
                    .push(format!("{service}: {name} -> {env} (env file: a secret)"));
            }
        }
        return;
    }
    let target = if key.path.starts_with(&format!("{section}.")) {
        section_keys
    } else {
        global
    };
    if let Some((_, existing)) = target.iter().find(|(p, _)| *p == key.path) {
        if *existing != typed(key.kind, &value) {
            m.unmapped.push(format!(
                "{service}: {name} differs from an earlier service's; the first is kept for {}",
                key.path
            ));
        }
        return;
    }
    m.mapped.push(format!("{service}: {name} -> {}", key.path));
    target.push((key.path.clone(), typed(key.kind, &value)));
}

/// Whether `value` of `key` belongs in the env file: secrets, and URLs carrying credentials
/// (userinfo, or IVRE's `#Header=value` fragment).
fn secret(key: &KeySpec, value: &str) -> bool {
    match key.kind {
        Kind::Secret => true,
        Kind::Url => reqwest::Url::parse(value)
            .map(|u| !u.username().is_empty() || u.password().is_some() || u.fragment().is_some())
            .unwrap_or(false),
        _ => false,
    }
}

/// The YAML value of `value` for a key of `kind`.
fn typed(kind: Kind, value: &str) -> Value {
    match kind {
        Kind::Bool => crate::config::parse_bool(value)
            .map(Value::Bool)
            .unwrap_or_else(|| Value::String(value.into())),
        Kind::Int(_) => value
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or_else(|_| Value::String(value.into())),
        Kind::Float(_) => value
            .parse::<f64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or_else(|_| Value::String(value.into())),
        _ => Value::String(value.into()),
    }
}

/// Inserts `(dotted path, value)` pairs into nested mappings.
fn insert_all(root: &mut Mapping, pairs: Vec<(String, Value)>) {
    for (path, value) in pairs {
        let mut node = &mut *root;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let entry = node
                .entry(Value::String((*part).into()))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !entry.is_mapping() {
                *entry = Value::Mapping(Mapping::new());
            }
            node = entry.as_mapping_mut().expect("just made a mapping");
        }
        node.insert(Value::String(parts[parts.len() - 1].into()), value);
    }
}

#[cfg(test)]
mod tests;
