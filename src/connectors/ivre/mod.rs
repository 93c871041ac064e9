//! IVRE enrichment over IVRE's web API: autonomous-system, domain-name, ipv4/ipv6-addr,
//! mac-addr and x509-certificate observables, from three sources — data (MaxMind `/ipdata`),
//! passive (`/passive`) and scans (`/scans` or `/view`). Spec: `shared/spec/connectors/ivre.md`.

pub mod client;
pub mod collect;

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{
    ConnectorKind, ConnectorSettings, IsoDuration, KeyDef, Kind, Secret, SectionSpec, TlpSetting,
};
use crate::connectors::{ConnectorError, EnrichmentConnector, EnrichmentRequest, Hosted, Outcome};
use crate::stix::{Identity, Tlp};
use client::{Endpoint, IvreClient, IvreError, parse_time};
use collect::{Collector, norm_domain};

/// The `ivre` section's shape.
pub const SPEC: SectionSpec = SectionSpec {
    section: "ivre",
    kind: ConnectorKind::Enrichment,
    default_name: "IVRE",
    default_scope: "autonomous-system,domain-name,ipv4-addr,ipv6-addr,mac-addr,x509-certificate",
    default_auto: false,
    default_api_base_url: "",
    api_base_url_aliases: &["IVRE_DB_URL"],
    default_duration_period: "",
    keys: &[
        KeyDef {
            key: "db_url_data",
            env_aliases: &[],
            kind: Kind::Str,
            default: "",
            doc: "Base URL for `/ipdata` (default: `api_base_url`).",
        },
        KeyDef {
            key: "db_url_passive",
            env_aliases: &[],
            kind: Kind::Str,
            default: "",
            doc: "Base URL for `/passive` (default: `api_base_url`).",
        },
        KeyDef {
            key: "db_url_scans",
            env_aliases: &[],
            kind: Kind::Str,
            default: "",
            doc: "Base URL for `/scans` or `/view` (default: `api_base_url`).",
        },
        KeyDef {
            key: "scans_route",
            env_aliases: &[],
            kind: Kind::Str,
            default: "scans",
            doc: "`scans` (the nmap DB, as the reference) or `view` (needed for AS lookups).",
        },
        KeyDef {
            key: "referer",
            env_aliases: &[],
            kind: Kind::Str,
            default: "",
            doc: "`Referer` sent (default `<scheme>://<host>/` of each URL); one of the server's WEB_ALLOWED_REFERERS behind a proxy.",
        },
        KeyDef {
            key: "api_key",
            env_aliases: &[],
            kind: Kind::Secret,
            default: "",
            doc: "IVRE API key, sent as `X-API-Key` (also passes the Referer check).",
        },
        KeyDef {
            key: "max_tlp",
            env_aliases: &[],
            kind: Kind::Tlp,
            default: "",
            doc: "Highest TLP sent to IVRE; unset means no restriction (as the reference).",
        },
        KeyDef {
            key: "use_data",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Use MaxMind data (`/ipdata`) for IPs.",
        },
        KeyDef {
            key: "use_passive",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Use the passive DB.",
        },
        KeyDef {
            key: "use_passive_as",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Passive lookups for AS (the web API has none: skipped with a warning).",
        },
        KeyDef {
            key: "use_passive_domain",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Passive DNS lookups for domains.",
        },
        KeyDef {
            key: "use_scans",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Use the scans DB.",
        },
        KeyDef {
            key: "use_scans_as",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "false",
            doc: "Scans lookups for AS (needs `scans_route: view`).",
        },
        KeyDef {
            key: "use_scans_domain",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "false",
            doc: "Scans lookups for domains (the name and its subdomains).",
        },
        KeyDef {
            key: "page_size",
            env_aliases: &[],
            kind: Kind::Int,
            default: "200",
            doc: "Records per page (`limit:`).",
        },
        KeyDef {
            key: "max_records",
            env_aliases: &[],
            kind: Kind::Int,
            default: "0",
            doc: "Cap per query (0: none); paging stops with a warning when hit.",
        },
        KeyDef {
            key: "http_timeout",
            env_aliases: &[],
            kind: Kind::Duration,
            default: "PT2M",
            doc: "Timeout of one IVRE request.",
        },
        KeyDef {
            key: "verify_tls",
            env_aliases: &[],
            kind: Kind::Bool,
            default: "true",
            doc: "Verify IVRE's TLS certificate.",
        },
    ],
};

