//! RiskIQ PassiveTotal through the runtime, PassiveTotal faked by wiremock.

use crate::common::*;
use opencti_connectors::config::ConnectorSettings;
use opencti_connectors::connectors::Hosted;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DOMAIN: &str = "www.furth.com.ar";
const DOMAIN_ID: &str = "domain-name--d8f80844-a558-554c-97ba-13937278c048";

fn riskiq(base: &str, extra: &[(&str, &str)]) -> (ConnectorSettings, Hosted) {
    build_connector(
        "riskiq",
        &[
            ("RISKIQ_USERNAME", "analyst@example.com"),
            ("RISKIQ_API_KEY", "riskiq-secret-key"),
            ("RISKIQ_API_BASE_URL", base),
            // These tests count upstream calls; the cache has tests of its own.
            ("RISKIQ_CACHE_TTL", "PT0S"),
        ],
        extra,
    )
}

fn add_domain(fake: &FakeOpencti, id: &str, value: &str, markings: Value) {
    let internal = format!("internal-{value}");
    add_entity(fake, id, &internal, "Domain-Name", markings, Some(value));
}

fn domain_message(work: &str, id: &str, stix_type: &str, value: &str) -> Vec<u8> {
    let entity = json!({"id": id, "type": stix_type, "spec_version": "2.1", "value": value});
    manual_message(work, &entity)
}

