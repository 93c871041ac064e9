//! LastInfoSec (Gatewatcher) enrichment: StixFile / Domain-Name / Hostname / Url → the STIX
//! 2.1 bundle the LastInfoSec API returns, plus the "Last Info Sec" external reference on the
//! enriched observable. Spec: `shared/spec/connectors/lastinfosec.md`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{
    ConnectorKind, ConnectorSettings, IsoDuration, KeyDef, Kind, Secret, SectionSpec, TlpSetting,
    check_url,
};
use crate::connectors::{
    ConnectorError, EnrichmentConnector, EnrichmentRequest, Hosted, Outcome, sent_message,
};
use crate::http::{self, Proxies};
use crate::stix::Tlp;

/// The reference's external reference (its url, not the configured base, keeps its id).
pub const EXTERNAL_REFERENCE_URL: &str = "https://api.client.lastinfosec.com/v2/stix21/search/";

/// The `lastinfosec` section's shape.
pub const SPEC: SectionSpec = SectionSpec {
    section: "lastinfosec",
    kind: ConnectorKind::Enrichment,
    default_name: "LastInfoSec Enrichment",
    default_scope: "StixFile,Domain-Name,Hostname,Url",
    default_auto: false,
    default_api_base_url: "https://api.client.lastinfosec.com/v2",
    api_base_url_aliases: &[],
    default_duration_period: "",
    keys: &[
        KeyDef {
            key: "api_key_cti",
            env_aliases: &["CONFIG_LIS_APIKEY_CTI"],
            kind: Kind::Secret,
            default: "",
            doc: "LastInfoSec API key (required).",
        },
        KeyDef {
            key: "proxy_http",
            env_aliases: &["PROXY_HTTP"],
            kind: Kind::Url,
            default: "",
            doc: "Proxy for http:// upstream calls.",
        },
        KeyDef {
            key: "proxy_https",
            env_aliases: &["PROXY_HTTPS"],
            kind: Kind::Url,
            default: "",
            doc: "Proxy for https:// upstream calls.",
        },
        KeyDef {
            key: "endpoint",
            env_aliases: &[],
            kind: Kind::Str,
            default: "search",
            doc: "`search` (POST /stix21/search/, as the current official connector) or `hash_host` (GET /stix21/search_hash/{hash} and /stix21/search_host/{host}).",
        },
        KeyDef {
            key: "max_tlp",
            env_aliases: &[],
            kind: Kind::Tlp,
            default: "TLP:AMBER",
            doc: "Highest TLP of an observable that may be sent to LastInfoSec.",
        },
        KeyDef {
            key: "request_timeout",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "PT30S",
            doc: "Timeout of one LastInfoSec request.",
        },
    ],
};

/// Which LastInfoSec endpoints to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /stix21/search/` with `{"value": …}` for every type.
    #[default]
    Search,
    /// `GET /stix21/search_hash/{hash}` (files) and `GET /stix21/search_host/{host}` (the rest).
    HashHost,
}

/// `lastinfosec:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LastinfosecSection {
    pub enabled: bool,
    pub api_base_url: String,
    pub connector: crate::config::ConnectorBlock,
    pub api_key_cti: Option<Secret>,
    pub proxy_http: Option<String>,
    pub proxy_https: Option<String>,
    pub endpoint: Endpoint,
    pub max_tlp: TlpSetting,
    pub request_timeout: IsoDuration,
}

impl Default for LastinfosecSection {
    fn default() -> Self {
        LastinfosecSection {
            enabled: false,
            api_base_url: SPEC.default_api_base_url.into(),
            connector: Default::default(),
            api_key_cti: None,
            proxy_http: None,
            proxy_https: None,
            endpoint: Endpoint::Search,
            max_tlp: TlpSetting(Tlp::Amber),
            request_timeout: IsoDuration(Duration::from_secs(30)),
        }
    }
}