/// Which route serves the scans source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScansRoute {
    #[default]
    Scans,
    View,
}

impl ScansRoute {
    fn as_str(self) -> &'static str {
        match self {
            ScansRoute::Scans => "scans",
            ScansRoute::View => "view",
        }
    }
}

/// `ivre:` in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvreSection {
    pub enabled: bool,
    /// IVRE's web API mount point (the reference's `db_url`), e.g. `https://ivre.example.com/cgi`.
    pub api_base_url: Option<String>,
    pub connector: crate::config::ConnectorBlock,
    pub db_url_data: Option<String>,
    pub db_url_passive: Option<String>,
    pub db_url_scans: Option<String>,
    pub scans_route: ScansRoute,
    pub referer: Option<String>,
    pub api_key: Option<Secret>,
    pub max_tlp: Option<TlpSetting>,
    pub use_data: bool,
    pub use_passive: bool,
    pub use_passive_as: bool,
    pub use_passive_domain: bool,
    pub use_scans: bool,
    pub use_scans_as: bool,
    pub use_scans_domain: bool,
    pub page_size: u64,
    pub max_records: u64,
    pub http_timeout: IsoDuration,
    pub verify_tls: bool,
}

impl Default for IvreSection {
    fn default() -> Self {
        IvreSection {
            enabled: false,
            api_base_url: None,
            connector: Default::default(),
            db_url_data: None,
            db_url_passive: None,
            db_url_scans: None,
            scans_route: ScansRoute::Scans,
            referer: None,
            api_key: None,
            max_tlp: None,
            use_data: true,
            use_passive: true,
            use_passive_as: true,
            use_passive_domain: true,
            use_scans: true,
            use_scans_as: false,
            use_scans_domain: false,
            page_size: 200,
            max_records: 0,
            http_timeout: IsoDuration(Duration::from_secs(120)),
            verify_tls: true,
        }
    }
}

impl IvreSection {
    /// The endpoint of each purpose, or why it is unusable.
    fn endpoints(&self) -> [(&'static str, Result<Endpoint, String>); 3] {
        let pick = |specific: &Option<String>| {
            specific
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| self.api_base_url.clone().unwrap_or_default())
        };
        let parse = |url: String| {
            if url.trim().is_empty() {
                Err("no URL configured".to_string())
            } else {
                Endpoint::parse(
                    &url,
                    self.referer.as_deref().filter(|r| !r.is_empty()),
                    self.api_key.as_ref().filter(|k| !k.is_blank()),
                )
            }
        };
        [
            ("data", parse(pick(&self.db_url_data))),
            ("passive", parse(pick(&self.db_url_passive))),
            ("scans", parse(pick(&self.db_url_scans))),
        ]
    }
}

impl crate::connectors::Section for IvreSection {
    crate::section_accessors!(SPEC);
    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.endpoints().iter().all(|(_, e)| e.is_err()) {
            let why: Vec<String> = self
                .endpoints()
                .into_iter()
                .map(|(p, e)| format!("{p}: {}", e.err().unwrap_or_default()))
                .collect();
            errors.push(format!("ivre.api_base_url (env IVRE_API_BASE_URL or IVRE_DB_URL): no usable IVRE web API URL ({})", why.join("; ")));
        }
        if let Err(mut e) = self.connector.resolve(&SPEC, false) {
            errors.append(&mut e);
        }
        errors
    }
    fn build(&self) -> Result<(ConnectorSettings, Hosted), Vec<String>> {
        let settings = self.connector.resolve(&SPEC, false)?;
        let connector =
            IvreConnector::new(self, &settings.name).map_err(|e| vec![format!("ivre: {e}")])?;
        Ok((settings, Hosted::Enrichment(std::sync::Arc::new(connector))))
    }
}

