//! Where a drop-in's settings come from: the environment first, then the official image's
//! `config.yml` flattened to variable names (as pycti reads them), and what was set but read
//! by nothing.

use super::*;

/// The two places a setting comes from, the environment first (as pycti reads them).
pub(super) struct Layers<'a> {
    pub(super) env: &'a HashMap<String, String>,
    pub(super) file: &'a [(String, String)],
}

impl Layers<'_> {
    /// The first of `names` set (not blank) in the environment, else in the file.
    pub(super) fn first<'s>(&'s self, names: &[String]) -> Option<(&'s str, &'s str)> {
        let from_env = names.iter().find_map(|n| {
            self.env
                .get_key_value(n)
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k.as_str(), v.as_str()))
        });
        from_env.or_else(|| {
            names.iter().find_map(|n| {
                self.file
                    .iter()
                    .find(|(k, v)| k == n && !v.trim().is_empty())
                    .map(|(k, v)| (k.as_str(), v.as_str()))
            })
        })
    }
}

/// The names set that nothing read: official ones (environment names with pycti's
/// prefixes, and everything in the file), and the daemon's names of other connectors.
pub(super) fn unread(
    table: &[KeySpec],
    layers: &Layers,
    read: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let known: BTreeSet<&str> = table
        .iter()
        .flat_map(|k| k.env.iter().map(String::as_str))
        .collect();
    let others: BTreeSet<String> = registry::all_keys()
        .into_iter()
        .flat_map(|k| k.env)
        .filter(|n| !known.contains(n.as_str()))
        .collect();
    let set = |v: &String| !v.trim().is_empty();
    let mut not_read = BTreeSet::new();
    let mut other = BTreeSet::new();
    let env_names = layers.env.iter().filter(|(_, v)| set(v)).map(|(k, _)| k);
    let file_names = layers.file.iter().filter(|(_, v)| set(v)).map(|(k, _)| k);
    for name in env_names.chain(file_names) {
        if read.contains(name) || known.contains(name.as_str()) || QUIET.contains(&name.as_str()) {
            continue;
        }
        if others.contains(name) {
            other.insert(name.clone());
        } else if OFFICIAL_PREFIXES.iter().any(|p| name.starts_with(p))
            || layers.file.iter().any(|(k, _)| k == name)
        {
            not_read.insert(name.clone());
        }
    }
    (not_read.into_iter().collect(), other.into_iter().collect())
}

/// The file's settings as names by the one rule: nested keys joined by `_`, upper-cased
/// (`connector.id` → `CONNECTOR_ID`); lists become comma-separated, nulls are unset. The
/// official image's exceptions ([`Official::file_names`]) are renamed.
pub(super) fn flatten_file(
    text: &str,
    official: &Official,
) -> Result<Vec<(String, String)>, ConfigError> {
    let root: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?
    };
    let mut out = Vec::new();
    match root {
        Value::Mapping(_) => flatten("", &root, &mut out),
        Value::Null => {}
        _ => {
            return Err(ConfigError::Yaml(
                "the top level must be a mapping of sections".into(),
            ));
        }
    }
    for (name, _) in &mut out {
        if let Some((_, read)) = official
            .file_names
            .iter()
            .find(|(by_rule, _)| by_rule == name)
        {
            *name = (*read).to_string();
        }
    }
    Ok(out)
}

pub(super) fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let Some(k) = scalar(k) else { continue };
                let name = if prefix.is_empty() {
                    k.to_ascii_uppercase()
                } else {
                    format!("{prefix}_{}", k.to_ascii_uppercase())
                };
                flatten(&name, v, out);
            }
        }
        Value::Sequence(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar).collect();
            out.push((prefix.to_string(), parts.join(",")));
        }
        Value::Null => {}
        other => {
            if let Some(s) = scalar(other) {
                out.push((prefix.to_string(), s));
            }
        }
    }
}