impl crate::connectors::Section for LastinfosecSection {
    crate::section_accessors!(SPEC);
    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self
            .api_key_cti
            .as_ref()
            .is_none_or(|k| k.is_blank() || k.expose() == "ChangeMe")
        {
            errors.push("lastinfosec.api_key_cti (env LASTINFOSEC_API_KEY_CTI or CONFIG_LIS_APIKEY_CTI): required when lastinfosec.enabled is true".into());
        }
        for (key, value) in [
            ("api_base_url", Some(&self.api_base_url)),
            ("proxy_http", self.proxy_http.as_ref()),
            ("proxy_https", self.proxy_https.as_ref()),
        ] {
            if let Some(Err(e)) = value.map(|v| check_url(&format!("lastinfosec.{key}"), v)) {
                errors.push(e);
            }
        }
        if let Err(mut e) = self.connector.resolve(&SPEC, true) {
            errors.append(&mut e);
        }
        errors
    }
    fn build(&self) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
        let settings = self.connector.resolve(&SPEC, true)?;
        let connector =
            LastinfosecConnector::new(self).map_err(|e| vec![format!("lastinfosec: {e}")])?;
        Ok((settings, Hosted::Enrichment(std::sync::Arc::new(connector))))
    }
}

/// The LastInfoSec connector.
pub struct LastinfosecConnector {
    client: reqwest::Client,
    base: reqwest::Url,
    api_key: Secret,
    endpoint: Endpoint,
    max_tlp: Tlp,
}

