//! IVRE records → STIX through the [`Collector`]: MaxMind data, passive records and scan
//! results for each kind of entity, as the reference maps them (spec §4). Pure: no I/O.

use chrono::NaiveDateTime;
use serde_json::Value;

use super::client::parse_time;
use super::collect::{Collector, norm_domain};

/// The kinds of entity IVRE can enrich.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    As,
    Domain,
    Ip,
    Mac,
    Cert,
}

impl EntityKind {
    /// The kind of a STIX type, `None` when IVRE cannot enrich it.
    pub fn of(stix_type: &str) -> Option<EntityKind> {
        Some(match stix_type {
            "autonomous-system" => EntityKind::As,
            "domain-name" => EntityKind::Domain,
            "ipv4-addr" | "ipv6-addr" => EntityKind::Ip,
            "mac-addr" => EntityKind::Mac,
            "x509-certificate" => EntityKind::Cert,
            _ => return None,
        })
    }
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
pub fn times(
    record: &Value,
    first: &str,
    last: &str,
) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
    let f = record.get(first).and_then(parse_time);
    let l = record.get(last).and_then(parse_time);
    (f.or(l), l.or(f))
}

/// IVRE's certificate hashes (`md5`, `sha1`, `sha256`), normalised as the collector compares.
fn cert_hashes(cert: &Value) -> Vec<(String, String)> {
    ["md5", "sha1", "sha256"]
        .iter()
        .filter_map(|k| {
            cert.get(*k)
                .and_then(Value::as_str)
                .map(|v| (k.to_string(), v.to_lowercase()))
        })
        .collect()
}

/// MaxMind's `/ipdata` answer for the enriched IP `obs`: its city or country, its registered
/// country when different, its AS.
pub fn data_record(c: &mut Collector, obs: &str, info: &Value) {
    let s = |k: &str| info.get(k).and_then(Value::as_str);
    if let Some(country) = s("country_name") {
        let target = match s("city") {
            Some(city) => c.add_city(city, country, s("country_code")),
            None => c.add_country(country, s("country_code")),
        };
        c.link("located-at", obs, &target, None, None);
    }
    if let Some(registered) = s("registered_country_name").filter(|r| Some(*r) != s("country_name"))
    {
        let target = c.add_country(registered, s("registered_country_code"));
        c.link("located-at", obs, &target, None, None);
    }
    if let Some(asn) = info.get("as_num").and_then(Value::as_u64) {
        let target = c.add_asn(asn, s("as_name"));
        c.link("belongs-to", obs, &target, None, None);
    }
}

/// Resolves a name seen for the enriched domain: itself, a subdomain chain, or a domain.
pub fn resolve_name(c: &mut Collector, n: &str, name: &str, obs: &str) -> String {
    if n == name {
        obs.to_string()
    } else if n.ends_with(&format!(".{name}")) {
        c.link_domain_parent(n, name, obs)
    } else {
        c.add_domain(n)
    }
}

pub fn passive_record(c: &mut Collector, kind: EntityKind, obs: &str, name: &str, r: &Value) {
    let (first, last) = times(r, "firstseen", "lastseen");
    let field = |k: &str| r.get(k).and_then(Value::as_str);
    let recontype = field("recontype").unwrap_or_default();
    let Some(addr) = field("addr") else {
        if kind == EntityKind::Domain
            && recontype == "DNS_ANSWER"
            && let (Some(value), Some(target)) = (field("value"), field("targetval"))
        {
            let from = resolve_name(c, &norm_domain(value), name, obs);
            let to = resolve_name(c, &norm_domain(target), name, obs);
            c.link("resolves-to", &from, &to, first, last);
        }
        return;
    };
    let ip = c.add_addr(addr);
    match kind {
        EntityKind::As => {
            c.link("belongs-to", &ip, obs, None, None);
        }
        EntityKind::Cert => {
            // The record's certificate is the entity: its properties are written onto it.
            let infos = r
                .get("infos")
                .filter(|_| field("source") == Some("cert"))
                .filter(|cert| c.is_the_entity(&cert_hashes(cert)));
            match infos {
                Some(cert) => {
                    c.add_and_link_cert(cert, &ip, first, last);
                }
                None => {
                    c.link("related-to", &ip, obs, first, last);
                }
            }
            return;
        }
        EntityKind::Mac => {
            c.link("resolves-to", &ip, obs, first, last);
            return;
        }
        EntityKind::Domain => {
            let v = norm_domain(field("value").unwrap_or_default());
            if v == name || v.ends_with(&format!(".{name}")) {
                let from = resolve_name(c, &v, name, obs);
                c.link("resolves-to", &from, &ip, first, last);
            } else {
                tracing::warn!(connector = "ivre", domain = name, value = %v, "Unexpected passive record for the domain.");
            }
            return;
        }
        EntityKind::Ip => {}
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

pub fn scans_record(c: &mut Collector, kind: EntityKind, obs: &str, name: &str, r: &Value) {
    let (first, last) = times(r, "starttime", "endtime");
    let ip = if kind == EntityKind::Ip {
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
        let from = if kind == EntityKind::Domain {
            resolve_name(c, &n, name, obs)
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