/// The IVRE connector.
pub struct IvreConnector {
    client: IvreClient,
    data: Option<Endpoint>,
    passive: Option<Endpoint>,
    scans: Option<Endpoint>,
    section: IvreSection,
    author_name: String,
}

/// The six observable kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind6 {
    As,
    Domain,
    Ip,
    Mac,
    Cert,
}

/// What one source did.
enum SourceResult {
    Ok(String),
    Failed(String),
    NotApplicable,
}

const HONEYPOTS: &[&str] = &[
    "HTTP_HONEYPOT_REQUEST",
    "DNS_HONEYPOT_QUERY",
    "TCP_HONEYPOT_HIT",
    "UDP_HONEYPOT_HIT",
];

/// The certificate hash to query by: sha256, sha1, md5 (names normalised), else a hex value.
pub fn cert_hash(entity: &Value, observable_value: Option<&str>) -> Option<(&'static str, String)> {
    if let Some(hashes) = entity.get("hashes").and_then(Value::as_object) {
        let norm: Vec<(String, &str)> = hashes
            .iter()
            .filter_map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.to_lowercase().replace(['-', '_'], ""), v))
            })
            .collect();
        for algo in ["sha256", "sha1", "md5"] {
            if let Some((_, v)) = norm.iter().find(|(k, _)| k == algo) {
                return Some((algo, v.to_lowercase()));
            }
        }
    }
    let v = observable_value.or_else(|| entity.get("value").and_then(Value::as_str))?;
    let algo = match v.len() {
        32 => "md5",
        40 => "sha1",
        64 => "sha256",
        _ => return None,
    };
    v.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| (algo, v.to_lowercase()))
}

/// `first = a or b`, `last = b or a`.
fn times(
    record: &Value,
    first: &str,
    last: &str,
) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
    let f = record.get(first).and_then(parse_time);
    let l = record.get(last).and_then(parse_time);
    (f.or(l), l.or(f))
}

impl IvreConnector {
    pub fn new(section: &IvreSection, name: &str) -> Result<Self, String> {
        let mut endpoints = section.endpoints().into_iter().map(|(purpose, e)| match e {
            Ok(e) => Some(e),
            Err(why) => {
                tracing::error!(connector = "ivre", purpose, reason = %why, "IVRE purpose disabled.");
                None
            }
        });
        let (data, passive, scans) = (
            endpoints.next().flatten(),
            endpoints.next().flatten(),
            endpoints.next().flatten(),
        );
        Ok(IvreConnector {
            client: IvreClient::new(
                section.http_timeout.0,
                section.verify_tls,
                section.page_size,
                section.max_records,
            )
            .map_err(|e| e.to_string())?,
            data,
            passive,
            scans,
            section: section.clone(),
            author_name: name.to_string(),
        })
    }

    fn author(&self, now: &str) -> Identity {
        let description = format!(
            "IVRE instance {}\nSee <https://ivre.rocks/>",
            self.author_name
        );
        Identity::organization(&self.author_name, Some(&description), now)
    }

    async fn data_source(
        &self,
        c: &mut Collector,
        obs: &str,
        value: &str,
    ) -> Result<String, IvreError> {
        let Some(endpoint) = &self.data else {
            return Err(IvreError("no usable data URL".into()));
        };
        let Some(info) = self.client.ipdata(endpoint, value).await? else {
            return Ok("no data".into());
        };
        let s = |k: &str| info.get(k).and_then(Value::as_str);
        let before = c.added();
        if let Some(country) = s("country_name") {
            let target = match s("city") {
                Some(city) => c.add_city(city, country, s("country_code")),
                None => c.add_country(country, s("country_code")),
            };
            c.link("located-at", obs, &target, None, None);
        }
        if let Some(registered) =
            s("registered_country_name").filter(|r| Some(*r) != s("country_name"))
        {
            let target = c.add_country(registered, s("registered_country_code"));
            c.link("located-at", obs, &target, None, None);
        }
        if let Some(asn) = info.get("as_num").and_then(Value::as_u64) {
            let target = c.add_asn(asn, s("as_name"));
            c.link("belongs-to", obs, &target, None, None);
        }
        Ok(format!("{} objects", c.added() - before))
    }

