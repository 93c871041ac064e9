//! The ipinfo connector's unit tests: its mapping over the fixtures, its config and its wording.
use crate::fixtures::fixture_json;
use serde_json::{Value, json};

use super::*;
use crate::stix::ObjectMarking;

const IP_ID: &str = "ipv4-addr--2f689bf9-0ff2-545f-aa61-e495eb8cecc7";
const GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

fn request(id: &str, value: &str, stix_type: &str) -> EnrichmentRequest {
    let entity = json!({"type": stix_type, "spec_version": "2.1", "id": id, "value": value, "object_marking_refs": [GREEN]});
    EnrichmentRequest {
        entity_id: id.into(),
        entity_type: None,
        internal_id: None,
        observable_value: Some(value.into()),
        stix_objects: vec![entity.clone(), Tlp::Green.export_object("x")],
        stix_entity: entity,
        markings: vec![ObjectMarking {
            standard_id: Some(GREEN.into()),
            definition_type: Some("TLP".into()),
            definition: Some("TLP:GREEN".into()),
        }],
        playbook: false,
    }
}

fn ids(objects: &[Value]) -> Vec<&str> {
    objects.iter().map(|o| o["id"].as_str().unwrap()).collect()
}

#[test]
fn worked_example_has_the_reference_ids_and_order() {
    let m = map_response(
        &request(IP_ID, "8.8.8.8", "ipv4-addr"),
        &fixture_json("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
        true,
        "2024-01-01T00:00:00.000Z",
    );
    assert_eq!(
        ids(&m.objects),
        vec![
            IP_ID,
            GREEN,
            "autonomous-system--7afc7bdf-d070-5add-90ff-f93503b1654d",
            "relationship--d4ed1b59-ab87-50ff-a04a-8656941c31ae",
            "location--be4ee2db-ecdd-5acf-a5e1-ce03ef2ec91d",
            "location--06a06706-93d3-51d6-bb72-afc15293af72",
            "relationship--c62a3db0-37bb-547b-aa9b-8e329710b910",
            "relationship--89c95550-8f46-5828-af99-f42dfe1fba9a",
            "relationship--89b17481-bd2e-5d34-a534-ec6e68f979ff",
        ]
    );
    let o = &m.objects;
    assert_eq!(o[0]["labels"], json!(["hosting"]));
    assert_eq!(
        o[2],
        json!({"type":"autonomous-system","spec_version":"2.1","id":"autonomous-system--7afc7bdf-d070-5add-90ff-f93503b1654d","number":15169,"name":"Google LLC"})
    );
    assert_eq!(o[3]["relationship_type"], "belongs-to");
    assert_eq!(o[3]["source_ref"], IP_ID);
    assert_eq!(o[4]["name"], "United States");
    assert_eq!(o[4]["country"], "United States of America");
    assert_eq!(
        o[4]["x_opencti_aliases"],
        json!(["United States of America"])
    );
    assert_eq!(o[4]["x_opencti_location_type"], "Country");
    assert_eq!(o[5]["name"], "Mountain View");
    assert_eq!(o[5]["latitude"], json!(37.4056));
    assert_eq!(o[5]["longitude"], json!(-122.0775));
    assert_eq!(o[5]["country"], "United States of America");
    assert!(o[5].get("x_opencti_aliases").is_none());
    for rel in &o[6..] {
        assert_eq!(rel["relationship_type"], "located-at");
        assert!(rel.get("start_time").is_none() && rel.get("created_by_ref").is_none());
    }
    // 9 distinct objects → the reference's "Sent 9 stix bundle(s)".
    assert_eq!(
        crate::opencti::split::split(m.objects.clone(), false).len(),
        9
    );
}

#[test]
fn free_plan_parses_the_as_from_org_and_leaves_labels_alone() {
    let m = map_response(
        &request(IP_ID, "8.8.8.8", "ipv4-addr"),
        &fixture_json("ipinfo", "ipv4_basic_8.8.8.8.json"),
        true,
        "t",
    );
    assert_eq!(
        m.objects[2]["id"],
        "autonomous-system--7afc7bdf-d070-5add-90ff-f93503b1654d"
    );
    assert_eq!(m.objects[2]["name"], "Google LLC");
    assert!(m.objects[0].get("labels").is_none());
    assert_eq!(m.objects.len(), 9);
}

#[test]
fn use_asn_name_false_names_the_as_by_its_handle() {
    for f in [
        "ipv4_asn_no_privacy_8.8.8.8.json",
        "ipv4_basic_8.8.8.8.json",
    ] {
        let m = map_response(
            &request(IP_ID, "8.8.8.8", "ipv4-addr"),
            &fixture_json("ipinfo", f),
            false,
            "t",
        );
        assert_eq!(m.objects[2]["name"], "AS15169", "{f}");
        assert_eq!(
            m.objects[2]["id"],
            "autonomous-system--7afc7bdf-d070-5add-90ff-f93503b1654d"
        );
    }
}

#[test]
fn vpn_sample_gets_labels_and_dutch_locations() {
    let id = crate::stix::ids::value_observable_id("ipv4-addr", "203.0.113.45");
    let m = map_response(
        &request(&id, "203.0.113.45", "ipv4-addr"),
        &fixture_json("ipinfo", "vpn_privacy_constructed.json"),
        true,
        "t",
    );
    assert_eq!(m.objects[0]["labels"], json!(["vpn", "hosting", "NordVPN"]));
    let all = ids(&m.objects);
    assert!(all.contains(&"location--5bb85183-8229-549f-a7ed-2630c10c453d"));
    assert!(all.contains(&"location--e6128578-5ace-58c0-994d-491fce424ec8"));
    assert!(all.contains(&"autonomous-system--0a5f7072-df00-5729-9f0a-4eb18631a446"));
    let netherlands = m
        .objects
        .iter()
        .find(|o| o["name"] == "Netherlands")
        .unwrap();
    assert_eq!(netherlands["country"], "Kingdom of the Netherlands");
    let amsterdam = m.objects.iter().find(|o| o["name"] == "Amsterdam").unwrap();
    assert_eq!(amsterdam["latitude"], json!(52.374));
}

#[test]
fn ipv6_with_all_false_privacy_keeps_existing_labels() {
    let id = "ipv6-addr--196096a3-659b-59b3-995c-2daf5c89111e";
    let mut req = request(id, "2607:fb91:2a0:80af:11ad:f056:42f2:b8c2", "ipv6-addr");
    req.stix_objects[0]["labels"] = json!(["keep-me"]);
    let m = map_response(
        &req,
        &fixture_json("ipinfo", "ipv6_2607-fb91.json"),
        true,
        "t",
    );
    assert_eq!(m.objects[0]["labels"], json!(["keep-me"]));
    let asys = m
        .objects
        .iter()
        .find(|o| o["type"] == "autonomous-system")
        .unwrap();
    assert_eq!(asys["number"], 21928);
    assert_eq!(asys["name"], "T-Mobile USA, Inc.");
    assert!(ids(&m.objects).contains(&"location--4afb3241-dd03-59c6-9735-5f9b3fa4b745"));
}

#[test]
fn business_sample_labels_in_reference_order_on_the_entity_only() {
    let mut req = request(IP_ID, "8.8.8.8", "ipv4-addr");
    let other = json!({"type": "ipv4-addr", "id": "ipv4-addr--0198f97b-e65d-5025-87e5-58bc39d4bdb4", "value": "1.2.3.4"});
    req.stix_objects.push(other.clone());
    let m = map_response(
        &req,
        &fixture_json("ipinfo", "ipv4_business_privacy_flags_true_8.8.8.8.json"),
        true,
        "t",
    );
    assert_eq!(
        m.objects[0]["labels"],
        json!(["proxy", "tor", "relay", "hosting", "asdfasdf"])
    );
    assert_eq!(m.objects[2], other, "other observables are not relabelled");
}

#[test]
fn full_node_fixture_and_missingauth_answer_map() {
    for f in [
        "ipv4_full_8.8.8.8_ipinfo-node.json",
        "ipv4_missingauth_readme_field.json",
        "ipv4_asn_no_privacy_8.8.8.8.json",
    ] {
        let m = map_response(
            &request(IP_ID, "8.8.8.8", "ipv4-addr"),
            &fixture_json("ipinfo", f),
            true,
            "t",
        );
        assert!(
            ids(&m.objects).contains(&"location--be4ee2db-ecdd-5acf-a5e1-ce03ef2ec91d"),
            "{f}"
        );
        assert!(m.added >= 3, "{f}");
    }
}

#[test]
fn sparse_answers_give_what_they_can() {
    let req = request(IP_ID, "8.8.8.8", "ipv4-addr");
    // Country only.
    let m = map_response(&req, &json!({"ip": "8.8.8.8", "country": "DE"}), true, "t");
    assert_eq!(
        ids(&m.objects)[2..],
        [
            "location--7215cb31-5700-55b2-81b3-633c09c0351d",
            crate::stix::ids::relationship_id(
                "located-at",
                IP_ID,
                "location--7215cb31-5700-55b2-81b3-633c09c0351d",
                None,
                None
            )
            .as_str()
        ]
    );
    // City without coordinates nor a known country.
    let m = map_response(
        &req,
        &json!({"ip": "8.8.8.8", "city": "Pristina", "country": "XK"}),
        true,
        "t",
    );
    let city = m.objects.iter().find(|o| o["name"] == "Pristina").unwrap();
    assert!(city.get("latitude").is_none() && city.get("country").is_none());
    assert_eq!(m.notes.len(), 2);
    // Nothing at all.
    let m = map_response(
        &req,
        &fixture_json("ipinfo", "bogon_10.0.0.1.json"),
        true,
        "t",
    );
    assert_eq!(m.added, 0);
    assert_eq!(m.objects.len(), 2);
}

#[test]
fn odd_as_data_is_skipped_not_fatal() {
    let req = request(IP_ID, "8.8.8.8", "ipv4-addr");
    let m = map_response(
        &req,
        &json!({"org": "NoNumbersHere", "asn": null, "country": "US"}),
        true,
        "t",
    );
    assert!(m.objects.iter().all(|o| o["type"] != "autonomous-system"));
    let m = map_response(
        &req,
        &json!({"asn": {"asn": "AS64500"}, "country": "US"}),
        true,
        "t",
    );
    let asys = m
        .objects
        .iter()
        .find(|o| o["type"] == "autonomous-system")
        .unwrap();
    assert_eq!(asys["name"], "AS64500");
}

#[test]
fn private_addresses_are_not_routable() {
    for ip in [
        "10.0.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(non_routable_reason(ip.parse().unwrap()).is_some(), "{ip}");
    }
    for ip in [
        "8.8.8.8",
        "203.0.113.45",
        "2607:fb91:2a0:80af:11ad:f056:42f2:b8c2",
    ] {
        assert!(non_routable_reason(ip.parse().unwrap()).is_none(), "{ip}");
    }
}

#[test]
fn http_failures_use_the_reference_wording() {
    assert_eq!(
        status_error(403, "Forbidden"),
        ConnectorError::Misconfigured("Invalid API Token, Error 403. Reason: Forbidden".into())
    );
    assert!(
        matches!(status_error(429, "Too Many Requests"), ConnectorError::Retryable { message: m, .. } if m.starts_with("IpInfo Rate limit exceeded, Error 429. Reason: Too Many Requests"))
    );
    assert_eq!(
        status_error(404, "Not Found"),
        ConnectorError::Rejected("Unexpected HTTP Error 404. Reason: Not Found".into())
    );
    assert!(matches!(
        status_error(502, "Bad Gateway"),
        ConnectorError::Retryable { .. }
    ));
}

mod plans;

#[test]
fn the_cached_essentials_map_as_the_full_answer_for_every_fixture() {
    let dir = crate::fixtures::shared("fixtures/ipinfo");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap())
        else {
            continue;
        };
        for use_asn_name in [true, false] {
            let req = request(IP_ID, "8.8.8.8", "ipv4-addr");
            let full = map_response(&req, &body, use_asn_name, "t");
            let small = map_response(&req, &essentials(body.clone()), use_asn_name, "t");
            assert_eq!(full, small, "{}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 10, "{seen} fixtures");
}