/// The strongest hash of a file (the platform's `observable_value` order).
fn strongest_hash(file: &Value) -> Option<String> {
    let hashes = file.get("hashes")?.as_object()?;
    ["SHA-512", "SHA-256", "SHA-1", "MD5"]
        .iter()
        .find_map(|k| hashes.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

/// Whether an upstream object is usable: an object with a `type`, an id `<type>--<uuid>`, and
/// for relationships both ends.
fn valid_object(o: &Value) -> Result<(), String> {
    let stix_type = o.get("type").and_then(Value::as_str).ok_or("no type")?;
    let id = o.get("id").and_then(Value::as_str).ok_or("no id")?;
    let (prefix, uuid) = id.split_once("--").ok_or("id is not <type>--<uuid>")?;
    if prefix != stix_type || uuid::Uuid::parse_str(uuid).is_err() {
        return Err(format!("id `{id}` does not match type `{stix_type}`"));
    }
    if stix_type == "relationship" {
        for end in ["source_ref", "target_ref"] {
            o.get(end)
                .and_then(Value::as_str)
                .ok_or(format!("relationship without {end}"))?;
        }
    }
    Ok(())
}

/// The objects of the answer's first bundle, malformed ones dropped. `None`: no bundle.
pub fn upstream_objects(body: &Value) -> Option<(Vec<Value>, usize)> {
    let bundle = match body.get("message")? {
        Value::Array(list) => list.first()?.clone(),
        Value::Object(o) => Value::Object(o.clone()),
        _ => return None,
    };
    let objects = bundle.get("objects").and_then(Value::as_array)?;
    let mut dropped = 0;
    let kept = objects
        .iter()
        .filter(|o| match valid_object(o) {
            Ok(()) => true,
            Err(why) => {
                dropped += 1;
                tracing::warn!(connector = "lastinfosec", reason = %why, "Dropped a malformed object from the LastInfoSec bundle.");
                false
            }
        })
        .cloned()
        .collect();
    Some((kept, dropped))
}

/// Adds the "Last Info Sec" external reference to the enriched observable (once).
pub fn with_external_reference(objects: &[Value], entity_id: &str) -> Vec<Value> {
    let reference = json!({"source_name": "Last Info Sec", "url": EXTERNAL_REFERENCE_URL, "description": "LastInfoSec Threat Feed"});
    let mut objects = objects.to_vec();
    let entity = objects
        .iter_mut()
        .find(|o| o.get("id").and_then(Value::as_str) == Some(entity_id));
    if let Some(Value::Object(entity)) = entity {
        let refs = entity
            .entry("x_opencti_external_references")
            .or_insert_with(|| json!([]));
        if !refs.is_array() {
            *refs = json!([]);
        }
        if let Value::Array(list) = refs
            && !list.iter().any(|r| r.get("url") == reference.get("url"))
        {
            list.push(reference);
        }
    }
    objects
}

impl LastinfosecConnector {
    pub fn new(section: &LastinfosecSection) -> Result<Self, String> {
        let proxies = Proxies {
            http: section.proxy_http.clone(),
            https: section.proxy_https.clone(),
        };
        Ok(LastinfosecConnector {
            client: http::client(section.request_timeout.0, Some(&proxies))
                .map_err(|e| e.to_string())?,
            base: reqwest::Url::parse(&section.api_base_url).map_err(|e| e.to_string())?,
            api_key: section
                .api_key_cti
                .clone()
                .ok_or("lastinfosec.api_key_cti is required")?,
            endpoint: section.endpoint,
            max_tlp: section.max_tlp.0,
        })
    }

    /// The value the reference sends, and the request to send it with.
    fn request(
        &self,
        request: &EnrichmentRequest,
    ) -> Result<(String, reqwest::RequestBuilder), ConnectorError> {
        let entity = &request.stix_entity;
        let stix_type = entity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value = request
            .observable_value
            .clone()
            .or_else(|| {
                if stix_type == "file" {
                    strongest_hash(entity)
                } else {
                    None
                }
            })
            .or_else(|| {
                entity
                    .get("value")
                    .or_else(|| entity.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                ConnectorError::Rejected("The observable has no value to look up".into())
            })?;
        let auth = [("api_key", self.api_key.expose()), ("platform", "opencti")];
        let builder = match self.endpoint {
            Endpoint::Search => {
                let url = http::join_segments(&self.base, &["stix21", "search", ""]);
                self.client
                    .post(url)
                    .query(&auth)
                    .json(&json!({ "value": value }))
            }
            Endpoint::HashHost => {
                let (route, key) = if stix_type == "file" {
                    (
                        "search_hash",
                        strongest_hash(entity).unwrap_or_else(|| value.clone()),
                    )
                } else if stix_type == "url" {
                    let host = reqwest::Url::parse(&value)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string));
                    (
                        "search_host",
                        host.ok_or_else(|| {
                            ConnectorError::Rejected(format!("`{value}` has no host to look up"))
                        })?,
                    )
                } else {
                    ("search_host", value.clone())
                };
                let url = http::join_segments(&self.base, &["stix21", route, &key]);
                self.client.get(url).query(&auth)
            }
        };
        Ok((value, builder))
    }
}

/// The reference's error text, with the key redacted from the URL.
fn status_text(status: reqwest::StatusCode, url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            (
                k.to_string(),
                if k == "api_key" {
                    "**redacted**".to_string()
                } else {
                    v.to_string()
                },
            )
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    let kind = if status.is_server_error() {
        "Server Error"
    } else {
        "Client Error"
    };
    format!(
        "{} {kind}: {} for url: {shown}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

#[async_trait]
impl EnrichmentConnector for LastinfosecConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        Some(self.max_tlp)
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let (value, builder) = self.request(request)?;
        let response = builder.send().await.map_err(|e| {
            ConnectorError::Retryable(format!(
                "LastInfoSec is unreachable: {}",
                http::describe(&e.without_url())
            ))
        })?;
        let status = response.status();
        let url = response.url().clone();
        if status.as_u16() == 422 {
            return Ok(Outcome::Done(format!("{value} not found...")));
        }
        if !status.is_success() {
            let text = status_text(status, &url);
            return Err(match status.as_u16() {
                401 | 403 => ConnectorError::Misconfigured(format!(
                    "{text} (LastInfoSec refused the API key: check lastinfosec.api_key_cti)"
                )),
                429 | 500.. => ConnectorError::Retryable(text),
                _ => ConnectorError::Rejected(text),
            });
        }
        let body: Value = response.json().await.map_err(|_| {
            ConnectorError::Rejected("LastInfoSec answered with something that is not JSON".into())
        })?;
        let Some((upstream, dropped)) = upstream_objects(&body) else {
            return Ok(Outcome::Done(format!(
                "{value} not found... (LastInfoSec returned no bundle)"
            )));
        };
        if upstream.is_empty() {
            return Ok(Outcome::Done(format!(
                "{value} not found... (LastInfoSec returned an empty bundle{})",
                if dropped > 0 {
                    format!(", {dropped} malformed object(s) dropped")
                } else {
                    String::new()
                }
            )));
        }
        let mut objects = with_external_reference(&request.stix_objects, &request.entity_id);
        objects.extend(upstream);
        Ok(Outcome::Bundle {
            objects,
            message: Box::new(sent_message),
        })
    }
}

#[cfg(test)]
mod tests;
