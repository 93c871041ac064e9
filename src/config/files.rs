//! Secrets from files: every key that may hold a secret (a token, a key, a password, a URL
//! that can carry credentials) also accepts `<VARIABLE>_FILE` in the environment
//! (`OPENCTI_TOKEN_FILE`, `CONFIG_LIS_APIKEY_CTI_FILE`) and `<key>_file` in YAML
//! (`opencti.token_file`), naming a file whose content, trailing newlines trimmed, is the
//! value (Docker and Kubernetes secrets, systemd credentials).
//!
//! Setting both forms of one name is an error, and so is a file that cannot be read; each
//! error names the variable or key and the path, never the content.

use std::collections::HashMap;

use serde_yaml::{Mapping, Value};

use super::keys::{KeySpec, Kind};

/// The largest secret file read (a token is a few dozen bytes).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The suffix of an environment name that names a file.
pub const ENV_SUFFIX: &str = "_FILE";
/// The suffix of a YAML key that names a file.
pub const YAML_SUFFIX: &str = "_file";

/// Whether `key` accepts the `_FILE` / `_file` forms.
pub fn accepts_file(key: &KeySpec) -> bool {
    matches!(key.kind, Kind::Secret | Kind::Url)
}

/// The `_FILE` names of `key` (`OPENCTI_TOKEN_FILE`), none when it takes no file.
pub fn file_names(key: &KeySpec) -> Vec<String> {
    if !accepts_file(key) {
        return Vec::new();
    }
    key.env.iter().map(|n| format!("{n}{ENV_SUFFIX}")).collect()
}

/// `env` with every `<NAME>_FILE` of `table`'s keys replaced by `<NAME>` and the file's
/// content. Errors name the key, the variables and the path.
pub fn expand_env(
    env: &HashMap<String, String>,
    table: &[KeySpec],
) -> Result<HashMap<String, String>, Vec<String>> {
    let set = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    let mut out = env.clone();
    let mut errors = Vec::new();
    for key in table.iter().filter(|k| accepts_file(k)) {
        for name in &key.env {
            let file_name = format!("{name}{ENV_SUFFIX}");
            let Some(path) = set(&file_name) else {
                continue;
            };
            out.remove(&file_name);
            if set(name).is_some() {
                errors.push(format!(
                    "{} (env {name} and {file_name}): both are set; set one",
                    key.path
                ));
                continue;
            }
            match read_secret(path.trim()) {
                Ok(value) => {
                    out.insert(name.clone(), value);
                }
                Err(e) => errors.push(format!("{} (env {file_name}): {e}", key.path)),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Replaces every `<key>_file` of `table`'s keys in the YAML tree by `<key>` and the file's
/// content; errors go to `errors`.
pub fn expand_yaml(root: &mut Mapping, table: &[KeySpec], errors: &mut Vec<String>) {
    for key in table.iter().filter(|k| accepts_file(k)) {
        let (parent, last) = match key.path.rsplit_once('.') {
            Some((parent, last)) => (Some(parent), last),
            None => (None, key.path.as_str()),
        };
        let map = match parent {
            Some(parent) => match get_mapping(root, parent) {
                Some(map) => map,
                None => continue,
            },
            None => &mut *root,
        };
        let file_key = Value::String(format!("{last}{YAML_SUFFIX}"));
        let Some(file) = map.remove(&file_key) else {
            continue;
        };
        let shown = format!("{}{YAML_SUFFIX}", key.path);
        let path = match &file {
            Value::Null => continue,
            Value::String(p) if p.trim().is_empty() => continue,
            Value::String(p) => p.trim().to_string(),
            _ => {
                errors.push(format!("{shown}: expected the path of a file"));
                continue;
            }
        };
        let own = Value::String(last.to_string());
        if map.get(&own).is_some_and(|v| !v.is_null()) {
            errors.push(format!("{} and {shown}: both are set; set one", key.path));
            continue;
        }
        match read_secret(&path) {
            Ok(value) => {
                map.insert(own, Value::String(value));
            }
            Err(e) => errors.push(format!("{shown}: {e}")),
        }
    }
}

fn get_mapping<'a>(root: &'a mut Mapping, path: &str) -> Option<&'a mut Mapping> {
    let mut cur = root;
    for part in path.split('.') {
        cur = cur.get_mut(part)?.as_mapping_mut()?;
    }
    Some(cur)
}

/// The content of the secret file at `path`, trailing newlines (`\n`, `\r\n`) trimmed. The
/// error names the path and why, never what the file holds.
pub fn read_secret(path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the secret file {path}: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "the secret file {path} is larger than {} KiB",
            MAX_SECRET_FILE_BYTES >> 10
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("the secret file {path} is not UTF-8 text"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests;
