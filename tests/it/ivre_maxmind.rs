//! IVRE's data purpose from local GeoLite2 files (`db_url_data: maxmind:///dir`, the files of
//! `tests/fixtures/ivre/mmdb`): the same objects and ids as IVRE's web API `/ipdata` gives
//! for the same facts, and bad directories refused at start-up (exit 2, the path named).

use std::process::Command;

use crate::common::daemon::BIN;
use crate::common::*;
use crate::ivre_e2e::{connector, ivre, ivre_server};
use opencti_connectors::connectors::{EnrichmentConnector, Outcome};
use serde_json::{Value, json};

fn mmdb_dir() -> String {
    format!("{}/tests/fixtures/ivre/mmdb", env!("CARGO_MANIFEST_DIR"))
}

fn sco(stix_type: &str, value: &str) -> Value {
    let id = opencti_connectors::stix::ids::value_observable_id(stix_type, value);
    json!({"id": id, "type": stix_type, "spec_version": "2.1", "value": value})
}

/// The bundle's objects without the times of their making (each run has its own `now`).
async fn objects(c: &dyn EnrichmentConnector, entity: Value) -> Vec<Value> {
    match c.enrich(&request_for(entity)).await.unwrap() {
        Outcome::Prepared { objects, .. } => objects
            .iter()
            .map(|o| o.to_value())
            .map(|mut o| {
                let map = o.as_object_mut().unwrap();
                map.remove("created");
                map.remove("modified");
                o
            })
            .collect(),
        Outcome::Bundle { objects, .. } => objects
            .into_iter()
            .map(|mut o| {
                let map = o.as_object_mut().unwrap();
                map.remove("created");
                map.remove("modified");
                o
            })
            .collect(),
        Outcome::Done(_) => Vec::new(),
    }
}

const ONLY_DATA: &[(&str, &str)] = &[("IVRE_USE_PASSIVE", "false"), ("IVRE_USE_SCANS", "false")];

#[tokio::test]
async fn the_same_ip_gives_the_same_objects_through_ipdata_and_maxmind() {
    let cases = [
        ("ipv4-addr", "198.51.100.10", "ipdata_198.51.100.10.json"),
        ("ipv4-addr", "203.0.113.50", "ipdata_203.0.113.50.json"),
        ("ipv6-addr", "2001:db8::10", "ipdata_2001-db8--10.json"),
        ("ipv4-addr", "8.8.8.8", "ipdata_8.8.8.8.json"),
        ("ipv4-addr", "10.0.0.1", "ipdata_10.0.0.1.json"),
        ("ipv4-addr", "1.1.1.1", "ipdata_1.1.1.1_null.json"),
    ];
    let ipdata: Vec<(&str, &str)> = cases.iter().map(|(_, ip, f)| (*ip, *f)).collect();
    let server = ivre_server(&[], &ipdata).await;
    let web = connector(ivre(&server, ONLY_DATA).1);
    let dir = format!("maxmind://{}", mmdb_dir());
    let local = connector(
        build_connector(
            "ivre",
            &[
                ("IVRE_DB_URL_DATA", dir.as_str()),
                ("IVRE_CONNECTOR_NAME", "IVRE-Test"),
            ],
            ONLY_DATA,
        )
        .1,
    );
    let mut found = 0;
    for (stix_type, ip, _) in cases {
        let through_web = objects(web.as_ref(), sco(stix_type, ip)).await;
        let through_files = objects(local.as_ref(), sco(stix_type, ip)).await;
        assert_eq!(through_files, through_web, "{ip}");
        found += usize::from(!through_web.is_empty());
    }
    assert_eq!(found, 4, "four of the six addresses have MaxMind facts");
    // The facts themselves, once: Paris in France, AS 64496 by its name.
    let paris = objects(local.as_ref(), sco("ipv4-addr", "198.51.100.10")).await;
    let names: Vec<&str> = paris.iter().filter_map(|o| o["name"].as_str()).collect();
    assert!(
        names.contains(&"Paris")
            && names.contains(&"France")
            && names.contains(&"Example Documentation Network"),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_work_message_is_the_one_the_web_api_gives() {
    let server = ivre_server(
        &[],
        &[
            ("203.0.113.50", "ipdata_203.0.113.50.json"),
            ("1.1.1.1", "ipdata_1.1.1.1_null.json"),
        ],
    )
    .await;
    let web = connector(ivre(&server, ONLY_DATA).1);
    let dir = format!("maxmind://{}", mmdb_dir());
    let (_, hosted) = build_connector("ivre", &[("IVRE_DB_URL_DATA", dir.as_str())], ONLY_DATA);
    let local = connector(hosted);
    let message = |outcome: Outcome| match outcome {
        Outcome::Bundle { message, .. } | Outcome::Prepared { message, .. } => message(1),
        Outcome::Done(message) => message,
    };
    for ip in ["203.0.113.50", "1.1.1.1"] {
        let entity = sco("ipv4-addr", ip);
        let through_web = message(web.enrich(&request_for(entity.clone())).await.unwrap());
        let through_files = message(local.enrich(&request_for(entity)).await.unwrap());
        assert_eq!(through_files, through_web, "{ip}");
    }
    // Two countries, the AS and the three links to them.
    let entity = sco("ipv4-addr", "203.0.113.50");
    assert_eq!(
        message(local.enrich(&request_for(entity)).await.unwrap()),
        "IVRE: data ok (6 objects); sent 1 stix bundle(s) for worker import"
    );
}

/// `check-config` with IVRE's data purpose in `dir`.
fn check_config(dir: &str) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .current_dir(std::env::temp_dir())
        .env_remove("CONFIG_FILE")
        .env("OPENCTI_URL", "http://opencti:8080")
        .env("OPENCTI_TOKEN", "t")
        .env("IVRE_ENABLED", "true")
        .env("IVRE_CONNECTOR_ID", uuid::Uuid::new_v4().to_string())
        .env("IVRE_DB_URL_DATA", format!("maxmind://{dir}"))
        .env("IVRE_USE_PASSIVE", "false")
        .env("IVRE_USE_SCANS", "false")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn missing_or_mistyped_files_fail_at_start_up_naming_the_path() {
    let (code, text) = check_config(&mmdb_dir());
    assert_eq!(code, Some(0), "{text}");

    let dir = crate::common::scratch_dir("ivre-mmdb");
    for f in ["GeoLite2-City.mmdb", "GeoLite2-Country.mmdb"] {
        std::fs::copy(format!("{}/{f}", mmdb_dir()), dir.join(f)).unwrap();
    }
    let (code, text) = check_config(&dir.to_string_lossy());
    assert_eq!(code, Some(2), "{text}");
    let asn = dir.join("GeoLite2-ASN.mmdb");
    assert!(
        text.contains(&format!("ivre: db_url_data: `{}`", asn.display())),
        "{text}"
    );

    // A City file under the ASN file's name.
    std::fs::copy(format!("{}/GeoLite2-City.mmdb", mmdb_dir()), &asn).unwrap();
    let (code, text) = check_config(&dir.to_string_lossy());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("is a GeoLite2-City database; expected GeoLite2-ASN"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
