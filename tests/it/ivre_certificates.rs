//! IVRE on an X509-Certificate that OpenCTI knows by the hash in its observable value: the
//! certificate IVRE returns is the enriched entity, whatever its `hashes` hold.

use crate::common::*;
use crate::ivre_e2e::{connector, ivre, ivre_server, relationships};
use opencti_connectors::connectors::Outcome;
use serde_json::{Value, json};

const SHA256: &str = "9b04dcc7739983075f59d497edfd7b908a6c3c1c371ad477ed523a5c735c6e25";

#[tokio::test]
async fn a_certificate_known_by_its_observable_value_gets_ivre_s_properties() {
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
    // Its `hashes` hold none of IVRE's algorithms; OpenCTI shows it by its SHA-256.
    let sha512 = "0f".repeat(64);
    let id = "x509-certificate--7f0e1a8c-3b51-5b5e-8d0c-2d1b6f0a9e11";
    let entity = json!({"id": id, "type": "x509-certificate", "spec_version": "2.1",
                        "hashes": {"SHA-512": sha512}});
    let mut request = request_for(entity);
    request.observable_value = Some(SHA256.to_uppercase());
    let Outcome::Bundle { objects, .. } = c.enrich(&request).await.unwrap() else {
        panic!("IVRE found the certificate");
    };
    let certs: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "x509-certificate")
        .collect();
    assert_eq!(certs.len(), 1, "no second certificate: {certs:#?}");
    assert_eq!(certs[0]["id"], id);
    assert_eq!(certs[0]["hashes"]["SHA-512"], sha512);
    assert_eq!(certs[0]["hashes"]["SHA-256"], SHA256);
    assert_eq!(certs[0]["subject"], "commonName=www.example.com");
    let rels = relationships(&objects);
    let to_cert: Vec<_> = rels
        .iter()
        .filter(|(_, r, t, _, _)| r == "related-to" && t.starts_with("x509-certificate:"))
        .collect();
    assert_eq!(to_cert.len(), 2, "passive and scans: {rels:?}");
    assert!(
        objects
            .iter()
            .filter(|o| o["type"] == "relationship")
            .filter(|o| o["relationship_type"] == "related-to")
            .all(|r| r["target_ref"] == id)
    );
}
