//! Reading a compose service's environment as docker compose does: `env_file:`, then
//! `environment:` (list or map), `${VAR}` resolved from the environment and `.env`.

use super::*;

/// The service's variables: `env_file:` first, then `environment:` (which wins), with
/// `${VAR}` resolved.
pub(super) fn environment(
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
pub(super) fn interpolate(
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
pub(super) fn read_env_file(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v.trim()).to_string()))
        .collect())
}

pub(super) fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// A value as an env file line holds it: quoted when it has blanks, quotes, `#` or `$`.
pub(super) fn env_quote(v: &str) -> String {
    if v.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '$' | '\\'))
    {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}
