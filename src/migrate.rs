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

/// One official connector image, as the daemon knows it.
#[derive(Debug, Clone, Copy)]
pub struct Official {
    /// The image's name after `opencti/connector-` (`riskiq-passive-total`).
    pub image: &'static str,
    /// The daemon section it becomes.
    pub section: &'static str,
    /// The connector id the official image registers with when `CONNECTOR_ID` is unset (its
    /// settings' default). Only a UUID is kept: the daemon's ids are UUIDs.
    pub default_id: Option<&'static str>,
    /// Variables the official code reads from another place of its `config.yml` than the one
    /// rule (`<section>.<key>` ↔ `<SECTION>_<KEY>`) says: `(name by the rule, name read)`.
    pub file_names: &'static [(&'static str, &'static str)],
}

/// The official connectors' images and the daemon section each one becomes.
pub const RECOGNISED: &[Official] = &[
    Official {
        image: "ipinfo",
        section: "ipinfo",
        // Its default, `ipinfo--43cf861c-…`, is no UUID: `CONNECTOR_ID` must be set.
        default_id: None,
        file_names: &[],
    },
    Official {
        image: "ipsum",
        section: "ipsum",
        default_id: Some("9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"),
        file_names: &[],
    },
    Official {
        image: "riskiq-passive-total",
        section: "riskiq",
        default_id: None,
        file_names: &[],
    },
    Official {
        image: "lastinfosec-enrichment",
        section: "lastinfosec",
        default_id: None,
        // Its proxies are read from the `opencti:` block of its file.
        file_names: &[
            ("OPENCTI_PROXY_HTTP", "PROXY_HTTP"),
            ("OPENCTI_PROXY_HTTPS", "PROXY_HTTPS"),
        ],
    },
    Official {
        image: "ivre",
        section: "ivre",
        default_id: None,
        file_names: &[],
    },
];

/// The official image that `section` stands in for.
pub fn official(section: &str) -> Option<&'static Official> {
    RECOGNISED.iter().find(|o| o.section == section)
}

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

/// The service's variables: `env_file:` first, then `environment:` (which wins), with
/// `${VAR}` resolved.
fn environment(
    service: &Value,
    dir: &Path,
    dotenv: &HashMap<String, String>,
    service_name: &str,
    unmapped: &mut Vec<String>,
) -> Vec<Var> {
    let mut vars: Vec<Var> = Vec::new();
    let mut set = |name: String, value: String| {
        vars.retain(|v| v.name != name);
        vars.push(Var { name, value });
    };
    let env_files: Vec<&str> = match service.get("env_file") {
        Some(Value::String(f)) => vec![f.as_str()],
        Some(Value::Sequence(fs)) => fs
            .iter()
            .filter_map(|f| f.as_str().or_else(|| f.get("path").and_then(Value::as_str)))
            .collect(),
        _ => Vec::new(),
    };
    for f in env_files {
        match read_env_file(&dir.join(f)) {
            Ok(pairs) => {
                let mut pairs: Vec<_> = pairs.into_iter().collect();
                pairs.sort();
                for (k, v) in pairs {
                    set(k, v);
                }
            }
            Err(e) => unmapped.push(format!("{service_name}: env_file {f}: {e}")),
        }
    }
    let raw: Vec<(String, Option<String>)> = match service.get("environment") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), Some(v.to_string())),
                None => (item.trim().to_string(), None),
            })
            .collect(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => Some(String::new()),
                };
                (k.as_str().unwrap_or_default().to_string(), value)
            })
            .collect(),
        _ => Vec::new(),
    };
    for (name, value) in raw {
        // `- NAME` alone passes the variable through from the environment.
        let value = match value {
            Some(v) => interpolate(&v, dotenv, service_name, &name, unmapped),
            None => match std::env::var(&name)
                .ok()
                .or_else(|| dotenv.get(&name).cloned())
            {
                Some(v) => v,
                None => {
                    unmapped.push(format!(
                        "{service_name}: {name} is passed through but not set here"
                    ));
                    continue;
                }
            },
        };
        set(name, value);
    }
    vars
}

/// docker compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`.
fn interpolate(
    text: &str,
    dotenv: &HashMap<String, String>,
    service: &str,
    name: &str,
    unmapped: &mut Vec<String>,
) -> String {
    let lookup = |var: &str| std::env::var(var).ok().or_else(|| dotenv.get(var).cloned());
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                out.push_str("${");
                rest = braced;
                continue;
            };
            let inner = &braced[..end];
            rest = &braced[end + 1..];
            let (var, default, empty_too) = match inner.split_once(":-") {
                Some((v, d)) => (v, Some(d), true),
                None => match inner.split_once('-') {
                    Some((v, d)) => (v, Some(d), false),
                    None => (inner, None, false),
                },
            };
            let value = lookup(var).filter(|v| !(empty_too && v.is_empty()));
            match (value, default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    unmapped.push(format!(
                        "{service}: {name} uses ${{{var}}}, which is not set here"
                    ));
                }
            }
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
                continue;
            }
            let var = &rest[..len];
            rest = &rest[len..];
            match lookup(var) {
                Some(v) => out.push_str(&v),
                None => unmapped.push(format!(
                    "{service}: {name} uses ${var}, which is not set here"
                )),
            }
        }
    }
    out.push_str(rest);
    out
}

/// A `KEY=value` file (docker compose's env_file, `.env`): comments and blank lines skipped,
/// one level of matching quotes removed.
fn read_env_file(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v.trim()).to_string()))
        .collect())
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// A value as an env file line holds it: quoted when it has blanks, quotes, `#` or `$`.
fn env_quote(v: &str) -> String {
    if v.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '$' | '\\'))
    {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
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

/// The key an official connector's variable `name` sets, for a service of `section`:
/// `OPENCTI_*` (and the other shared names) the global key of that name, `CONNECTOR_<KEY>`
/// `<section>.connector.<key>`, and any other name the section key that accepts it
/// (`IPINFO_TOKEN`, `CONNECTOR_IPSUM_API_KEY`, `CONFIG_LIS_APIKEY_CTI`). `None`: no equivalent.
pub fn official_key<'a>(keys: &'a [KeySpec], section: &str, name: &str) -> Option<&'a KeySpec> {
    let in_a_section = |k: &KeySpec| {
        RECOGNISED
            .iter()
            .any(|o| k.path.starts_with(&format!("{}.", o.section)))
    };
    keys.iter()
        .find(|k| !in_a_section(k) && k.env.iter().any(|e| e == name))
        .or_else(|| {
            let rest = name.strip_prefix(CONNECTOR_PREFIX)?;
            let path = format!("{section}.connector.{}", rest.to_ascii_lowercase());
            keys.iter().find(|k| k.path == path)
        })
        .or_else(|| {
            keys.iter().find(|k| {
                k.path.starts_with(&format!("{section}.")) && k.env.iter().any(|e| e == name)
            })
        })
}

/// The prefix of pycti's connector settings (`CONNECTOR_ID`, `CONNECTOR_SCOPE`, …).
pub const CONNECTOR_PREFIX: &str = "CONNECTOR_";

/// The names an official connector of `section` sets `key` by, besides the daemon's own:
/// `CONNECTOR_<KEY>` for `<section>.connector.<key>` (the inverse of [`official_key`]'s rule).
pub fn official_names(key: &KeySpec, section: &str) -> Vec<String> {
    key.path
        .strip_prefix(&format!("{section}.connector."))
        .filter(|rest| !rest.contains('.'))
        .map(|rest| vec![format!("{CONNECTOR_PREFIX}{}", rest.to_ascii_uppercase())])
        .unwrap_or_default()
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
