//! Every vector of `shared/fixtures/stix-id-vectors.json` (computed by stix2 / pycti).

use opencti_connectors::stix::canonical::canonical_json;
use opencti_connectors::stix::ids;
use serde_json::{Map, Value};

fn s<'a>(input: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

fn compute(kind: &str, input: &Map<String, Value>) -> String {
    match kind {
        "location" => ids::location_id(
            s(input, "name").unwrap_or(""),
            s(input, "x_opencti_location_type").unwrap(),
            input.get("latitude").and_then(Value::as_f64),
            input.get("longitude").and_then(Value::as_f64),
        ),
        "identity" => ids::identity_id(
            s(input, "name").unwrap(),
            s(input, "identity_class").unwrap(),
        ),
        "indicator" => ids::indicator_id(s(input, "pattern").unwrap()),
        "relationship" => ids::relationship_id(
            s(input, "relationship_type").unwrap(),
            s(input, "source_ref").unwrap(),
            s(input, "target_ref").unwrap(),
            s(input, "start_time"),
            s(input, "stop_time"),
        ),
        "sighting" => {
            let refs: Vec<String> = input["where_sighted_refs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            ids::sighting_id(
                s(input, "sighting_of_ref").unwrap(),
                &refs,
                s(input, "first_seen"),
                s(input, "last_seen"),
            )
        }
        "note" => ids::note_id(s(input, "content").unwrap(), s(input, "created")),
        "marking-definition" => ids::marking_definition_id(
            s(input, "definition_type").unwrap(),
            s(input, "definition").unwrap(),
        ),
        "external-reference" => ids::external_reference_id(
            s(input, "url"),
            s(input, "source_name"),
            s(input, "external_id"),
        )
        .unwrap(),
        "label" => ids::label_id(s(input, "value").unwrap()),
        "malware" => ids::named_sdo_id("malware", s(input, "name").unwrap()),
        observable => ids::observable_id(observable, input),
    }
}

#[test]
fn every_reference_vector_matches() {
    let text =
        std::fs::read_to_string(crate::common::shared("fixtures/stix-id-vectors.json")).unwrap();
    let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(vectors.len(), 95);
    let mut failures = Vec::new();
    for v in &vectors {
        let kind = v["kind"].as_str().unwrap();
        let input = v["input"].as_object().unwrap();
        let got = compute(kind, input);
        if got != v["expected_id"].as_str().unwrap() {
            failures.push(format!(
                "{kind} {input:?}: got {got}, want {}",
                v["expected_id"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn canonical_text_matches_for_sco_vectors() {
    let text =
        std::fs::read_to_string(crate::common::shared("fixtures/stix-id-vectors.json")).unwrap();
    let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
    for v in vectors
        .iter()
        .filter(|v| v["kind"] == "ipv4-addr" || v["kind"] == "autonomous-system")
    {
        let mut fields = v["input"].as_object().unwrap().clone();
        fields.remove("name");
        assert_eq!(
            canonical_json(&Value::Object(fields)),
            v["canonical_json"].as_str().unwrap()
        );
    }
}
