//! IVRE against a fake IVRE web API serving `shared/fixtures/ivre` (real IVRE output), compared
//! with the official connector's recorded calls (`expected_python_connector/`), modulo the
//! deviations of spec §4.5.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use opencti_connectors::config::ConnectorSettings;
use opencti_connectors::connectors::{ConnectorError, EnrichmentConnector, Hosted, Outcome};
use opencti_connectors::stix::ids;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fake IVRE: each (route, filter) answers its fixture on page 0; every other page and
/// filter answers IVRE's empty page.
pub async fn ivre_server(lists: &[(&str, Value, &str)], ipdata: &[(&str, &str)]) -> MockServer {
    let server = MockServer::start().await;
    for (route, filter, file) in lists {
        Mock::given(method("GET"))
            .and(path(format!("/cgi/{route}")))
            .and(query_param("f", filter.to_string()))
            .and(query_param("q", "skip:0 limit:200"))
            .and(header("referer", "http://127.0.0.1/"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(fixture("ivre", file), "application/json"),
            )
            .with_priority(1)
            .mount(&server)
            .await;
    }
    for (addr, file) in ipdata {
        Mock::given(path(format!("/cgi/ipdata/{addr}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(fixture("ivre", file), "application/json"),
            )
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ivre", "scans_empty_result.json"),
            "application/json",
        ))
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

pub fn ivre(server: &MockServer, extra: &[(&str, &str)]) -> (ConnectorSettings, Hosted) {
    let url = format!("{}/cgi#Referer=http://127.0.0.1/", server.uri());
    build_connector(
        "ivre",
        &[
            ("IVRE_DB_URL", url.as_str()),
            ("IVRE_CONNECTOR_NAME", "IVRE-Test"),
        ],
        extra,
    )
}

pub fn connector(hosted: Hosted) -> Arc<dyn EnrichmentConnector> {
    match hosted {
        Hosted::Enrichment(c) => c,
        Hosted::Import(_) => unreachable!("IVRE is an enrichment connector"),
    }
}

fn sco(stix_type: &str, value: &str) -> Value {
    json!({"id": ids::value_observable_id(stix_type, value), "type": stix_type, "spec_version": "2.1", "value": value})
}

/// `(type:key, relationship, type:key, start, stop)`.
pub type Rel = (String, String, String, Option<String>, Option<String>);

/// Every relationship, readable.
pub fn relationships(objects: &[Value]) -> Vec<Rel> {
    let by_id: HashMap<&str, &Value> = objects
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    let describe = |id: &str| {
        let o = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{id} referenced but not in the bundle"));
        let t = o["type"].as_str().unwrap();
        let key = o
            .get("value")
            .or(o.get("number"))
            .or(o.get("name"))
            .cloned()
            .or_else(|| o["hashes"].get("MD5").cloned())
            .unwrap();
        format!(
            "{t}:{}",
            key.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| key.to_string())
        )
    };
    objects
        .iter()
        .filter(|o| o["type"] == "relationship")
        .map(|r| {
            (
                describe(r["source_ref"].as_str().unwrap()),
                r["relationship_type"].as_str().unwrap().to_string(),
                describe(r["target_ref"].as_str().unwrap()),
                r["start_time"].as_str().map(str::to_string),
                r["stop_time"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn has(rels: &[Rel], from: &str, rel: &str, to: &str) -> bool {
    rels.iter()
        .any(|(f, r, t, _, _)| f == from && r == rel && t == to)
}

async fn enrich(c: &Arc<dyn EnrichmentConnector>, entity: Value) -> (Vec<Value>, String) {
    match c.enrich(&request_for(entity)).await.unwrap() {
        Outcome::Bundle { objects, message } => (objects, message(1)),
        Outcome::Prepared { objects, message } => {
            (objects.iter().map(|o| o.to_value()).collect(), message(1))
        }
        Outcome::Done(m) => (vec![], m),
    }
}

const HOST: &str = "198.51.100.10";
const CERT_MD5: &str = "689eab3cf18c624d011562b03033ce07";

#[tokio::test]
async fn ipv4_gets_locations_as_domains_and_certificates() {
    let server = ivre_server(
        &[
            (
                "passive",
                json!({"f": "host", "a": [HOST]}),
                "passive_host_198.51.100.10.json",
            ),
            (
                "scans",
                json!({"f": "host", "a": [HOST]}),
                "scans_host_198.51.100.10.json",
            ),
        ],
        &[(HOST, "ipdata_198.51.100.10.json")],
    )
    .await;
    let c = connector(ivre(&server, &[]).1);
    let (objects, message) = enrich(&c, sco("ipv4-addr", HOST)).await;
    let ip = format!("ipv4-addr:{HOST}");
    let rels = relationships(&objects);
    assert!(has(
        &rels,
        "location:Paris",
        "located-at",
        "location:France"
    ));
    assert!(has(&rels, &ip, "located-at", "location:Paris"));
    assert!(has(&rels, &ip, "belongs-to", "autonomous-system:64496"));
    for d in [
        "domain-name:www.example.com",
        "domain-name:example.com",
        "domain-name:web10.example.net",
    ] {
        assert!(has(&rels, d, "resolves-to", &ip), "{d} resolves-to the IP");
    }
    let cert = format!("x509-certificate:{CERT_MD5}");
    let cert_links: Vec<_> = rels
        .iter()
        .filter(|(f, r, t, _, _)| f == &ip && r == "related-to" && t == &cert)
        .collect();
    assert_eq!(
        cert_links.len(),
        2,
        "passive and scans, with different times: {cert_links:?}"
    );
    assert!(
        rels.iter().all(|(_, r, _, s, e)| r == "located-at"
            || r == "belongs-to"
            || (s.is_some() && s < e)),
        "times with stop > start"
    );
    let france = objects.iter().find(|o| o["name"] == "France").unwrap();
    assert_eq!(france["country"], "FR");
    assert_eq!(
        france["id"],
        ids::location_id("France", "Country", None, None)
    );
    let x509 = objects
        .iter()
        .find(|o| o["type"] == "x509-certificate")
        .unwrap();
    assert_eq!(
        x509["hashes"]["SHA-256"],
        "9b04dcc7739983075f59d497edfd7b908a6c3c1c371ad477ed523a5c735c6e25"
    );
    let scans: Value =
        serde_json::from_str(&fixture("ivre", "scans_host_198.51.100.10.json")).unwrap();
    let issuer_text = scans[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["scripts"].as_array().cloned().unwrap_or_default())
        .find(|s| s["id"] == "ssl-cert")
        .unwrap()["ssl-cert"][0]["issuer_text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(x509["issuer"], issuer_text.replace('/', ", "));
    assert_eq!(x509["is_self_signed"], false);
    let author = objects.iter().find(|o| o["type"] == "identity").unwrap();
    assert_eq!(author["name"], "IVRE-Test");
    assert_eq!(
        author["description"],
        "IVRE instance IVRE-Test\nSee <https://ivre.rocks/>"
    );
    assert!(
        objects
            .iter()
            .filter(|o| o["type"] == "relationship")
            .all(|r| r["created_by_ref"] == author["id"])
    );
    assert!(message.starts_with("IVRE: data ok ("), "{message}");
    assert!(
        message.contains("passive ok (") && message.contains("scans ok (1 record)"),
        "{message}"
    );
}

#[tokio::test]
async fn tor_certificates_and_a_second_registered_country() {
    let addr = "203.0.113.50";
    let server = ivre_server(
        &[(
            "scans",
            json!({"f": "host", "a": [addr]}),
            "scans_host_203.0.113.50_torcert.json",
        )],
        &[(addr, "ipdata_203.0.113.50.json")],
    )
    .await;
    let c = connector(ivre(&server, &[]).1);
    let (objects, _) = enrich(&c, sco("ipv4-addr", addr)).await;
    let rels = relationships(&objects);
    let ip = format!("ipv4-addr:{addr}");
    assert!(has(&rels, &ip, "located-at", "location:Germany"));
    assert!(has(&rels, &ip, "located-at", "location:Netherlands"));
    assert!(has(&rels, &ip, "belongs-to", "autonomous-system:64497"));
    let entity = objects.iter().find(|o| o["value"] == addr).unwrap();
    assert_eq!(entity["x_opencti_labels"], json!(["Possible TOR Node"]));
    let cert = objects
        .iter()
        .find(|o| o["type"] == "x509-certificate")
        .unwrap();
    assert_eq!(
        cert["x_opencti_labels"],
        json!(["Possible TOR Certificate"])
    );
}

#[tokio::test]
async fn scanners_and_honeypot_hits_label_the_ip() {
    let server = ivre_server(
        &[
            (
                "passive",
                json!({"f": "host", "a": ["203.0.113.77"]}),
                "passive_host_203.0.113.77_scanner.json",
            ),
            (
                "passive",
                json!({"f": "host", "a": ["203.0.113.78"]}),
                "passive_host_203.0.113.78_honeypot.json",
            ),
        ],
        &[],
    )
    .await;
    let c = connector(ivre(&server, &[("IVRE_USE_DATA", "no")]).1);
    let (objects, _) = enrich(&c, sco("ipv4-addr", "203.0.113.77")).await;
    assert_eq!(
        objects[0]["x_opencti_labels"],
        json!(["Scanner Nmap-modified"])
    );
    let (objects, _) = enrich(&c, sco("ipv4-addr", "203.0.113.78")).await;
    assert_eq!(objects[0]["x_opencti_labels"], json!(["Scanner (unknown)"]));
}

#[tokio::test]
async fn domain_gets_ips_targets_reverse_cname_and_the_subdomain_chain() {
    let server = ivre_server(
        &[
            (
                "passive",
                json!({"f": "dns", "a": ["example.com"]}),
                "passive_dns_example.com.json",
            ),
            (
                "passive",
                json!({"f": "dns", "a": ["example.com"], "k": {"reverse": true}}),
                "passive_dns_example.com_reverse.json",
            ),
        ],
        &[],
    )
    .await;
    let c = connector(ivre(&server, &[]).1);
    let (objects, _) = enrich(&c, sco("domain-name", "example.com")).await;
    let rels = relationships(&objects);
    let d = "domain-name:example.com";
    assert!(has(&rels, d, "resolves-to", "ipv4-addr:198.51.100.10"));
    assert!(has(&rels, "domain-name:mail.example.com", "related-to", d));
    assert!(has(&rels, d, "resolves-to", "domain-name:mail.example.com"));
    assert!(has(&rels, d, "resolves-to", "domain-name:ns1.example.net"));
    assert!(has(
        &rels,
        "domain-name:alias.example.org",
        "resolves-to",
        d
    ));
}

#[tokio::test]
async fn mac_and_certificate_observables() {
    let server = ivre_server(
        &[
            ("passive", json!({"f": "mac", "a": ["00:00:5e:00:53:01"]}), "passive_mac_00-00-5e-00-53-01.json"),
            ("passive", json!({"f": "cert", "k": {"sha256": "9b04dcc7739983075f59d497edfd7b908a6c3c1c371ad477ed523a5c735c6e25"}}), "passive_cert_sha256_9b04dcc7.json"),
            ("scans", json!({"f": "cert", "k": {"sha256": "9b04dcc7739983075f59d497edfd7b908a6c3c1c371ad477ed523a5c735c6e25"}}), "scans_host_198.51.100.10.json"),
        ],
        &[],
    )
    .await;
    let c = connector(ivre(&server, &[]).1);
    let (objects, _) = enrich(&c, sco("mac-addr", "00:00:5E:00:53:01")).await;
    let rels = relationships(&objects);
    // The query is lower-cased (the mock only answers `00:00:5e:…`); the link targets the
    // enriched entity as it is.
    assert_eq!(
        rels,
        vec![(
            "ipv4-addr:192.0.2.10".to_string(),
            "resolves-to".to_string(),
            "mac-addr:00:00:5E:00:53:01".to_string(),
            Some("2025-06-01T13:00:00Z".to_string()),
            Some("2025-06-01T13:00:01Z".to_string()),
        )]
    );

    let cert_id = ids::observable_id(
        "x509-certificate",
        json!({"hashes": {"MD5": CERT_MD5}}).as_object().unwrap(),
    );
    let cert = json!({"id": cert_id, "type": "x509-certificate", "spec_version": "2.1",
                      "hashes": {"SHA-256": "9b04dcc7739983075f59d497edfd7b908a6c3c1c371ad477ed523a5c735c6e25", "MD5": CERT_MD5}});
    let (objects, message) = enrich(&c, cert).await;
    let rels = relationships(&objects);
    let c_desc = format!("x509-certificate:{CERT_MD5}");
    assert!(
        has(&rels, "ipv4-addr:198.51.100.10", "related-to", &c_desc),
        "{rels:?}"
    );
    assert!(has(
        &rels,
        "domain-name:web10.example.net",
        "resolves-to",
        "ipv4-addr:198.51.100.10"
    ));
    assert!(
        message.contains("passive ok (1 record)") && message.contains("scans ok (1 record)"),
        "{message}"
    );
}

#[tokio::test]
async fn ipv6_and_an_empty_ipdata() {
    let server = ivre_server(
        &[(
            "passive",
            json!({"f": "host", "a": ["2001:db8::10"]}),
            "passive_host_2001-db8--10.json",
        )],
        &[
            ("2001:db8::10", "ipdata_2001-db8--10.json"),
            ("1.1.1.1", "ipdata_1.1.1.1_null.json"),
        ],
    )
    .await;
    let c = connector(ivre(&server, &[]).1);
    let (objects, _) = enrich(&c, sco("ipv6-addr", "2001:db8::10")).await;
    let rels = relationships(&objects);
    assert!(
        rels.iter()
            .any(|(f, r, t, _, _)| f.starts_with("domain-name:")
                && r == "resolves-to"
                && t == "ipv6-addr:2001:db8::10"),
        "{rels:?}"
    );
    let (objects, message) = enrich(&c, sco("ipv4-addr", "1.1.1.1")).await;
    assert!(objects.is_empty());
    assert!(
        message.contains("data ok (no data)") && message.ends_with("nothing found"),
        "{message}"
    );
}

#[tokio::test]
async fn autonomous_systems_finish_without_error_and_use_the_view_when_asked() {
    let server = ivre_server(
        &[(
            "view",
            json!({"f": "asnum", "a": [64496]}),
            "view_asnum_64496.json",
        )],
        &[],
    )
    .await;
    let asys = json!({"id": ids::autonomous_system_id(64496), "type": "autonomous-system", "spec_version": "2.1", "number": 64496});
    let c = connector(ivre(&server, &[]).1);
    let (objects, message) = enrich(&c, asys.clone()).await;
    assert!(objects.is_empty());
    assert!(message.starts_with("IVRE: no source applies"), "{message}");
    let c = connector(
        ivre(
            &server,
            &[("IVRE_SCANS_ROUTE", "view"), ("IVRE_USE_SCANS_AS", "true")],
        )
        .1,
    );
    let (objects, message) = enrich(&c, asys).await;
    assert!(message.contains("scans ok (2 records)"), "{message}");
    assert!(objects.iter().any(|o| o["value"] == "198.51.100.10"));
}

#[tokio::test]
async fn a_failing_source_does_not_stop_the_others() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi/passive"))
        .respond_with(ResponseTemplate::new(500).set_body_raw(
            fixture("ivre", "error_500_unsupported_filter_passive_asnum.html"),
            "text/html",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/cgi/scans"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            fixture("ivre", "error_400_invalid_referer.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(path(format!("/cgi/ipdata/{HOST}")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ivre", "ipdata_198.51.100.10.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    let c = connector(ivre(&server, &[]).1);
    let (objects, message) = enrich(&c, sco("ipv4-addr", HOST)).await;
    assert!(!objects.is_empty());
    assert!(
        message.contains("passive failed (HTTP 500 (unsupported filter or server error))"),
        "{message}"
    );
    assert!(
        message.contains("scans failed (HTTP 400 (Referer/CSRF check failed"),
        "{message}"
    );
    // Every applicable source failing fails the request; a 5xx reaches the runtime's retry
    // policy instead of failing for good.
    let err = c
        .enrich(&request_for(sco("domain-name", "example.com")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable { message, .. } if message.starts_with("IVRE: passive failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn every_source_failing_is_classified_once() {
    for (status, expect) in [
        (400, "rejected"),
        (404, "rejected"),
        (401, "misconfigured"),
        (403, "misconfigured"),
        (429, "retryable"),
        (502, "retryable"),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/cgi/passive"))
            .respond_with(ResponseTemplate::new(status).insert_header("retry-after", "3"))
            .mount(&server)
            .await;
        let c = connector(ivre(&server, &[]).1);
        let err = c
            .enrich(&request_for(sco("domain-name", "example.com")))
            .await
            .unwrap_err();
        let class = match &err {
            ConnectorError::Rejected(_) => "rejected",
            ConnectorError::Misconfigured(_) => "misconfigured",
            ConnectorError::Retryable { retry_after, .. } => {
                assert_eq!(*retry_after, Some(Duration::from_secs(3)), "{status}");
                "retryable"
            }
        };
        assert_eq!(class, expect, "HTTP {status}: {err:?}");
    }
}

#[tokio::test]
async fn a_5xx_from_ivre_is_retried_by_the_runtime_until_it_answers() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi/passive"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/cgi/passive"))
        .and(query_param("q", "skip:0 limit:200"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ivre", "passive_host_198.51.100.10.json"),
            "application/json",
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(path("/cgi/passive"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ivre", "scans_empty_result.json"),
            "application/json",
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(
        &fake,
        ivre(
            &server,
            &[("IVRE_USE_DATA", "false"), ("IVRE_USE_SCANS", "false")],
        ),
    )
    .start()
    .await;
    running
        .send(&manual_message("work_retry", &ip_stix(GREEN)))
        .await;
    running.stop().await;
    let done = fake.processed("work_retry");
    assert_eq!(done["inError"], false, "{done}");
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .starts_with("IVRE: passive ok ("),
        "{done}"
    );
    assert_eq!(fake.count("stixBundlePush"), 1);
}

#[tokio::test]
async fn through_the_runtime_with_the_tlp_gate() {
    let server = ivre_server(
        &[(
            "passive",
            json!({"f": "host", "a": [IP]}),
            "passive_host_198.51.100.10.json",
        )],
        &[(IP, "ipdata_8.8.8.8.json")],
    )
    .await;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::new(&fake, ivre(&server, &[("IVRE_MAX_TLP", "TLP:AMBER")]))
        .start()
        .await;
    running
        .send(&manual_message("work_ivre", &ip_stix(GREEN)))
        .await;
    let done = &fake.calls("workEdit.toProcessed")[0].variables;
    assert_eq!(done["inError"], false, "{done}");
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .starts_with("IVRE: data ok ("),
        "{done}"
    );
    let objects = pushed_objects(&fake.calls("stixBundlePush")[0]);
    assert!(
        objects
            .iter()
            .any(|o| o["type"] == "autonomous-system" && o["number"] == 15169)
    );

    add_ip_entity(&fake, "TLP:RED", RED);
    running
        .send(&manual_message("work_red", &ip_stix(RED)))
        .await;
    assert_eq!(
        fake.calls("workEdit.toProcessed")[1].variables["message"],
        "Do not send any data, TLP of the observable is greater than MAX TLP"
    );
    running.stop().await;
}

#[tokio::test]
async fn paging_goes_on_until_an_empty_page_even_after_a_short_one() {
    let server = MockServer::start().await;
    let filter = json!({"f": "host", "a": [HOST]}).to_string();
    let one = fixture("ivre", "passive_host_198.51.100.10.json");
    // The second page differs from the first (a repeated page would end the paging).
    let two = fixture("ivre", "passive_host_198.51.100.10_datesasstrings.json");
    let count = |body: &str| {
        opencti_connectors::connectors::ivre::client::parse_records(body)
            .unwrap()
            .len()
    };
    let (n, m) = (count(&one), count(&two));
    for (q, body) in [
        ("skip:0 limit:200".to_string(), one.clone()),
        (format!("skip:{n} limit:200"), two.clone()),
        (
            format!("skip:{} limit:200", n + m),
            fixture("ivre", "scans_empty_result.json"),
        ),
    ] {
        Mock::given(path("/cgi/passive"))
            .and(query_param("f", filter.as_str()))
            .and(query_param("q", q.as_str()))
            .and(header("x-api-key", "ivre_key"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = connector(
        ivre(
            &server,
            &[
                ("IVRE_USE_DATA", "false"),
                ("IVRE_USE_SCANS", "false"),
                ("IVRE_API_KEY", "ivre_key"),
            ],
        )
        .1,
    );
    let (_, message) = enrich(&c, sco("ipv4-addr", HOST)).await;
    assert!(
        message.contains(&format!("passive ok ({} records)", n + m)),
        "{message}"
    );
}

#[tokio::test]
async fn the_remaining_recorded_cases_match_the_python_connector() {
    let server = ivre_server(
        &[
            (
                "passive",
                json!({"f": "dns", "a": ["www.example.com"]}),
                "passive_dns_www.example.com.json",
            ),
            (
                "passive",
                json!({"f": "dns", "a": ["www.example.com"], "k": {"reverse": true}}),
                "passive_dns_www.example.com_reverse.json",
            ),
            (
                "passive",
                json!({"f": "dns", "a": ["example.com"]}),
                "passive_dns_example.com.json",
            ),
            (
                "passive",
                json!({"f": "dns", "a": ["example.com"], "k": {"reverse": true}}),
                "passive_dns_example.com_reverse.json",
            ),
            (
                "scans",
                json!({"f": "domain", "a": ["example.com"]}),
                "scans_host_198.51.100.10.json",
            ),
            (
                "passive",
                json!({"f": "host", "a": ["2001:db8::10"]}),
                "passive_host_2001-db8--10.json",
            ),
        ],
        &[("2001:db8::10", "ipdata_2001-db8--10.json")],
    )
    .await;
    // domain-name_www.example.com
    let c = connector(ivre(&server, &[]).1);
    let rels = relationships(&enrich(&c, sco("domain-name", "www.example.com")).await.0);
    let www = "domain-name:www.example.com";
    assert!(has(&rels, www, "resolves-to", "ipv4-addr:198.51.100.10"));
    assert!(has(&rels, www, "resolves-to", "ipv6-addr:2001:db8::10"));
    assert!(has(
        &rels,
        "domain-name:cdn-edge.example.org",
        "resolves-to",
        www
    ));
    assert_eq!(rels.len(), 3, "{rels:?}");

    // domain-name_example.com__scans_enabled: the passive results plus the scans host.
    let c = connector(ivre(&server, &[("IVRE_USE_SCANS_DOMAIN", "true")]).1);
    let rels = relationships(&enrich(&c, sco("domain-name", "example.com")).await.0);
    assert!(has(
        &rels,
        "domain-name:web10.example.net",
        "resolves-to",
        "ipv4-addr:198.51.100.10"
    ));
    assert!(has(
        &rels,
        "ipv4-addr:198.51.100.10",
        "related-to",
        &format!("x509-certificate:{CERT_MD5}")
    ));
    assert!(has(
        &rels,
        "domain-name:alias.example.org",
        "resolves-to",
        "domain-name:example.com"
    ));
    assert_eq!(rels.len(), 7, "the recorded run made 7 links: {rels:?}");

    // ipv6-addr_2001-db8--10: data and passive.
    let rels = relationships(&enrich(&c, sco("ipv6-addr", "2001:db8::10")).await.0);
    let ip = "ipv6-addr:2001:db8::10";
    assert!(has(&rels, ip, "located-at", "location:France"));
    assert!(has(&rels, ip, "belongs-to", "autonomous-system:64496"));
    assert!(has(&rels, "domain-name:www.example.com", "resolves-to", ip));
}

#[tokio::test]
async fn the_ipdata_path_comes_from_the_parsed_address_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("null"))
        .expect(0)
        .mount(&server)
        .await;
    let c = connector(
        ivre(
            &server,
            &[("IVRE_USE_PASSIVE", "false"), ("IVRE_USE_SCANS", "false")],
        )
        .1,
    );
    for hostile in [
        "1.2.3.4?f=x",
        "1.2.3.4#frag",
        "1.2.3.4/../../passive",
        "1.2.3.4\\x",
    ] {
        let err = c
            .enrich(&request_for(sco("ipv4-addr", hostile)))
            .await
            .map(|o| format!("{o:?}"));
        match err {
            Ok(outcome) => assert!(outcome.contains("network"), "{hostile}: {outcome}"),
            Err(e) => assert!(
                e.to_string().contains("is not an IP address"),
                "{hostile}: {e}"
            ),
        }
    }
}

#[tokio::test]
async fn a_redirect_never_carries_the_api_key_to_another_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("null"))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/cgi/ipdata/{HOST}", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let c = connector(
        ivre(
            &server,
            &[
                ("IVRE_API_KEY", "ivre_secret_key"),
                ("IVRE_USE_PASSIVE", "false"),
                ("IVRE_USE_SCANS", "false"),
            ],
        )
        .1,
    );
    let err = c
        .enrich(&request_for(sco("ipv4-addr", HOST)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 302"), "{err}");
    assert!(!err.to_string().contains("ivre_secret_key"));
}

#[tokio::test]
async fn a_server_that_repeats_its_page_does_not_page_forever() {
    let server = MockServer::start().await;
    // Every page, whatever its `skip:`, is the same page.
    Mock::given(path("/cgi/passive"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ivre", "passive_host_198.51.100.10.json"),
            "application/json",
        ))
        .expect(2)
        .mount(&server)
        .await;
    let c = connector(
        ivre(
            &server,
            &[("IVRE_USE_DATA", "false"), ("IVRE_USE_SCANS", "false")],
        )
        .1,
    );
    let (_, message) = enrich(&c, sco("ipv4-addr", HOST)).await;
    assert!(
        message.starts_with("IVRE: passive ok (4 records)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_certificate_entity_gets_ivre_s_properties_and_no_second_certificate() {
    const SHA256: &str = "9b04dcc7739983075f59d497edfd7b908a6c3c1c371ad477ed523a5c735c6e25";
    let filter = json!({"f": "cert", "k": {"sha256": SHA256}});
    let server = ivre_server(
        &[
            (
                "passive",
                filter.clone(),
                "passive_cert_sha256_9b04dcc7.json",
            ),
            ("scans", filter, "scans_host_198.51.100.10.json"),
        ],
        &[],
    )
    .await;
    let c = connector(ivre(&server, &[]).1);
    // Known by one hash only: its id is computed from that hash.
    let hashes = json!({"hashes": {"SHA-256": SHA256}});
    let cert_id = ids::observable_id("x509-certificate", hashes.as_object().unwrap());
    let entity = json!({"id": cert_id, "type": "x509-certificate", "spec_version": "2.1", "hashes": {"SHA-256": SHA256}});
    let (objects, _) = enrich(&c, entity).await;
    let certs: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "x509-certificate")
        .collect();
    assert_eq!(certs.len(), 1, "one certificate object: {certs:?}");
    let cert = certs[0];
    assert_eq!(cert["id"], cert_id.as_str(), "it keeps the entity's id");
    assert_eq!(cert["hashes"]["SHA-256"], SHA256);
    assert_eq!(cert["hashes"]["MD5"], CERT_MD5);
    assert_eq!(
        cert["hashes"]["SHA-1"],
        "e1b50fac69ffcf2ba2cd99580e882e6870a4cc05"
    );
    assert_eq!(cert["subject"], "commonName=www.example.com");
    assert!(cert["issuer"].as_str().unwrap().contains("Example Trust"));
    for key in [
        "validity_not_before",
        "validity_not_after",
        "subject_public_key_algorithm",
        "subject_public_key_modulus",
        "subject_public_key_exponent",
    ] {
        assert!(cert.get(key).is_some(), "{key} missing: {cert}");
    }
    let rels = relationships(&objects);
    assert!(
        rels.iter()
            .all(|(_, _, t, _, _)| !t.starts_with("x509-certificate:") || t.contains(CERT_MD5))
    );
}