    /// Resolves a name seen for the enriched domain: itself, a subdomain chain, or a domain.
    fn resolve_name(c: &mut Collector, n: &str, name: &str, obs: &str) -> String {
        if n == name {
            obs.to_string()
        } else if n.ends_with(&format!(".{name}")) {
            c.link_domain_parent(n, name, obs)
        } else {
            c.add_domain(n)
        }
    }

    fn passive_record(c: &mut Collector, kind: Kind6, obs: &str, name: &str, r: &Value) {
        let (first, last) = times(r, "firstseen", "lastseen");
        let field = |k: &str| r.get(k).and_then(Value::as_str);
        let recontype = field("recontype").unwrap_or_default();
        let Some(addr) = field("addr") else {
            if kind == Kind6::Domain
                && recontype == "DNS_ANSWER"
                && let (Some(value), Some(target)) = (field("value"), field("targetval"))
            {
                let from = Self::resolve_name(c, &norm_domain(value), name, obs);
                let to = Self::resolve_name(c, &norm_domain(target), name, obs);
                c.link("resolves-to", &from, &to, first, last);
            }
            return;
        };
        let ip = c.add_addr(addr);
        match kind {
            Kind6::As => {
                c.link("belongs-to", &ip, obs, None, None);
            }
            Kind6::Cert => {
                c.link("related-to", &ip, obs, first, last);
                return;
            }
            Kind6::Mac => {
                c.link("resolves-to", &ip, obs, first, last);
                return;
            }
            Kind6::Domain => {
                let v = norm_domain(field("value").unwrap_or_default());
                if v == name || v.ends_with(&format!(".{name}")) {
                    let from = Self::resolve_name(c, &v, name, obs);
                    c.link("resolves-to", &from, &ip, first, last);
                } else {
                    tracing::warn!(connector = "ivre", domain = name, value = %v, "Unexpected passive record for the domain.");
                }
                return;
            }
            Kind6::Ip => {}
        }
        let infos = r.get("infos");
        match recontype {
            "DNS_ANSWER" => {
                if let Some(value) = field("value") {
                    let d = c.add_domain(value);
                    c.link("resolves-to", &d, &ip, first, last);
                }
            }
            "SSL_SERVER" => {
                if field("source") == Some("cert")
                    && let Some(cert) = infos
                {
                    c.add_and_link_cert(cert, &ip, first, last);
                }
            }
            "MAC_ADDRESS" => {
                if let Some(mac) = field("value") {
                    let m = c.add_mac(mac);
                    c.link("resolves-to", &ip, &m, first, last);
                }
            }
            _ => {
                if infos
                    .and_then(|i| i.get("service_name"))
                    .and_then(Value::as_str)
                    == Some("scanner")
                {
                    let product = infos
                        .and_then(|i| i.get("service_product"))
                        .and_then(Value::as_str)
                        .unwrap_or("(unknown)");
                    c.label(&ip, &format!("Scanner {product}"));
                } else if HONEYPOTS.contains(&recontype) {
                    c.label(&ip, "Scanner (unknown)");
                }
            }
        }
    }

