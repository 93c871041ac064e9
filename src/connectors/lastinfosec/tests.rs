//! The lastinfosec connector's unit tests: its mapping over the fixtures, its config and its wording.
use crate::fixtures::fixture_json;
use serde_json::json;

use super::*;

/// [`upstream_objects`] of an answer given as a `Value`, read back as `Value`s.
fn objects_of(body: &serde_json::Value) -> Option<(Vec<serde_json::Value>, usize)> {
    let found = Found::parse(&serde_json::to_vec(body).unwrap()).unwrap();
    upstream_objects(found, None)
        .map(|(objects, dropped)| (objects.iter().map(Prepared::to_value).collect(), dropped))
}

#[test]
fn each_found_fixture_yields_its_bundle_objects() {
    let (objects, dropped) = objects_of(&fixture_json(
        "lastinfosec",
        "stix21_search_hash_found_constructed.json",
    ))
    .unwrap();
    assert_eq!((objects.len(), dropped), (8, 0));
    let (objects, dropped) = objects_of(&fixture_json(
        "lastinfosec",
        "stix21_search_domain_found_constructed.json",
    ))
    .unwrap();
    assert_eq!((objects.len(), dropped), (5, 0));
    assert!(objects.iter().any(|o| o["type"] == "attack-pattern"));
}

#[test]
fn envelopes_may_be_empty_or_carry_extra_keys() {
    assert!(objects_of(&json!({"message": []})).is_none());
    assert!(objects_of(&json!({"status": "ok"})).is_none());
    assert!(
        objects_of(&fixture_json(
            "lastinfosec",
            "error_422_not_found_constructed.json"
        ))
        .is_none()
    );
    let mut body = fixture_json("lastinfosec", "stix21_search_domain_found_constructed.json");
    body["headers"] = json!({"count": 1});
    body["message"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bundle", "objects": []}));
    assert_eq!(
        objects_of(&body).unwrap().0.len(),
        5,
        "the first bundle, extra keys ignored"
    );
}

#[test]
fn malformed_objects_are_dropped_not_fatal() {
    let body = json!({"message": [{"type": "bundle", "objects": [
        {"type": "indicator", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "pattern": "[x]"},
        {"type": "indicator", "id": "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
        {"type": "indicator", "id": "indicator--not-a-uuid"},
        {"id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
        {"type": "relationship", "id": "relationship--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "source_ref": "a--b"},
        "not an object"
    ]}]});
    let (objects, dropped) = objects_of(&body).unwrap();
    assert_eq!((objects.len(), dropped), (1, 5));
}

#[test]
fn the_external_reference_goes_on_the_enriched_observable_once() {
    let entity = json!({"id": "domain-name--x", "type": "domain-name", "value": "example.net"});
    let other = json!({"id": "marking-definition--m", "type": "marking-definition"});
    let once = with_external_reference(&[entity, other.clone()], "domain-name--x");
    let twice = with_external_reference(&once, "domain-name--x");
    assert_eq!(once, twice);
    assert_eq!(
        once[0]["x_opencti_external_references"],
        json!([{"source_name": "Last Info Sec", "url": "https://api.client.lastinfosec.com/v2/stix21/search/", "description": "LastInfoSec Threat Feed"}])
    );
    assert_eq!(once[1], other);
    assert_eq!(
        crate::stix::ids::external_reference_id(Some(EXTERNAL_REFERENCE_URL), None, None).unwrap(),
        "external-reference--bc08047a-8b5c-52a9-a251-1a864d9c4ce7"
    );
}

#[test]
fn files_are_looked_up_by_their_strongest_hash() {
    let file = json!({"type": "file", "hashes": {"MD5": "d41d8cd98f00b204e9800998ecf8427e", "SHA-256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}});
    assert_eq!(
        strongest_hash(&file).unwrap(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        strongest_hash(&json!({"type": "file", "name": "x.exe"})),
        None
    );
}

#[test]
fn error_texts_keep_the_reference_shape_without_the_key() {
    let url = reqwest::Url::parse(
        "https://api.client.lastinfosec.com/v2/stix21/search/?api_key=SECRET&platform=opencti",
    )
    .unwrap();
    let text = status_text(reqwest::StatusCode::FORBIDDEN, &url);
    assert_eq!(
        text,
        "403 Client Error: Forbidden for url: https://api.client.lastinfosec.com/v2/stix21/search/?api_key=**redacted**&platform=opencti"
    );
    assert!(
        status_text(reqwest::StatusCode::BAD_GATEWAY, &url)
            .starts_with("502 Server Error: Bad Gateway")
    );
}

#[test]
fn the_reference_joins_the_references_the_platform_exported() {
    let ext = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";
    let existing = json!({"source_name": "VirusTotal", "url": "https://www.virustotal.com/x"});
    let entity = json!({"id": "file--x", "type": "file", "extensions": {ext: {"id": "i", "external_references": [existing]}}});
    let out = with_external_reference(&[entity], "file--x");
    let refs = out[0]["extensions"][ext]["external_references"]
        .as_array()
        .unwrap();
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert_eq!(refs[0]["source_name"], "VirusTotal");
    assert_eq!(refs[1]["source_name"], "Last Info Sec");
    assert!(
        out[0].get("x_opencti_external_references").is_none(),
        "not where the platform would ignore it"
    );
    // Without exported references, the top-level property, as before.
    let bare = json!({"id": "file--y", "type": "file", "extensions": {ext: {"id": "j"}}});
    let out = with_external_reference(&[bare], "file--y");
    assert_eq!(
        out[0]["x_opencti_external_references"][0]["source_name"],
        "Last Info Sec"
    );
}

#[test]
fn the_answer_is_kept_as_text_and_an_upstream_copy_of_the_entity_is_left_out() {
    let body = fixture_json("lastinfosec", "stix21_search_domain_found_constructed.json");
    let bytes = serde_json::to_vec(&body).unwrap();
    let found = Found::parse(&bytes).unwrap();
    let (all, _) = upstream_objects(found.clone(), None).unwrap();
    let first = all[0].id.clone();
    let (kept, dropped) = upstream_objects(found, Some(&first)).unwrap();
    assert_eq!((kept.len(), dropped), (all.len() - 1, 0));
    assert!(kept.iter().all(|o| o.id != first));
    // Each object is the compact text of the upstream's, with its references known.
    for (prepared, original) in all
        .iter()
        .zip(body["message"][0]["objects"].as_array().unwrap())
    {
        assert_eq!(prepared.json, original.to_string());
    }
    assert!(Found::parse(b"not json").is_err());
    assert!(
        upstream_objects(
            Found::parse(br#"{"message": {"objects": "nope"}}"#).unwrap(),
            None
        )
        .is_none()
    );
    let one = Found::parse(br#"{"message": {"type": "bundle", "objects": []}}"#).unwrap();
    assert_eq!(
        upstream_objects(one, None).unwrap().0.len(),
        0,
        "one bundle, not a list"
    );
}
