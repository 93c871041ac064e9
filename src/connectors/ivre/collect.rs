//! Builds the enrichment's bundle (spec §1.5 and §4.4): observables, locations and
//! relationships, deduplicated by id, every relationship created by the IVRE author.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::client::format_time;
use crate::stix::{
    AutonomousSystem, Location, Observable, Relationship, ids, one_second_after, to_object,
};

/// Objects collected for one enrichment.
pub struct Collector {
    author_id: String,
    now: String,
    order: Vec<String>,
    objects: HashMap<String, Value>,
    /// The enriched entity (re-emitted when labelled or referenced).
    entity_id: String,
    /// Labels added to objects (a label on the entity alone is a finding too).
    labels: usize,
    /// Properties written onto the enriched certificate.
    filled: usize,
    /// The enriched entity's observable value, lower-cased (a certificate's is a hash).
    entity_value: Option<String>,
}

/// A certificate's hashes by normalised algorithm (`sha256`), lower-cased values.
fn hash_values(hashes: Option<&Value>) -> Vec<(String, String)> {
    hashes
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            v.as_str()
                .map(|v| (k.to_lowercase().replace(['-', '_'], ""), v.to_lowercase()))
        })
        .collect()
}

/// Lower-case, trailing dot stripped (IVRE's and the reference's normalisation).
pub fn norm_domain(name: &str) -> String {
    name.trim().to_lowercase().trim_end_matches('.').to_string()
}

impl Collector {
    /// A collector for the enrichment of `entity`, relationships created by `author_id` at
    /// `now`.
    pub fn new(author_id: &str, now: &str, entity: &Value, entity_id: &str) -> Self {
        let mut c = Collector {
            author_id: author_id.to_string(),
            now: now.to_string(),
            order: Vec::new(),
            objects: HashMap::new(),
            entity_id: entity_id.to_string(),
            labels: 0,
            filled: 0,
            entity_value: None,
        };
        c.put(entity.clone());
        c
    }