    fn scans_record(c: &mut Collector, kind: Kind6, obs: &str, name: &str, r: &Value) {
        let (first, last) = times(r, "starttime", "endtime");
        let ip = if kind == Kind6::Ip {
            obs.to_string()
        } else {
            match r.get("addr").and_then(Value::as_str) {
                Some(addr) => c.add_addr(addr),
                None => return,
            }
        };
        for hostname in r
            .get("hostnames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let htype = hostname
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if htype != "A" && htype != "PTR" {
                continue;
            }
            let Some(n) = hostname
                .get("name")
                .and_then(Value::as_str)
                .map(norm_domain)
            else {
                continue;
            };
            let from = if kind == Kind6::Domain {
                Self::resolve_name(c, &n, name, obs)
            } else {
                c.add_domain(&n)
            };
            c.link("resolves-to", &from, &ip, first, last);
        }
        for port in r
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for script in port
                .get("scripts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if script.get("id").and_then(Value::as_str) != Some("ssl-cert") {
                    continue;
                }
                for cert in script
                    .get("ssl-cert")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    c.add_and_link_cert(cert, &ip, first, last);
                }
            }
        }
    }

    /// The passive filters for the entity (several are concatenated).
    fn passive_filters(
        &self,
        kind: Kind6,
        key: &str,
        hash: &Option<(&'static str, String)>,
    ) -> Result<Vec<Value>, String> {
        Ok(match kind {
            Kind6::As => {
                if self.section.use_passive_as {
                    tracing::warn!(
                        connector = "ivre",
                        "IVRE passive has no AS filter; skipping the passive source for this AS."
                    );
                }
                return Err("skipped".into());
            }
            Kind6::Domain if !self.section.use_passive_domain => return Err("skipped".into()),
            Kind6::Domain => vec![
                json!({"f": "dns", "a": [key]}),
                json!({"f": "dns", "a": [key], "k": {"reverse": true}}),
            ],
            Kind6::Ip => vec![json!({"f": "host", "a": [key]})],
            Kind6::Mac => vec![json!({"f": "mac", "a": [key]})],
            Kind6::Cert => match hash {
                Some((algo, h)) => vec![json!({"f": "cert", "k": {*algo: h}})],
                None => return Err("skipped".into()),
            },
        })
    }

    fn scans_filters(
        &self,
        kind: Kind6,
        key: &str,
        number: Option<u64>,
        hash: &Option<(&'static str, String)>,
    ) -> Result<Vec<Value>, String> {
        Ok(match kind {
            Kind6::As if !self.section.use_scans_as => return Err("skipped".into()),
            Kind6::As if self.section.scans_route != ScansRoute::View => {
                tracing::warn!(
                    connector = "ivre",
                    "AS filtering needs IVRE_SCANS_ROUTE=view; skipping the scans source for this AS."
                );
                return Err("skipped".into());
            }
            Kind6::As => vec![json!({"f": "asnum", "a": [number]})],
            Kind6::Domain if !self.section.use_scans_domain => return Err("skipped".into()),
            Kind6::Domain => vec![json!({"f": "domain", "a": [key]})],
            Kind6::Ip => vec![json!({"f": "host", "a": [key]})],
            Kind6::Mac => vec![json!({"f": "mac", "a": [key]})],
            Kind6::Cert => match hash {
                Some((algo, h)) => vec![json!({"f": "cert", "k": {*algo: h}})],
                None => return Err("skipped".into()),
            },
        })
    }

    async fn run_list(
        &self,
        endpoint: &Option<Endpoint>,
        route: &str,
        filters: Vec<Value>,
    ) -> Result<Vec<Value>, IvreError> {
        let Some(endpoint) = endpoint else {
            return Err(IvreError(format!("no usable {route} URL")));
        };
        let mut all = Vec::new();
        for f in filters {
            all.extend(self.client.list(endpoint, route, &f).await?);
        }
        Ok(all)
    }
}

fn records(n: usize) -> String {
    format!("{n} record{}", if n == 1 { "" } else { "s" })
}

#[async_trait]
impl EnrichmentConnector for IvreConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        self.section.max_tlp.map(|t| t.0)
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        let entity = &request.stix_entity;
        let stix_type = entity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = match stix_type {
            "autonomous-system" => Kind6::As,
            "domain-name" => Kind6::Domain,
            "ipv4-addr" | "ipv6-addr" => Kind6::Ip,
            "mac-addr" => Kind6::Mac,
            "x509-certificate" => Kind6::Cert,
            other => {
                return Ok(Outcome::Done(format!(
                    "IVRE: entity type `{other}` not supported"
                )));
            }
        };
        let value = entity
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == Kind6::Ip && value.contains('/') {
            return Ok(Outcome::Done(format!(
                "IVRE: {value} is a network; IVRE is queried for single addresses"
            )));
        }
        let number = entity.get("number").and_then(Value::as_u64);
        let name = norm_domain(value);
        let key = match kind {
            Kind6::Domain => name.clone(),
            Kind6::Mac => value.to_lowercase(),
            _ => value.to_string(),
        };
        let hash = if kind == Kind6::Cert {
            cert_hash(entity, request.observable_value.as_deref())
        } else {
            None
        };
        if kind == Kind6::Cert && hash.is_none() {
            tracing::warn!(connector = "ivre", entity = %request.entity_id, "Cannot process X509-Certificate observable without a usable hash.");
        }
        let now = crate::stix::now();
        let author = self.author(&now);
        let obs = request.entity_id.clone();
        let mut c = Collector::new(&author, entity, &obs);
        let mut report: Vec<(&str, SourceResult)> = Vec::new();

        // data (MaxMind): IPs only.
        let data = if self.section.use_data && kind == Kind6::Ip {
            match self.data_source(&mut c, &obs, value).await {
                Ok(s) => SourceResult::Ok(s),
                Err(e) => SourceResult::Failed(e.to_string()),
            }
        } else {
            SourceResult::NotApplicable
        };
        report.push(("data", data));

        let passive = match self
            .section
            .use_passive
            .then(|| self.passive_filters(kind, &key, &hash))
        {
            Some(Ok(filters)) => match self.run_list(&self.passive, "passive", filters).await {
                Ok(list) => {
                    for r in &list {
                        Self::passive_record(&mut c, kind, &obs, &name, r);
                    }
                    SourceResult::Ok(records(list.len()))
                }
                Err(e) => SourceResult::Failed(e.to_string()),
            },
            _ => SourceResult::NotApplicable,
        };
        report.push(("passive", passive));

        let route = self.section.scans_route.as_str();
        let scans = match self
            .section
            .use_scans
            .then(|| self.scans_filters(kind, &key, number, &hash))
        {
            Some(Ok(filters)) => match self.run_list(&self.scans, route, filters).await {
                Ok(list) => {
                    for r in &list {
                        Self::scans_record(&mut c, kind, &obs, &name, r);
                    }
                    SourceResult::Ok(records(list.len()))
                }
                Err(e) => SourceResult::Failed(e.to_string()),
            },
            _ => SourceResult::NotApplicable,
        };
        report.push(("scans", scans));

        let applicable: Vec<&(&str, SourceResult)> = report
            .iter()
            .filter(|(_, r)| !matches!(r, SourceResult::NotApplicable))
            .collect();
        let summary = applicable
            .iter()
            .map(|(source, r)| match r {
                SourceResult::Ok(s) => format!("{source} ok ({s})"),
                SourceResult::Failed(e) => format!("{source} failed ({e})"),
                SourceResult::NotApplicable => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if applicable.is_empty() {
            return Ok(Outcome::Done(format!(
                "IVRE: no source applies to {stix_type} with the current settings"
            )));
        }
        if applicable
            .iter()
            .all(|(_, r)| matches!(r, SourceResult::Failed(_)))
        {
            return Err(ConnectorError::Rejected(format!("IVRE: {summary}")));
        }
        let added = c.added();
        if added == 0 {
            return Ok(Outcome::Done(format!("IVRE: {summary}; nothing found")));
        }
        let mut objects = request
            .stix_objects
            .iter()
            .filter(|o| o.get("id") != entity.get("id"))
            .cloned()
            .collect::<Vec<_>>();
        objects.extend(c.into_objects());
        objects.push(crate::stix::to_object(&author));
        Ok(Outcome::Bundle {
            objects,
            message: Box::new(move |n| {
                format!("IVRE: {summary}; sent {n} stix bundle(s) for worker import")
            }),
        })
    }
}

#[cfg(test)]
mod tests;
