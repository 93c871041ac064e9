//! Certificates known to OpenCTI in each way the rule allows: the IVRE certificate is the
//! enriched entity when it shares a hash with the entity's `hashes`, or when the entity's
//! observable value is one of its hashes (any algorithm, any case).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::collect::Collector;
use super::super::mapping::{EntityKind, passive_record, scans_record};
use crate::stix::ids;

/// Hex digests of `seed` truncated to each algorithm's length: distinct per seed, shaped
/// like IVRE's `md5`/`sha1`/`sha256` (the rule never recomputes them).
fn digests(seed: &str) -> (String, String, String) {
    let hex: String = Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sha1: String = Sha256::digest(hex.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (hex[..32].to_string(), sha1[..40].to_string(), hex)
}

/// An IVRE certificate dict (`get_cert_info`'s shape) for `seed`.
fn ivre_cert(seed: &str) -> Value {
    let (md5, sha1, sha256) = digests(seed);
    json!({
        "md5": md5, "sha1": sha1, "sha256": sha256,
        "subject_text": format!("commonName={seed}.example.com"),
        "issuer_text": "countryName=US/organizationName=Example CA/commonName=Example CA 1",
        "self_signed": false,
        "not_before": 1748736000, "not_after": 1756598399,
        "pubkey": {"type": "rsa", "exponent": 65537, "modulus": "12345"},
    })
}

/// The entity OpenCTI would send: id from its hashes (or a fixed one without), as given.
fn entity(hashes: Option<Value>) -> (String, Value) {
    let id = match &hashes {
        Some(h) => ids::observable_id(
            "x509-certificate",
            json!({"hashes": h}).as_object().unwrap(),
        ),
        None => "x509-certificate--5a2a0b1e-3c1f-5d2e-9a8b-0c1d2e3f4a5b".to_string(),
    };
    let mut e = json!({"id": id, "type": "x509-certificate", "spec_version": "2.1"});
    if let Some(h) = hashes {
        e["hashes"] = h;
    }
    (id, e)
}

/// A scans host record (`/scans?f=cert`) whose port 443 carries `cert`.
fn scans_host(cert: &Value) -> Value {
    json!({
        "addr": "192.0.2.44", "starttime": 1751364000, "endtime": 1751364125,
        "ports": [{"port": 443, "scripts": [{"id": "ssl-cert", "ssl-cert": [cert]}]}],
    })
}

/// Enriches `entity` (known by `value`) with one scans record and one passive record
/// carrying `cert`; returns the bundle's objects.
fn enrich(id: &str, entity: &Value, value: Option<&str>, cert: &Value) -> Vec<Value> {
    let mut c = Collector::new("identity--a", "t", entity, id).known_by(value);
    scans_record(&mut c, EntityKind::Cert, id, "", &scans_host(cert));
    let passive = json!({"addr": "192.0.2.45", "recontype": "SSL_SERVER", "source": "cert",
                         "firstseen": 1751364000, "lastseen": 1751367600, "infos": cert});
    passive_record(&mut c, EntityKind::Cert, id, "", &passive);
    c.into_objects()
}

fn certificates(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|o| o["type"] == "x509-certificate")
        .collect()
}

/// The certificate was recognised: it is the one certificate of the bundle, under the
/// entity's id, with IVRE's properties, and both IPs are related to it.
fn assert_written_onto_the_entity(objects: &[Value], id: &str, cert: &Value) {
    let certs = certificates(objects);
    assert_eq!(certs.len(), 1, "no second certificate: {certs:#?}");
    let written = certs[0];
    assert_eq!(written["id"], id, "the entity keeps its id");
    assert_eq!(written["subject"], cert["subject_text"]);
    assert_eq!(
        written["issuer"],
        "countryName=US, organizationName=Example CA, commonName=Example CA 1"
    );
    assert_eq!(written["validity_not_before"], "2025-06-01T00:00:00Z");
    assert_eq!(written["subject_public_key_exponent"], 65537);
    for (name, key) in [("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256")] {
        let have = written["hashes"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.to_lowercase().replace(['-', '_'], "") == key)
            .map(|(_, v)| v.as_str().unwrap().to_lowercase());
        assert_eq!(have.as_deref(), cert[key].as_str(), "{name} known or added");
    }
    let related: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "relationship" && o["relationship_type"] == "related-to")
        .collect();
    assert_eq!(related.len(), 2, "scans and passive: {related:#?}");
    assert!(
        related.iter().all(|r| r["target_ref"] == id),
        "{related:#?}"
    );
}