async fn passive_total(quota: &str, quota_calls: u64, dns_calls: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/pt/v2/account/quota"))
        .and(basic_auth("analyst@example.com", "riskiq-secret-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json("riskiq", quota)))
        .expect(quota_calls)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/pt/v2/dns/passive"))
        .and(query_param("query", DOMAIN))
        .and(basic_auth("analyst@example.com", "riskiq-secret-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json(
            "riskiq",
            "dns_passive_domain_www.furth.com.ar.json",
        )))
        .expect(dns_calls)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn two_enrichments_make_one_quota_call_and_send_the_reference_objects() {
    let server = passive_total("account_quota.json", 1, 2).await;
    let fake = FakeOpencti::start().await;
    add_domain(&fake, DOMAIN_ID, DOMAIN, json!([]));
    // max_tlp TLP:RED: even TLP:RED goes (as the reference, which has no default); its
    // marking is re-emitted.
    let other = "domain-name--00000000-0000-5000-8000-000000000000";
    add_domain(
        &fake,
        other,
        DOMAIN,
        json!([{"definition_type": "TLP", "definition": "TLP:RED"}]),
    );
    let running = Scenario::new(
        &fake,
        riskiq(
            &format!("{}/pt", server.uri()),
            &[("RISKIQ_MAX_TLP", "TLP:RED")],
        ),
    )
    .start()
    .await;
    running
        .send(&domain_message("work_1", DOMAIN_ID, "domain-name", DOMAIN))
        .await;
    running
        .send(&domain_message("work_2", other, "domain-name", DOMAIN))
        .await;
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(
        processed[0].variables["message"],
        "[API] Observable found and knowledge added for type: domain-name, sending 12 stix bundle(s) for worker import"
    );
    assert_eq!(
        processed[1].variables["message"],
        "[API] Observable found and knowledge added for type: domain-name, sending 13 stix bundle(s) for worker import"
    );
    let objects = pushed_objects(&fake.calls("stixBundlePush")[0]);
    let ids: Vec<&str> = objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
    for want in [
        "relationship--5a37a536-ce20-5806-af42-d37db5173543",
        "relationship--abfa3a49-02a0-5813-bfc5-3fc5dc73f3e7",
        "identity--3dd5005e-308b-57f5-b865-ba1f5e230b13",
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    ] {
        assert!(ids.contains(&want), "{want} missing");
    }
    running.stop().await;
}

#[tokio::test]
async fn an_exhausted_quota_fails_the_work_without_a_lookup() {
    let server = passive_total("account_quota_exhausted_constructed.json", 1, 0).await;
    let fake = FakeOpencti::start().await;
    add_domain(&fake, DOMAIN_ID, DOMAIN, json!([]));
    let running = Scenario::new(&fake, riskiq(&format!("{}/pt", server.uri()), &[]))
        .start()
        .await;
    running
        .publish(&domain_message("work_q", DOMAIN_ID, "domain-name", DOMAIN))
        .await;
    running
        .publish(&domain_message("work_q2", DOMAIN_ID, "domain-name", DOMAIN))
        .await;
    running.works(2).await;
    for call in fake.calls("workEdit.toProcessed") {
        assert_eq!(
            call.variables["message"],
            "RiskIQ PassiveTotal quota exhausted until 2021-01-02 00:00:00"
        );
        assert_eq!(call.variables["inError"], true);
    }
    running.stop().await;
}

#[tokio::test]
async fn out_of_scope_tlp_and_credentials_are_reported_as_the_reference_words_them() {
    let server = MockServer::start().await;
    Mock::given(path("/pt/v2/account/quota"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture_json("riskiq", "error_generic_constructed.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    let red = "domain-name--11111111-0000-5000-8000-000000000000";
    add_domain(&fake, DOMAIN_ID, DOMAIN, json!([]));
    add_domain(
        &fake,
        red,
        "red.example",
        json!([{"definition_type": "TLP", "definition": "TLP:RED"}]),
    );
    add_domain(&fake, "hostname--x", "h.example", json!([]));
    // No max_tlp: the default, TLP:AMBER, refuses TLP:RED before any call.
    let running = Scenario::new(&fake, riskiq(&format!("{}/pt", server.uri()), &[]))
        .start()
        .await;
    running
        .publish(&domain_message(
            "work_scope",
            "hostname--x",
            "hostname",
            "h.example",
        ))
        .await;
    running
        .publish(&domain_message(
            "work_red",
            red,
            "domain-name",
            "red.example",
        ))
        .await;
    running
        .publish(&domain_message(
            "work_creds",
            DOMAIN_ID,
            "domain-name",
            DOMAIN,
        ))
        .await;
    running.works(3).await;
    assert_eq!(
        fake.processed("work_scope")["message"],
        "[CONNECTOR] Skip the following entity as it does not concern the initial scope found in the connector config: {'entity_id': 'hostname--x'}"
    );
    assert!(fake.processed("work_red")["message"].as_str().unwrap().starts_with("[CONNECTOR] Do not send any data, TLP of the observable is greater than MAX TLP,the connector"));
    let creds = fake.processed("work_creds");
    assert_eq!(creds["inError"], true);
    assert_eq!(
        creds["message"],
        "RiskIQ PassiveTotal refused the credentials (HTTP 401: Authentication failed): check riskiq.username and riskiq.api_key"
    );
    for call in fake.all_calls() {
        assert!(!call.variables.to_string().contains("riskiq-secret-key"));
    }
    running.stop().await;
}

#[tokio::test]
async fn an_empty_result_is_the_only_no_information_found() {
    let server = MockServer::start().await;
    Mock::given(path("/pt/v2/account/quota"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture_json("riskiq", "account_quota.json")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/pt/v2/dns/passive"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json(
            "riskiq",
            "dns_passive_zero_records_xsoar.json",
        )))
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    add_domain(&fake, DOMAIN_ID, DOMAIN, json!([]));
    let running = Scenario::new(&fake, riskiq(&format!("{}/pt", server.uri()), &[]))
        .start()
        .await;
    let done = running
        .send(&domain_message("work_e", DOMAIN_ID, "domain-name", DOMAIN))
        .await;
    assert_eq!(done.message, "[CONNECTOR] No information found");
    assert!(!done.in_error);
    assert_eq!(fake.count("stixBundlePush"), 0);
    running.stop().await;
}

#[tokio::test]
async fn a_local_countdown_past_next_reset_does_not_refuse() {
    // Constructed: the account is one lookup from its limit, and its reset date has passed
    // (so the count upstream has started over).
    let mut quota = fixture_json("riskiq", "account_quota.json");
    quota["user"]["licenseCounts"]["searchApi"] = 1999.into();
    quota["user"]["licenseLimits"]["searchApi"] = 2000.into();
    quota["user"]["next_reset"] = "2021-01-02 00:00:00".into();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/pt/v2/account/quota"))
        .respond_with(ResponseTemplate::new(200).set_body_json(quota))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/pt/v2/dns/passive"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json(
            "riskiq",
            "dns_passive_domain_www.furth.com.ar.json",
        )))
        .expect(3)
        .mount(&server)
        .await;
    let fake = FakeOpencti::start().await;
    add_domain(&fake, DOMAIN_ID, DOMAIN, json!([]));
    let running = Scenario::new(&fake, riskiq(&format!("{}/pt", server.uri()), &[]))
        .start()
        .await;
    for work in ["work_r1", "work_r2", "work_r3"] {
        running
            .publish(&domain_message(work, DOMAIN_ID, "domain-name", DOMAIN))
            .await;
    }
    running.works(3).await;
    running.stop().await;
    for call in fake.calls("workEdit.toProcessed") {
        assert_eq!(call.variables["inError"], false, "{}", call.variables);
    }
}
