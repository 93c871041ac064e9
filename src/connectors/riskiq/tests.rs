//! The riskiq connector's unit tests: its mapping over the fixtures, its config and its wording.
use crate::fixtures::fixture_json;
use serde_json::{Value, json};

use super::*;

const DOMAIN_ID: &str = "domain-name--d8f80844-a558-554c-97ba-13937278c048";
const IP_ID: &str = "ipv4-addr--8b12a0da-27b6-5220-852e-d812ea771990";
/// The reference author id (spec §6).
const AUTHOR_ID: &str = "identity--3dd5005e-308b-57f5-b865-ba1f5e230b13";

fn results(name: &str) -> Vec<Value> {
    fixture_json("riskiq", name)["results"]
        .as_array()
        .unwrap()
        .clone()
}

fn pairs(m: &Mapped) -> Vec<(String, String)> {
    m.objects
        .chunks(2)
        .map(|c| {
            (
                c[0]["id"].as_str().unwrap().to_string(),
                c[1]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn domain_worked_example_has_the_reference_ids_and_times() {
    let m = map_records(
        DOMAIN_ID,
        AUTHOR_ID,
        &results("dns_passive_domain_www.furth.com.ar.json"),
        "t",
    );
    assert_eq!(m.handled, 5);
    let want = [
        (
            "domain-name--c39acad3-4291-55ae-9917-fc2d89b80f6e",
            "relationship--5a37a536-ce20-5806-af42-d37db5173543",
        ),
        (
            "ipv4-addr--8b12a0da-27b6-5220-852e-d812ea771990",
            "relationship--6b5935f3-f84a-5169-a8cf-efee121c8c58",
        ),
        (
            "ipv4-addr--de7fe819-0191-59d9-b14f-1f06e0949bc4",
            "relationship--87624cda-69be-58de-aa7f-0d4bd50073c7",
        ),
        (
            "email-addr--ecf58017-5859-5dfd-b388-cd65ecea8be0",
            "relationship--abfa3a49-02a0-5813-bfc5-3fc5dc73f3e7",
        ),
        (
            "domain-name--c39acad3-4291-55ae-9917-fc2d89b80f6e",
            "relationship--d332dbfc-79a9-544c-8dad-ed1ee676dc01",
        ),
    ];
    let got = pairs(&m);
    for (i, (obs, rel)) in want.iter().enumerate() {
        assert_eq!(
            (got[i].0.as_str(), got[i].1.as_str()),
            (*obs, *rel),
            "record {i}"
        );
    }
    let rels: Vec<&Value> = m
        .objects
        .iter()
        .filter(|o| o["type"] == "relationship")
        .collect();
    assert_eq!(
        (
            rels[0]["start_time"].as_str(),
            rels[0]["stop_time"].as_str()
        ),
        (Some("2010-12-15T09:10:10Z"), Some("2020-06-17T05:26:33Z"))
    );
    assert_eq!(rels[0]["description"], "CNAME record");
    assert_eq!(rels[3]["relationship_type"], "related-to");
    assert_eq!(
        rels[3]["stop_time"], "2020-06-17T05:26:34Z",
        "first == last gets +1 s"
    );
    assert_eq!(rels[4]["description"], "MX record");
    for r in &rels {
        assert_eq!(r["source_ref"], DOMAIN_ID);
        assert_eq!(
            r["created_by_ref"],
            "identity--3dd5005e-308b-57f5-b865-ba1f5e230b13"
        );
        assert_eq!(
            r["object_marking_refs"],
            json!(["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"])
        );
    }
    // The entity + 4 distinct observables + 5 relationships + author + marking = 12 bundles.
    let mut all =
        vec![json!({"id": DOMAIN_ID, "type": "domain-name", "value": "www.furth.com.ar"})];
    all.extend(m.objects.clone());
    all.push(author().object_at("t"));
    all.push(Tlp::Clear.stix2_object("t"));
    assert_eq!(crate::opencti::split::split(all, true).len(), 12);
}

#[test]
fn observables_have_the_reference_shape() {
    let m = map_records(
        DOMAIN_ID,
        AUTHOR_ID,
        &results("dns_passive_domain_www.furth.com.ar.json"),
        "t",
    );
    assert_eq!(
        m.objects[2],
        json!({"type":"ipv4-addr","spec_version":"2.1","id":IP_ID,"value":"77.81.241.5",
               "object_marking_refs":["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"],
               "x_opencti_created_by_ref":"identity--3dd5005e-308b-57f5-b865-ba1f5e230b13",
               "x_opencti_main_observable_type":"IPv4-Addr"})
    );
    let a = author().object_at("now");
    assert_eq!(a["id"], "identity--3dd5005e-308b-57f5-b865-ba1f5e230b13");
    assert_eq!(a["description"], mapping::AUTHOR_DESCRIPTION);
}

#[test]
fn ip_query_reverses_a_domain_records() {
    let m = map_records(
        IP_ID,
        AUTHOR_ID,
        &results("dns_passive_ip_query_constructed.json"),
        "t",
    );
    let got = pairs(&m);
    assert_eq!(
        got[0],
        (
            "domain-name--d8f80844-a558-554c-97ba-13937278c048".into(),
            "relationship--6b5935f3-f84a-5169-a8cf-efee121c8c58".into()
        )
    );
    assert_eq!(
        got[1],
        (
            "domain-name--c39acad3-4291-55ae-9917-fc2d89b80f6e".into(),
            "relationship--b957da6f-d125-5062-9b90-c03cb1ad8ddf".into()
        )
    );
    assert_eq!(
        got[2],
        (
            "domain-name--c9ea0968-9575-5e58-b8c6-2168872dd38e".into(),
            "relationship--b74b447a-2f9e-59a4-9922-eeb2a829c886".into()
        )
    );
    let rel = &m.objects[3];
    assert_eq!(
        rel["source_ref"],
        "domain-name--c39acad3-4291-55ae-9917-fc2d89b80f6e"
    );
    assert_eq!(rel["target_ref"], IP_ID);
    assert_eq!(rel["stop_time"], "2020-06-01T10:00:01Z");
}

#[test]
fn records_without_types_or_results_map_to_nothing() {
    assert_eq!(
        map_records(
            DOMAIN_ID,
            AUTHOR_ID,
            &results("dns_passive_python_api_testdata.json"),
            "t"
        )
        .handled,
        0
    );
    assert_eq!(
        map_records(
            DOMAIN_ID,
            AUTHOR_ID,
            &results("dns_passive_zero_records_xsoar.json"),
            "t"
        )
        .handled,
        0
    );
}

#[test]
fn malformed_times_skip_the_record_not_the_message() {
    let records = vec![
        json!({"recordType": "A", "resolveType": "ip", "resolve": "1.2.3.4", "firstSeen": null, "lastSeen": "2020-01-01 00:00:00"}),
        json!({"recordType": "A", "resolveType": "ip", "resolve": "1.2.3.5", "firstSeen": "2020-01-02 00:00:00", "lastSeen": "2020-01-01 00:00:00"}),
        json!({"recordType": "TXT", "resolveType": "text", "resolve": "v=spf1", "firstSeen": "2020-01-02 00:00:00", "lastSeen": "2020-01-03 00:00:00"}),
    ];
    let m = map_records(DOMAIN_ID, AUTHOR_ID, &records, "t");
    assert_eq!((m.handled, m.malformed), (1, 1));
    assert_eq!(
        m.objects[1]["stop_time"], "2020-01-02T00:00:01Z",
        "stop before start is clamped to start + 1 s"
    );
}

#[test]
fn times_follow_python_isoformat_and_stix2() {
    let t = parse_time("2019-03-09 10:26:55").unwrap();
    assert_eq!(py_isoformat(t), "2019-03-09T10:26:55");
    assert_eq!(stix_time(t), "2019-03-09T10:26:55Z");
    let f = parse_time("2019-03-09 10:26:55.5").unwrap();
    assert_eq!(py_isoformat(f), "2019-03-09T10:26:55.500000");
    assert_eq!(stix_time(f), "2019-03-09T10:26:55.5Z");
    assert_eq!(
        crate::stix::ids::relationship_id(
            "resolves-to",
            "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7",
            "ipv4-addr--2f689bf9-0ff2-545f-aa61-e495eb8cecc7",
            Some(&py_isoformat(t)),
            None
        ),
        "relationship--183a7a2c-0784-5fcb-9d79-f6860a88ef01"
    );
}

#[test]
fn http_errors_say_what_to_fix() {
    let body =
        serde_json::to_string(&fixture_json("riskiq", "error_generic_constructed.json")).unwrap();
    assert!(
        matches!(status_error(401, "Unauthorized", &body), ConnectorError::Misconfigured(m) if m.contains("Authentication failed") && m.contains("riskiq.api_key"))
    );
    assert!(matches!(
        status_error(429, "Too Many Requests", ""),
        ConnectorError::Retryable { .. }
    ));
    assert!(matches!(
        status_error(503, "Service Unavailable", ""),
        ConnectorError::Retryable { .. }
    ));
    assert!(matches!(
        status_error(404, "Not Found", ""),
        ConnectorError::Rejected(_)
    ));
}

#[test]
fn one_second_after_the_end_of_time_is_the_end_of_time() {
    assert_eq!(
        crate::stix::one_second_after(chrono::NaiveDateTime::MAX),
        chrono::NaiveDateTime::MAX
    );
}

#[tokio::test]
async fn an_exhausted_reading_is_read_again_before_refusing_once_it_is_old() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let exhausted = fixture_json("riskiq", "account_quota_exhausted_constructed.json");
    Mock::given(path("/v2/account/quota"))
        .respond_with(ResponseTemplate::new(200).set_body_json(exhausted))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/account/quota"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture_json("riskiq", "account_quota.json")),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let client = client::RiskiqClient::new(
        reqwest::Client::new(),
        reqwest::Url::parse(&server.uri()).unwrap(),
        crate::config::Secret::new("u"),
        crate::config::Secret::new("k"),
        std::time::Duration::from_secs(600),
        1 << 20,
        crate::upstream::ratelimit::Gate::new("riskiq", 0.0),
    )
    .with_quota_recheck(std::time::Duration::from_millis(100));
    assert!(
        client.check_quota().await.is_err(),
        "the API says exhausted"
    );
    assert!(
        client.check_quota().await.is_err(),
        "a fresh reading is trusted"
    );
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(
        client.check_quota().await.is_ok(),
        "re-read before refusing: room again"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        failure_persistence: None,
        ..Default::default()
    })]

    /// Any window, the end of time included: a `start` no later than now, exactly
    /// `now - window` when the calendar holds it, never a panic.
    #[test]
    fn any_window_gives_a_start_without_panicking(
        secs in proptest::prelude::any::<u64>(),
        nanos in 0u32..1_000_000_000,
    ) {
        let now = chrono::DateTime::parse_from_rfc3339("2026-10-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let window = Duration::new(secs, nanos);
        let start = window_start(now, window);
        let parsed = chrono::NaiveDateTime::parse_from_str(&start, "%Y-%m-%d %H:%M:%S");
        // Years beyond 9999 print with a sign or more digits; what matters is no panic
        // and, where the calendar holds it, the exact start.
        if let Some(expected) = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| now.checked_sub_signed(w))
            .filter(|t| chrono::Datelike::year(t) >= 1)
        {
            proptest::prop_assert_eq!(start.clone(), expected.format("%Y-%m-%d %H:%M:%S").to_string());
            proptest::prop_assert!(parsed.is_ok(), "{}", start);
        }
    }
}

#[test]
fn the_default_window_starts_thirty_days_ago() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-10-01T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        window_start(now, Duration::from_secs(30 * 86400)),
        "2026-09-01 12:00:00"
    );
    assert_eq!(
        window_start(now, Duration::MAX),
        chrono::DateTime::<chrono::Utc>::MIN_UTC
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        "past the first representable time: everything"
    );
}
