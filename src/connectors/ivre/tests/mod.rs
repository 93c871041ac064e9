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

mod certificate_identity;
