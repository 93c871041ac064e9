//! One-shot commands, with no OpenCTI and no RabbitMQ: `enrich` looks one entity up with a
//! connector and `import ipsum` runs one IPsum import; both print the STIX bundle the daemon
//! would send (the same objects and ids, split and de-duplicated as it sends them).

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::config::ConfigError;
use crate::connectors::{
    ConnectorError, EnrichmentRequest, FeedSource, Hosted, ImportContext, Outcome,
};
use crate::opencti::split::split;
use crate::registry::{Config, build_one};
use crate::stix::{ObjectMarking, Tlp, check_max_tlp, ids};

/// Why a one-shot command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    /// Bad arguments or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The upstream or the network failed (exit 1).
    #[error("{0}")]
    Upstream(String),
}

impl OneShotError {
    pub fn exit_code(&self) -> u8 {
        match self {
            OneShotError::Usage(_) => 2,
            OneShotError::Upstream(_) => 1,
        }
    }
}

impl From<ConfigError> for OneShotError {
    fn from(e: ConfigError) -> Self {
        OneShotError::Usage(e.to_string())
    }
}

impl From<ConnectorError> for OneShotError {
    fn from(e: ConnectorError) -> Self {
        match e {
            // A refused key is the configuration's to fix.
            ConnectorError::Misconfigured(m) => OneShotError::Usage(m),
            other => OneShotError::Upstream(other.to_string()),
        }
    }
}

/// What a one-shot command produced: a bundle, or the message of a run that sent nothing.
pub enum Printed {
    Bundle(Value),
    Nothing(String),
}

/// The STIX form of an entity given by its OpenCTI type and value.
pub fn entity(entity_type: &str, value: &str) -> Result<Value, OneShotError> {
    let value = value.trim();
    let by_value = |stix_type: &str| {
        json!({"id": ids::value_observable_id(stix_type, value), "type": stix_type,
               "spec_version": "2.1", "value": value})
    };
    let by_hash = |stix_type: &str| -> Result<Value, OneShotError> {
        let algorithm = match value.len() {
            32 => "MD5",
            40 => "SHA-1",
            64 => "SHA-256",
            128 => "SHA-512",
            _ => {
                return Err(OneShotError::Usage(format!(
                    "`{value}` is not an MD5, SHA-1, SHA-256 or SHA-512 hash"
                )));
            }
        };
        let mut props = Map::new();
        props.insert("hashes".into(), json!({ algorithm: value.to_lowercase() }));
        let id = ids::observable_id(stix_type, &props);
        Ok(json!({"id": id, "type": stix_type, "spec_version": "2.1", "hashes": props["hashes"]}))
    };
    Ok(match entity_type.to_ascii_lowercase().as_str() {
        t @ ("ipv4-addr" | "ipv6-addr" | "domain-name" | "hostname" | "url" | "email-addr") => {
            by_value(t)
        }
        "mac-addr" => by_value("mac-addr"),
        "stixfile" | "file" => by_hash("file")?,
        "x509-certificate" => by_hash("x509-certificate")?,
        "autonomous-system" => {
            let number: u64 = value
                .trim_start_matches(['A', 'S', 'a', 's'])
                .parse()
                .map_err(|_| {
                    OneShotError::Usage(format!("`{value}` is not an AS number such as AS15169"))
                })?;
            json!({"id": ids::autonomous_system_id(number), "type": "autonomous-system",
                   "spec_version": "2.1", "number": number})
        }
        other => {
            return Err(OneShotError::Usage(format!(
                "`{other}` is not an entity type this command knows; expected one of: IPv4-Addr, IPv6-Addr, Domain-Name, Hostname, Url, Email-Addr, Mac-Addr, StixFile, X509-Certificate, Autonomous-System"
            )));
        }
    })
}

