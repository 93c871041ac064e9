//! The API plans (`ipinfo.api`): each plan's answer, read into the legacy shape, maps as the
//! legacy answer does.

use super::*;
use crate::connectors::ipinfo::plans::{Api, to_legacy};
use crate::fixtures::constructed_json;

const NOW: &str = "2024-01-01T00:00:00.000Z";

fn mapped(api: Api, name: &str) -> Mapped {
    let body = to_legacy(api, constructed_json("ipinfo", name));
    map_response(&request(IP_ID, "8.8.8.8", "ipv4-addr"), &body, true, NOW)
}

fn legacy() -> Mapped {
    map_response(
        &request(IP_ID, "8.8.8.8", "ipv4-addr"),
        &fixture_json("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
        true,
        NOW,
    )
}

#[test]
fn core_gives_the_same_objects_as_legacy_for_the_same_facts() {
    assert_eq!(mapped(Api::Lookup, "core_8.8.8.8.json"), legacy());
}

#[test]
fn lite_gives_the_country_and_the_as_and_no_city() {
    let lite = mapped(Api::Lite, "lite_8.8.8.8.json");
    let city = "location--06a06706-93d3-51d6-bb72-afc15293af72";
    // Legacy's objects without the City, its relationships and the privacy labels.
    let mut expected = legacy().objects;
    expected[0]
        .as_object_mut()
        .unwrap()
        .remove("labels")
        .unwrap();
    expected.retain(|o| o["id"] != city && o["source_ref"] != city && o["target_ref"] != city);
    assert_eq!(lite.objects, expected);
    assert_eq!(
        ids(&lite.objects)[2..],
        [
            "autonomous-system--7afc7bdf-d070-5add-90ff-f93503b1654d",
            "relationship--d4ed1b59-ab87-50ff-a04a-8656941c31ae",
            "location--be4ee2db-ecdd-5acf-a5e1-ce03ef2ec91d",
            "relationship--89b17481-bd2e-5d34-a534-ec6e68f979ff",
        ]
    );
}

#[test]
fn plus_anonymous_flags_become_the_legacy_privacy_labels() {
    let plus = mapped(Api::Lookup, "plus_vpn_8.8.8.8.json");
    assert_eq!(
        plus.objects[0]["labels"],
        json!(["vpn", "hosting", "NordVPN"])
    );
    let mut expected = legacy().objects;
    expected[0]["labels"] = json!(["vpn", "hosting", "NordVPN"]);
    assert_eq!(plus.objects, expected);
}

#[test]
fn bogons_errors_and_odd_answers_pass_through() {
    let bogon = constructed_json("ipinfo", "lite_bogon_10.0.0.1.json");
    assert_eq!(to_legacy(Api::Lite, bogon.clone()), bogon);
    let error = json!({"status": 403, "error": {"title": "Unknown token"}});
    assert_eq!(to_legacy(Api::Lookup, error.clone()), error);
    assert_eq!(to_legacy(Api::Lookup, json!([1])), json!([1]));
    // Wrong types are dropped, not fatal.
    let odd = json!({"geo": {"city": 3, "latitude": "x"}, "as": [], "is_hosting": "yes"});
    assert_eq!(
        to_legacy(Api::Lookup, odd),
        json!({"privacy": {"vpn": false, "proxy": false, "tor": false, "relay": false, "hosting": false, "service": ""}})
    );
    let m = mapped(Api::Lite, "lite_bogon_10.0.0.1.json");
    assert_eq!(m.added, 0);
}

#[test]
fn each_plan_asks_its_own_path() {
    assert_eq!(Api::Legacy.segments("1.2.3.4"), ["1.2.3.4", "json"]);
    assert_eq!(Api::Lite.segments("1.2.3.4"), ["lite", "1.2.3.4"]);
    assert_eq!(Api::Lookup.segments("1.2.3.4"), ["lookup", "1.2.3.4"]);
}

#[test]
fn new_plans_default_to_api_ipinfo_io_unless_the_base_url_was_set() {
    let mut config = IpinfoConfig::default();
    assert_eq!(config.base_url(), "https://ipinfo.io");
    config.api = Api::Lite;
    assert_eq!(config.base_url(), "https://api.ipinfo.io");
    config.api_base_url = "http://127.0.0.1:9/".into();
    assert_eq!(config.base_url(), "http://127.0.0.1:9/");
}
