//! The ivre connector's unit tests: its mapping over the fixtures, its config and its wording.
use crate::fixtures::fixture;
use serde_json::json;

use super::client::{Endpoint, format_time, parse_records, parse_time, pct_encode};
use super::collect::is_tor_name;
use super::*;

#[test]
fn json_framing_ndjson_and_the_empty_page_parse() {
    assert_eq!(
        parse_records(&fixture("ivre", "scans_empty_result.json"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(fixture("ivre", "scans_empty_result.json"), "[\n\n]\n");
    let json = parse_records(&fixture("ivre", "passive_host_198.51.100.10.json")).unwrap();
    let ndjson = parse_records(&fixture("ivre", "passive_host_198.51.100.10.ndjson")).unwrap();
    assert!(!json.is_empty());
    assert_eq!(json, ndjson);
    assert!(parse_records("<html>oops</html>").is_err());
}

#[test]
fn dates_are_epochs_or_strings_to_whole_seconds() {
    let ints = parse_records(&fixture("ivre", "passive_host_198.51.100.10.json")).unwrap();
    let strings = parse_records(&fixture(
        "ivre",
        "passive_host_198.51.100.10_datesasstrings.json",
    ))
    .unwrap();
    for (a, b) in ints.iter().zip(&strings) {
        assert_eq!(parse_time(&a["firstseen"]), parse_time(&b["firstseen"]));
        assert!(parse_time(&a["lastseen"]).is_some());
    }
    let t = parse_time(&json!(1748754000.75)).unwrap();
    assert_eq!(format_time(t), "2025-06-01T05:00:00Z");
    assert_eq!(
        format_time(parse_time(&json!("2025-06-01 05:00:00.123456")).unwrap()),
        "2025-06-01T05:00:00Z"
    );
    assert_eq!(parse_time(&json!(null)), None);
}

#[test]
fn urls_take_headers_from_the_fragment_and_basic_auth_from_userinfo() {
    let e = Endpoint::parse(
        "https://ivre.example.com/cgi/#Referer=https://ivre.example.com/&X-API-Key=ivre_k",
        None,
        None,
    )
    .unwrap();
    assert_eq!(format!("{e:?}"), "https://ivre.example.com/cgi");
    assert_eq!(e.referer(), Some("https://ivre.example.com/"));
    let e = Endpoint::parse("http://user:p%40ss@127.0.0.1:18080/cgi", None, None).unwrap();
    assert_eq!(
        format!("{e:?}"),
        "http://127.0.0.1:18080/cgi",
        "credentials never stay in the URL"
    );
    assert_eq!(e.referer(), Some("http://127.0.0.1:18080/"));
    let e = Endpoint::parse(
        "https://h/cgi#Referer=https://x/",
        Some("http://proxy.local/ivre/"),
        None,
    )
    .unwrap();
    assert_eq!(
        e.referer(),
        Some("http://proxy.local/ivre/"),
        "an explicit referer wins"
    );
    assert!(
        Endpoint::parse("mongodb:///ivre", None, None)
            .unwrap_err()
            .contains("web API")
    );
    assert!(Endpoint::parse("maxmind:///usr/share/ivre/geoip", None, None).is_err());
}

#[test]
fn filters_are_compact_json_percent_encoded() {
    let f = json!({"f": "dns", "a": ["example.com"], "k": {"reverse": true}});
    assert_eq!(
        f.to_string(),
        r#"{"f":"dns","a":["example.com"],"k":{"reverse":true}}"#
    );
    assert_eq!(pct_encode("skip:0 limit:200"), "skip%3A0%20limit%3A200");
}

#[test]
fn certificate_hashes_are_normalised_sha256_first() {
    let e = json!({"hashes": {"MD5": "AA", "SHA-256": "BB", "SHA-1": "CC"}});
    assert_eq!(cert_hash(&e, None), Some(("sha256", "bb".to_string())));
    let e = json!({"hashes": {"sha_1": "CC"}});
    assert_eq!(cert_hash(&e, None), Some(("sha1", "cc".to_string())));
    let hex32 = "689eab3cf18c624d011562b03033ce07";
    assert_eq!(
        cert_hash(&json!({}), Some(hex32)),
        Some(("md5", hex32.to_string()))
    );
    assert_eq!(cert_hash(&json!({}), Some("not-a-hash")), None);
}

#[test]
fn tor_names_follow_the_reference_pattern() {
    assert!(is_tor_name("commonName=www.xmnpc5dt4ocq.com"));
    assert!(is_tor_name("commonName=www.q3ffk2bvtxe7ja.net"));
    assert!(!is_tor_name("commonName=www.example.com"), "too short");
    assert!(!is_tor_name("commonName=www.xmnpc5dt4ocq.org"));
    assert!(
        !is_tor_name("commonName=www.xmnpc5dt4ocq1.com"),
        "1 is not base32"
    );
    assert!(!is_tor_name(
        "commonName=www.xmnpc5dt4ocq.com/organizationName=X"
    ));
}

#[test]
fn the_section_needs_a_usable_web_api_url() {
    use crate::connectors::ConnectorConfig;
    let validate = |s: &IvreConfig| {
        let mut checks = crate::config::Checks::new(&SPEC);
        let _ = s.connector.resolve(&SPEC, &mut checks);
        s.check(&mut checks);
        checks.into_errors()
    };
    let s = IvreConfig {
        enabled: true,
        api_base_url: Some("mongodb:///ivre".into()),
        connector: crate::config::ConnectorBlock {
            id: Some(uuid::Uuid::nil()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(
        validate(&s)
            .join(" ")
            .contains("no usable IVRE web API URL")
    );
    let s = IvreConfig {
        db_url_passive: Some("http://ivre/cgi".into()),
        ..s
    };
    assert!(validate(&s).is_empty());
}

#[test]
fn maxmind_urls_serve_the_data_purpose_only() {
    let s = IvreConfig {
        api_base_url: Some("maxmind:///usr/share/ivre/geoip".into()),
        db_url_scans: Some("https://ivre.example.com/cgi".into()),
        ..Default::default()
    };
    let p = s.purposes();
    assert!(
        matches!(&p.data, Ok(DataUrl::MaxMind(dir)) if dir.to_str() == Some("/usr/share/ivre/geoip"))
    );
    assert!(p.passive.unwrap_err().contains("data purpose only"));
    assert!(p.scans.is_ok());
    let s = IvreConfig {
        db_url_data: Some("maxmind://geoip".into()),
        ..s
    };
    assert!(
        s.purposes()
            .data
            .unwrap_err()
            .contains("absolute directory")
    );
    // With another purpose usable, a bad maxmind:// URL still fails the check.
    use crate::connectors::ConnectorConfig;
    let mut checks = crate::config::Checks::new(&SPEC);
    s.check(&mut checks);
    let errors = checks.into_errors().join(" ");
    assert!(
        errors.contains("ivre.db_url_data") && errors.contains("absolute directory"),
        "{errors}"
    );
}

#[test]
fn odd_fragments_do_not_panic() {
    let e = Endpoint::parse("http://h/cgi#Referer=%é%&X-Odd=%zz", None, None).unwrap();
    // Undecodable escapes stay as written, byte for byte.
    assert_eq!(e.referer(), Some("%é%"));
}

#[test]
fn epoch_times_at_the_end_of_time_do_not_panic() {
    // The last second chrono can represent, as an IVRE epoch: +1 s would overflow.
    let end = parse_time(&json!(8_210_266_876_799i64)).expect("a representable time");
    assert_eq!(parse_time(&json!(1e300)), None, "beyond it: no time");
    let entity = json!({"id": "ipv4-addr--a", "type": "ipv4-addr", "value": "1.2.3.4"});
    let mut c = super::collect::Collector::new("identity--x", "t", &entity, "ipv4-addr--a");
    let d = c.add_domain("example.com");
    c.link("resolves-to", &d, "ipv4-addr--a", Some(end), None);
    c.link("resolves-to", &d, "ipv4-addr--a", Some(end), Some(end));
    assert!(c.added() > 0);
}

/// Certificates known to OpenCTI in each way the rule allows: the IVRE certificate is the
/// enriched entity when it shares a hash with the entity's `hashes`, or when the entity's
/// observable value is one of its hashes (any algorithm, any case).
mod certificate_identity {
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
}