    /// The same collector, knowing the entity's observable value (OpenCTI's
    /// `observable_value`: for a certificate, the hash it is known by).
    pub fn known_by(mut self, observable_value: Option<&str>) -> Self {
        self.entity_value = observable_value
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty());
        self
    }

    /// The objects, in first-seen order.
    pub fn into_objects(self) -> Vec<Value> {
        let mut objects = self.objects;
        self.order
            .into_iter()
            .filter_map(|id| objects.remove(&id))
            .collect()
    }

    /// New objects beyond the entity, plus labels and certificate properties added.
    pub fn added(&self) -> usize {
        self.order.len().saturating_sub(1) + self.labels + self.filled
    }

    /// Whether `hashes` (IVRE's certificate, normalised algorithm and lower-case value)
    /// describe the enriched certificate itself: the entity is a certificate that shares one
    /// of them in its `hashes`, or whose observable value is one of them (whatever the
    /// algorithm, case-insensitive).
    pub fn is_the_entity(&self, hashes: &[(String, String)]) -> bool {
        let Some(entity) = self.objects.get(&self.entity_id) else {
            return false;
        };
        if entity.get("type").and_then(Value::as_str) != Some("x509-certificate") {
            return false;
        }
        let by_hash = hash_values(entity.get("hashes"))
            .iter()
            .any(|h| hashes.contains(h));
        let by_value = self
            .entity_value
            .as_deref()
            .is_some_and(|value| hashes.iter().any(|(_, h)| h == value));
        by_hash || by_value
    }

    /// Writes IVRE's properties of the enriched certificate onto it: the hashes it lacks,
    /// then validity, issuer, subject and key, keeping its id.
    fn fill_entity(&mut self, props: &Map<String, Value>) {
        let Some(Value::Object(entity)) = self.objects.get_mut(&self.entity_id) else {
            return;
        };
        let before = entity.clone();
        let known: Vec<String> = hash_values(entity.get("hashes"))
            .into_iter()
            .map(|(algo, _)| algo)
            .collect();
        let hashes = entity
            .entry("hashes")
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Value::Object(mine), Some(Value::Object(theirs))) = (hashes, props.get("hashes")) {
            for (name, value) in theirs {
                if !known.contains(&name.to_lowercase().replace(['-', '_'], "")) {
                    mine.insert(name.clone(), value.clone());
                }
            }
        }
        for (key, value) in props {
            if !matches!(key.as_str(), "id" | "type" | "spec_version" | "hashes") {
                entity.insert(key.clone(), value.clone());
            }
        }
        if *entity != before {
            self.filled += 1;
        }
    }

    fn put(&mut self, object: Value) -> String {
        let id = object["id"].as_str().unwrap_or_default().to_string();
        if !self.objects.contains_key(&id) {
            self.order.push(id.clone());
            self.objects.insert(id.clone(), object);
        }
        id
    }

    fn observable(&mut self, stix_type: &str, value: &str) -> String {
        let id = ids::value_observable_id(stix_type, value);
        if id == self.entity_id {
            return id;
        }
        self.put(to_object(&Observable::new(stix_type, value)))
    }

    pub fn add_addr(&mut self, addr: &str) -> String {
        self.observable(
            if addr.contains(':') {
                "ipv6-addr"
            } else {
                "ipv4-addr"
            },
            addr,
        )
    }

    pub fn add_domain(&mut self, name: &str) -> String {
        self.observable("domain-name", &norm_domain(name))
    }

    pub fn add_mac(&mut self, mac: &str) -> String {
        self.observable("mac-addr", &mac.to_lowercase())
    }

    pub fn add_asn(&mut self, number: u64, name: Option<&str>) -> String {
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| format!("AS{number}"));
        let asys = AutonomousSystem::new(number, Some(name));
        if asys.id == self.entity_id {
            return asys.id;
        }
        self.put(to_object(&asys))
    }

    pub fn add_country(&mut self, name: &str, code: Option<&str>) -> String {
        let mut loc = Location::new(name, "Country", &self.now);
        loc.country = code.map(str::to_string);
        loc.x_opencti_aliases = code.map(|c| vec![c.to_string()]);
        loc.created_by_ref = Some(self.author_id.clone());
        self.put(to_object(&loc))
    }

    /// City located-at Country; returns the City.
    pub fn add_city(&mut self, city: &str, country: &str, code: Option<&str>) -> String {
        let country_id = self.add_country(country, code);
        let mut loc = Location::new(city, "City", &self.now);
        loc.country = code.map(str::to_string);
        loc.created_by_ref = Some(self.author_id.clone());
        let city_id = self.put(to_object(&loc));
        self.link("located-at", &city_id, &country_id, None, None);
        city_id
    }

    /// A relationship SRO, with times when known (stop = start + 1 s when equal).
    pub fn link(
        &mut self,
        relationship_type: &str,
        from: &str,
        to: &str,
        first: Option<NaiveDateTime>,
        last: Option<NaiveDateTime>,
    ) -> String {
        let times = match (first, last) {
            (Some(f), Some(l)) => Some((f, if l <= f { one_second_after(f) } else { l })),
            (Some(t), None) | (None, Some(t)) => Some((t, one_second_after(t))),
            (None, None) => None,
        };
        let mut rel = Relationship::new(relationship_type, from, to, &self.now);
        rel.created_by_ref = Some(self.author_id.clone());
        if let Some((f, l)) = times {
            let (start, stop) = (format_time(f), format_time(l));
            rel.id = ids::relationship_id(relationship_type, from, to, Some(&start), Some(&stop));
            rel.start_time = Some(start);
            rel.stop_time = Some(stop);
        }
        self.put(to_object(&rel))
    }

    /// `a.b.example.com` under `example.com`: a.b related-to b, b related-to the parent.
    /// Returns the id of `domain`.
    pub fn link_domain_parent(&mut self, domain: &str, parent: &str, parent_id: &str) -> String {
        let domain = norm_domain(domain);
        let first_id = self.add_domain(&domain);
        let mut current = domain.clone();
        let mut current_id = first_id.clone();
        while let Some((_, up)) = current.split_once('.') {
            if up == parent {
                self.link("related-to", &current_id, parent_id, None, None);
                break;
            }
            if !up.ends_with(&format!(".{parent}")) {
                break;
            }
            let up_id = self.add_domain(up);
            self.link("related-to", &current_id, &up_id, None, None);
            current = up.to_string();
            current_id = up_id;
        }
        first_id
    }

    /// Adds a label to an observable (`x_opencti_labels`).
    pub fn label(&mut self, id: &str, label: &str) {
        if let Some(Value::Object(o)) = self.objects.get_mut(id) {
            let labels = o.entry("x_opencti_labels").or_insert_with(|| json!([]));
            if let Value::Array(list) = labels
                && !list.iter().any(|l| l.as_str() == Some(label))
            {
                list.push(json!(label));
                self.labels += 1;
            }
        }
    }

    /// The certificate of an IVRE cert dict, linked from `obs_id` (related-to, with times);
    /// TOR-looking certificates label both ends. Returns the certificate id.
    pub fn add_and_link_cert(
        &mut self,
        cert: &Value,
        obs_id: &str,
        first: Option<NaiveDateTime>,
        last: Option<NaiveDateTime>,
    ) -> Option<String> {
        let mut props = Map::new();
        props.insert("type".into(), json!("x509-certificate"));
        props.insert("spec_version".into(), json!("2.1"));
        let mut hashes = Map::new();
        for (key, name) in [("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256")] {
            if let Some(h) = cert.get(key).and_then(Value::as_str) {
                hashes.insert(name.into(), json!(h.to_lowercase()));
            }
        }
        if hashes.is_empty() {
            return None;
        }
        let same_as_entity = self.is_the_entity(&hash_values(Some(&Value::Object(hashes.clone()))));
        props.insert("hashes".into(), Value::Object(hashes));
        let self_signed = cert
            .get("self_signed")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        props.insert("is_self_signed".into(), json!(self_signed));
        for (from, to) in [
            ("not_before", "validity_not_before"),
            ("not_after", "validity_not_after"),
        ] {
            if let Some(t) = cert.get(from).and_then(super::client::parse_time) {
                props.insert(to.into(), json!(format_time(t)));
            }
        }
        let subject = cert.get("subject_text").and_then(Value::as_str);
        let issuer = cert.get("issuer_text").and_then(Value::as_str);
        if let Some(i) = issuer {
            props.insert("issuer".into(), json!(i.replace('/', ", ")));
        }
        if let Some(s) = subject {
            props.insert("subject".into(), json!(s.replace('/', ", ")));
        }
        if let Some(pk) = cert.get("pubkey") {
            if let Some(t) = pk.get("type").and_then(Value::as_str) {
                props.insert("subject_public_key_algorithm".into(), json!(t));
            }
            if let Some(e) = pk.get("exponent").and_then(Value::as_u64) {
                props.insert("subject_public_key_exponent".into(), json!(e));
            }
            if let Some(m) = pk.get("modulus") {
                let m = m
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.to_string());
                props.insert("subject_public_key_modulus".into(), json!(m));
            }
        }
        let cert_id = if same_as_entity {
            // The enriched certificate: its properties go onto it, never into a second object.
            self.fill_entity(&props);
            self.entity_id.clone()
        } else {
            let id = ids::observable_id("x509-certificate", &props);
            props.insert("id".into(), json!(id));
            if id == self.entity_id {
                id
            } else {
                self.put(Value::Object(props))
            }
        };
        self.link("related-to", obs_id, &cert_id, first, last);
        if !self_signed && subject.is_some_and(is_tor_name) && issuer.is_some_and(is_tor_name) {
            self.label(obs_id, "Possible TOR Node");
            self.label(&cert_id, "Possible TOR Certificate");
        }
        Some(cert_id)
    }
}

/// `^commonName=www\.[a-z2-7]{8,20}\.(net|com)$`
pub fn is_tor_name(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("commonName=www.") else {
        return false;
    };
    let Some((middle, tld)) = rest.rsplit_once('.') else {
        return false;
    };
    (tld == "net" || tld == "com")
        && (8..=20).contains(&middle.len())
        && middle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}