/// Enriches one entity with `connector`, marked `tlp`, as the daemon would.
pub async fn enrich(
    config: &Config,
    connector: &str,
    entity_type: &str,
    value: &str,
    tlp: Tlp,
) -> Result<Printed, OneShotError> {
    let (_, hosted) = build_one(config, connector)?;
    let Hosted::Enrichment(enricher) = hosted else {
        return Err(OneShotError::Usage(format!(
            "`{connector}` is an importer: use `import {connector}`"
        )));
    };
    let mut stix_entity = entity(entity_type, value)?;
    stix_entity["object_marking_refs"] = json!([tlp.marking_id()]);
    let now = crate::stix::now();
    let request = EnrichmentRequest {
        entity_id: stix_entity["id"].as_str().unwrap_or_default().to_string(),
        entity_type: Some(entity_type.to_string()),
        internal_id: None,
        observable_value: Some(value.trim().to_string()),
        stix_objects: vec![stix_entity.clone(), tlp.export_object(&now)],
        stix_entity,
        markings: vec![ObjectMarking {
            standard_id: Some(tlp.marking_id().to_string()),
            definition_type: Some("TLP".into()),
            definition: Some(tlp.definition().into()),
        }],
        playbook: false,
    };
    // The daemon's TLP gate, before any upstream call.
    if let Some(max) = enricher.max_tlp()
        && !check_max_tlp(tlp.definition(), max)
    {
        return Err(OneShotError::Usage(enricher.tlp_refused_message()));
    }
    match enricher.enrich(&request).await? {
        Outcome::Done(message) => Ok(Printed::Nothing(message)),
        Outcome::Bundle { objects, .. } => Ok(Printed::Bundle(as_sent(objects))),
        Outcome::Prepared { objects, .. } => Ok(Printed::Bundle(as_sent(
            objects
                .iter()
                .map(crate::opencti::prepared::Prepared::to_value)
                .collect(),
        ))),
    }
}

/// The objects as the daemon sends them, in one bundle.
fn as_sent(objects: Vec<Value>) -> Value {
    let objects: Vec<Value> = split(objects, false)
        .into_iter()
        .map(|s| s.object)
        .collect();
    crate::stix::bundle(objects)
}

/// Collects what a run sends, counting it on a progress bar (drawn only when stderr is a
/// terminal: nothing extra when piped).
struct Collect {
    objects: Vec<Value>,
    progress: indicatif::ProgressBar,
}

impl Collect {
    fn new() -> Self {
        let progress = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg} ({per_sec})")
        {
            progress.set_style(style);
        }
        progress.enable_steady_tick(std::time::Duration::from_millis(200));
        progress.set_message("downloading the feed");
        Collect {
            objects: Vec::new(),
            progress,
        }
    }
}

#[async_trait]
impl ImportContext for Collect {
    fn state(&self) -> Option<Value> {
        None
    }
    fn set_state(&mut self, _state: Value) {}
    async fn send_prepared(
        &mut self,
        objects: Vec<crate::opencti::prepared::Prepared>,
    ) -> Result<usize, ConnectorError> {
        self.send(objects.iter().map(|p| p.to_value()).collect())
            .await
    }

    async fn send(&mut self, objects: Vec<Value>) -> Result<usize, ConnectorError> {
        let n = objects.len();
        self.objects.extend(objects);
        self.progress.inc(n as u64);
        self.progress
            .set_message(format!("{} STIX objects built", self.objects.len()));
        Ok(n)
    }
}

/// One run of the importer of section `name`, its bundle printed instead of sent; its feed
/// read from `feed`, or with `None` from the configured `<section>.api_base_url` (IPsum's:
/// its public level-5 list).
pub async fn import(
    config: &Config,
    name: &str,
    feed: Option<FeedSource>,
) -> Result<Printed, OneShotError> {
    let importers: Vec<&str> = crate::registry::specs()
        .iter()
        .filter(|s| s.kind.is_import())
        .map(|s| s.section)
        .collect();
    let not_one = || {
        OneShotError::Usage(format!(
            "`{name}` is not an importer; expected: {}",
            importers.join(", ")
        ))
    };
    if !importers.contains(&name) {
        return Err(not_one());
    }
    let Hosted::Import(mut importer) = build_one(config, name)?.1 else {
        return Err(not_one());
    };
    if let Some(source) = feed {
        importer = importer.with_source(&source).map_err(OneShotError::Usage)?;
    }
    let mut collected = Collect::new();
    let result = importer.run(&mut collected).await;
    collected.progress.finish_and_clear();
    let message = result?;
    if collected.objects.is_empty() {
        return Ok(Printed::Nothing(message));
    }
    Ok(Printed::Bundle(as_sent(collected.objects)))
}
