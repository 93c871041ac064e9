//! The generic loader: optional YAML text overlaid with environment variables named by a key
//! table, then deserialised strictly into any config type. It knows nothing of connectors.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::ConfigError;
use super::keys::{KeySpec, Kind};
use super::types::{IsoDuration, parse_bool};

/// Reads `path`; `None` when it does not exist and was not named explicitly (the
/// environment alone then configures the daemon).
pub fn read_file(path: &str, explicit: bool) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.into(),
            source,
        }),
    }
}

/// Parses `yaml`, reads the secret files its `<key>_file`s and `env`'s `<NAME>_FILE`s name
/// ([`super::files`]), applies every key of `table` found in `env` (the first non-blank of
/// its names wins over the file), checks each numeric value against its key's range, and
/// deserialises the result into `T`. A key left empty in the file (`key:`) takes its
/// default, as an empty variable does. Errors name the key, its environment variable and,
/// for a number, the range allowed.
pub fn from_sources<T: DeserializeOwned>(
    yaml: Option<&str>,
    env: &HashMap<String, String>,
    table: &[KeySpec],
) -> Result<T, ConfigError> {
    let mut root = parse_root(yaml)?;
    let mut errors = Vec::new();
    super::files::expand_yaml(&mut root, table, &mut errors);
    let env = &super::files::expand_env(env, table).unwrap_or_else(|e| {
        errors.extend(e);
        env.clone()
    });
    for key in table {
        let from_env = key.env.iter().find_map(|name| {
            env.get(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        });
        if let Some((name, raw)) = from_env {
            match env_value(key.kind, raw).and_then(|v| in_range(key.kind, &v, raw).map(|()| v)) {
                Ok(v) => set_path(&mut root, &key.path, v),
                Err(m) => errors.push(format!(
                    "{} (env {name}): {}",
                    key.path,
                    allowed(key.kind, m)
                )),
            }
        } else if get_path_mut(&mut root, &key.path).is_some_and(|v| v.is_null()) {
            remove_path(&mut root, &key.path);
        } else if let Some(v) = get_path_mut(&mut root, &key.path) {
            let shown = match &*v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if let Err(m) = normalise_yaml(key.kind, v).and_then(|()| in_range(key.kind, v, &shown))
            {
                errors.push(format!(
                    "{} (env {}): {}",
                    key.path,
                    key.env.join(" or "),
                    allowed(key.kind, m)
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::Many(errors));
    }
    fill_nested_defaults(&mut root, table);
    serde_path_to_error::deserialize(Value::Mapping(root)).map_err(|e| {
        let path = e.path().to_string();
        let env = table
            .iter()
            .find(|k| k.path == path)
            .map(|k| format!(" (env {})", k.env.join(" or ")))
            .unwrap_or_default();
        ConfigError::Invalid {
            key: format!("{path}{env}"),
            message: e.into_inner().to_string(),
        }
    })
}

/// Gives a nested block that is only partly set (`ipinfo.cache` with a `capacity` alone) the
/// table's defaults for the rest. The block's own `Default` cannot: it is shared by sections
/// whose defaults differ (the cache's TTL is P1D for IPinfo, PT0S for LastInfoSec).
fn fill_nested_defaults(root: &mut Mapping, table: &[KeySpec]) {
    for key in table {
        let Some((parent, _)) = key.path.rsplit_once('.') else {
            continue;
        };
        if key.default.is_empty() || !parent.contains('.') {
            continue;
        }
        let parent_set = get_path_mut(root, parent).is_some_and(|v| v.is_mapping());
        if parent_set && get_path_mut(root, &key.path).is_none() {
            // Written as an environment value would be: the table's defaults all parse.
            if let Ok(v) = env_value(key.kind, &key.default) {
                set_path(root, &key.path, v);
            }
        }
    }
}

/// `message`, followed by the range of a numeric key.
fn allowed(kind: Kind, message: String) -> String {
    match kind.range() {
        Some(range) => format!("{message}; allowed: {range}"),
        None => message,
    }
}

/// Whether the numeric value `v` (written `shown`) is within its key's range. Values of the
/// wrong type are left to the deserialiser, which says what it expected.
fn in_range(kind: Kind, v: &Value, shown: &str) -> Result<(), String> {
    let outside = || Err(format!("`{}` is out of range", shown.trim()));
    match kind {
        Kind::Int(range) => match (v.as_i64(), v.as_u64()) {
            (Some(n), _) if range.contains(n) => Ok(()),
            // Above i64::MAX: above every range.
            (Some(_), _) | (None, Some(_)) => outside(),
            (None, None) => Ok(()),
        },
        Kind::Float(range) => match v.as_f64() {
            Some(x) if range.contains(x) => Ok(()),
            Some(_) => outside(),
            None => Ok(()),
        },
        Kind::Duration(range) => {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Ok(()),
            };
            if range.contains(IsoDuration::parse(&text)?.0) {
                Ok(())
            } else {
                outside()
            }
        }
        _ => Ok(()),
    }
}

/// Whether the YAML text has a value at the dotted `path`.
pub fn has_path(yaml: &str, path: &str) -> Result<bool, ConfigError> {
    let mut root = parse_root(Some(yaml))?;
    Ok(get_path_mut(&mut root, path).is_some())
}

fn parse_root(yaml: Option<&str>) -> Result<Mapping, ConfigError> {
    match yaml {
        Some(text) if !text.trim().is_empty() => match serde_yaml::from_str::<Value>(text) {
            Ok(Value::Mapping(m)) => Ok(m),
            Ok(Value::Null) => Ok(Mapping::new()),
            Ok(_) => Err(ConfigError::Yaml(
                "the top level must be a mapping of sections".into(),
            )),
            Err(e) => Err(ConfigError::Yaml(e.to_string())),
        },
        _ => Ok(Mapping::new()),
    }
}

/// Turns an environment string into the YAML value of a key's kind.
pub(crate) fn env_value(kind: Kind, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    Ok(match kind {
        Kind::Bool => Value::Bool(
            parse_bool(raw)
                .ok_or_else(|| format!("`{raw}` is not a boolean; expected true or false"))?,
        ),
        Kind::Int(_) => Value::Number(
            raw.parse::<i64>()
                .map_err(|_| format!("`{raw}` is not an integer"))?
                .into(),
        ),
        Kind::Float(_) => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| Value::Number(f.into()))
            .ok_or_else(|| format!("`{raw}` is not a number"))?,
        _ => Value::String(raw.to_string()),
    })
}

/// Lets YAML files spell booleans and integers as strings (`"yes"`, `"4"`).
fn normalise_yaml(kind: Kind, v: &mut Value) -> Result<(), String> {
    if let Value::String(s) = v {
        if matches!(kind, Kind::Bool | Kind::Int(_) | Kind::Float(_)) {
            *v = env_value(kind, s)?;
        }
    } else if matches!(
        kind,
        Kind::Str | Kind::Secret | Kind::Uuid | Kind::Url | Kind::Tlp
    ) {
        // A token or id of digits written without quotes is still a string.
        if let Value::Number(n) = v {
            *v = Value::String(n.to_string());
        }
    }
    Ok(())
}

fn set_path(root: &mut Mapping, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut map = root;
    while let Some(part) = parts.next() {
        let key = Value::String(part.to_string());
        if parts.peek().is_none() {
            map.insert(key, value);
            return;
        }
        let entry = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            *entry = Value::Mapping(Mapping::new());
        }
        // Just made sure it is a mapping.
        map = entry.as_mapping_mut().expect("mapping");
    }
}

fn remove_path(root: &mut Mapping, path: &str) {
    let Some((parent, last)) = path.rsplit_once('.') else {
        root.remove(path);
        return;
    };
    if let Some(Value::Mapping(map)) = get_path_mut(root, parent) {
        map.remove(last);
    }
}

fn get_path_mut<'a>(root: &'a mut Mapping, path: &str) -> Option<&'a mut Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = root.get_mut(first)?;
    for part in parts {
        cur = cur.as_mapping_mut()?.get_mut(part)?;
    }
    Some(cur)
}
