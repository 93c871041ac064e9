//! The deployment files' generated parts: each connector's variables in `docker-compose.yml`,
//! the secrets (compose secrets, systemd credentials, the files the README's steps create),
//! and the Dockerfile's drop-in images.
//!
//! A secret is a `Secret` key the connector requires (declared `required`), plus
//! OpenCTI's token: each is a file named after its key (`ipinfo.token` → `ipinfo_token`) that
//! the daemon reads through the `_FILE` form of the key's first variable. Optional secrets
//! (IPsum's GitHub token, IVRE's API key) are suggested, commented out.

use crate::config::{ConnectorKind, KeySpec, Kind, SectionSpec};
use crate::{dropin, registry};

use super::sample::{PLACEHOLDER, yaml_scalar};

/// The shared blocks' secrets (their keys), before the connectors'.
const SHARED_SECRETS: &[&str] = &["opencti.token"];

/// Values the compose file sets where neither the default nor the key's sample suits it,
/// each with a comment: IVRE's URL (the compose network's `ivre` service, its web API at
/// `/cgi`) and TLP limit (IVRE has none by default; the file keeps the others' AMBER). Any
/// other key a connector requires and that has no default shows its sample (its
/// declaration's `sample`), or `ChangeMe` when it has none.
const COMPOSE_VALUES: &[(&str, &str, &str)] = &[
    (
        "ivre.api_base_url",
        "http://ivre/cgi#Referer=http://ivre/",
        "IVRE's web API; the fragment's Referer= and X-API-Key= become request headers",
    ),
    ("ivre.max_tlp", "TLP:AMBER", ""),
];

/// The keys of a section the compose file sets besides the required ones (when the section
/// has them and they have a value).
const COMPOSE_KEYS: &[&str] = &[
    "enabled",
    "connector.id",
    "connector.name",
    "connector.scope",
    "connector.auto",
    "connector.duration_period",
    "max_tlp",
];

/// The name of the secret file of `key` (`ipinfo_token`).
fn secret_name(key: &KeySpec) -> String {
    key.path.replace('.', "_")
}

/// Every secret, the shared ones first, then each connector's in the registry's order.
fn secrets() -> Vec<KeySpec> {
    let all = registry::all_keys();
    let mut secrets: Vec<KeySpec> = all
        .into_iter()
        .filter(|k| SHARED_SECRETS.contains(&k.path.as_str()))
        .collect();
    for spec in registry::specs() {
        secrets.extend(
            super::required(spec)
                .into_iter()
                .filter(|k| k.kind == Kind::Secret),
        );
    }
    secrets
}

/// The secret files, space-separated (the `for s in …;` loops).
pub fn secret_files() -> String {
    secrets()
        .iter()
        .map(secret_name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The compose service's `secrets:` list.
pub fn compose_service_secrets() -> String {
    secrets()
        .iter()
        .map(|k| format!("      - {}\n", secret_name(k)))
        .collect()
}

/// The compose file's top-level `secrets:`, each a file under `./secrets/`.
pub fn compose_secrets() -> String {
    secrets()
        .iter()
        .map(|k| {
            let name = secret_name(k);
            format!("  {name}:\n    file: ./secrets/{name}\n")
        })
        .collect()
}

/// The unit's credential and `_FILE` variable of each secret.
pub fn systemd_credentials() -> String {
    let secrets = secrets();
    let mut out = String::new();
    for key in &secrets {
        let name = secret_name(key);
        out.push_str(&format!(
            "LoadCredential={name}:/etc/opencti-connectors/secrets/{name}\n"
        ));
    }
    for key in &secrets {
        let name = secret_name(key);
        out.push_str(&format!("Environment={}_FILE=%d/{name}\n", key.env[0]));
    }
    out
}

/// Each connector's variables in the compose service's `environment:`: enabled (false), its
/// id (`ChangeMe`), name, scope, `auto` or period, each required value (a secret by its
/// `_FILE` form), its TLP limit; then its optional secrets, commented out.
pub fn compose_environment() -> String {
    registry::specs().into_iter().map(compose_section).collect()
}

fn compose_section(spec: &SectionSpec) -> String {
    const ITEM: &str = "      - ";
    let kind = match spec.kind {
        ConnectorKind::Enrichment { .. } => "enrichment",
        ConnectorKind::Import { .. } => "import",
    };
    let mut out = format!("      # {} ({}, {kind})\n", spec.default_name, spec.section);
    let mut optional = Vec::new();
    for key in spec.all_keys() {
        let relative = &key.path[spec.section.len() + 1..];
        let env = &key.env[0];
        if key.kind == Kind::Secret {
            let file = format!("{env}_FILE=/run/secrets/{}", secret_name(&key));
            if key.required {
                out.push_str(&format!("{ITEM}{}\n", yaml_scalar(&file)));
            } else {
                optional.push(file);
            }
            continue;
        }
        if !key.required && !COMPOSE_KEYS.contains(&relative) {
            continue;
        }
        let chosen = COMPOSE_VALUES.iter().find(|(path, ..)| *path == key.path);
        if let Some((.., note)) = chosen.filter(|(.., note)| !note.is_empty()) {
            out.push_str(&format!("      # {note}\n"));
        }
        let value = chosen
            .map(|(_, value, _)| value.to_string())
            .or_else(|| (!key.default.is_empty()).then(|| key.default.clone()))
            .or_else(|| (key.required && !key.sample.is_empty()).then(|| key.sample.clone()))
            .or_else(|| (key.required || relative == "connector.id").then(|| PLACEHOLDER.into()));
        if let Some(value) = value {
            out.push_str(&format!(
                "{ITEM}{}\n",
                yaml_scalar(&format!("{env}={value}"))
            ));
        }
    }
    if !optional.is_empty() {
        out.push_str("      # Optional: a secret each (under both secrets: lists), then:\n");
        for file in optional {
            out.push_str(&format!("      # - {file}\n"));
        }
    }
    out
}

/// The Dockerfile's stage of each connector: the daemon as its drop-in.
pub fn images() -> String {
    registry::specs()
        .into_iter()
        .map(|spec| {
            let s = spec.section;
            format!(
                "FROM daemon AS {s}\nLABEL org.opencontainers.image.title=\"opencti-connectors-{s}\"\nENV {}={s}\n",
                dropin::AS_ENV
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