#[test]
fn each_hash_algorithm_alone_identifies_the_certificate() {
    let cert = ivre_cert("alone");
    for (name, key) in [("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256")] {
        // OpenCTI upper-cases hash values; IVRE gives lower-case hex.
        let hash = cert[key].as_str().unwrap().to_uppercase();
        let (id, e) = entity(Some(json!({ name: hash })));
        let objects = enrich(&id, &e, None, &cert);
        assert_written_onto_the_entity(&objects, &id, &cert);
        let written = certificates(&objects)[0];
        assert_eq!(
            written["hashes"][name], hash,
            "its own {name} stays as it was"
        );
    }
}

#[test]
fn hash_names_in_other_spellings_are_normalised() {
    let cert = ivre_cert("spelling");
    for name in ["sha256", "SHA256", "sha_256", "Sha-256"] {
        let (id, e) = entity(Some(json!({ name: cert["sha256"] })));
        assert_written_onto_the_entity(&enrich(&id, &e, None, &cert), &id, &cert);
    }
}

#[test]
fn the_observable_value_alone_identifies_the_certificate() {
    let cert = ivre_cert("by-value");
    for key in ["md5", "sha1", "sha256"] {
        let value = cert[key].as_str().unwrap().to_uppercase();
        // No `hashes` at all.
        let (id, e) = entity(None);
        assert_written_onto_the_entity(&enrich(&id, &e, Some(&value), &cert), &id, &cert);
        // `hashes` only in an algorithm IVRE does not carry.
        let (id, e) = entity(Some(json!({"SHA-512": "ab".repeat(64)})));
        let objects = enrich(&id, &e, Some(&format!(" {value} ")), &cert);
        assert_written_onto_the_entity(&objects, &id, &cert);
        assert_eq!(
            certificates(&objects)[0]["hashes"]["SHA-512"],
            "ab".repeat(64)
        );
    }
}

#[test]
fn several_hashes_identify_the_certificate_once() {
    let cert = ivre_cert("several");
    let hashes = json!({"MD5": cert["md5"], "SHA-1": cert["sha1"], "SHA-256": cert["sha256"]});
    let (id, e) = entity(Some(hashes));
    let value = cert["sha256"].as_str();
    assert_written_onto_the_entity(&enrich(&id, &e, value, &cert), &id, &cert);
}

#[test]
fn a_certificate_sharing_nothing_is_another_certificate() {
    let mine = ivre_cert("mine");
    let other = ivre_cert("other");
    let hashes = json!({"MD5": mine["md5"], "SHA-256": mine["sha256"]});
    let (id, e) = entity(Some(hashes));
    let objects = enrich(&id, &e, mine["sha256"].as_str(), &other);
    let certs = certificates(&objects);
    assert_eq!(certs.len(), 2, "the entity and the other certificate");
    assert_eq!(certs[0], &e, "the entity is left as it was");
    let second = certs[1];
    assert_ne!(second["id"], id);
    assert_eq!(second["hashes"]["SHA-256"], other["sha256"]);
    let targets: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "relationship")
        .map(|r| &r["target_ref"])
        .collect();
    // Scans: the IP related-to the other certificate; passive: the IP related-to the
    // entity (the query found it), without writing the other's properties onto it.
    assert_eq!(targets, vec![&second["id"], &json!(id)], "{objects:#?}");
}

#[test]
fn another_type_of_entity_is_never_the_certificate() {
    let cert = ivre_cert("ip");
    let entity = json!({"id": "ipv4-addr--1", "type": "ipv4-addr", "value": "192.0.2.44"});
    let mut c = Collector::new("identity--a", "t", &entity, "ipv4-addr--1")
        .known_by(cert["sha256"].as_str());
    scans_record(
        &mut c,
        EntityKind::Ip,
        "ipv4-addr--1",
        "",
        &scans_host(&cert),
    );
    let objects = c.into_objects();
    assert_eq!(certificates(&objects).len(), 1);
    assert_ne!(certificates(&objects)[0]["id"], "ipv4-addr--1");
}
