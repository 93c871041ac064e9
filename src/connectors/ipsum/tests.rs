//! The ipsum connector's unit tests: its mapping over the fixtures, its config, its wording
//! and a run's state.
use crate::fixtures::fixture;
use serde_json::json;

use super::*;

fn connector(tlp: &str, score: i64) -> IpsumConnector {
    let section = IpsumConfig {
        tlp_level: crate::config::TlpLevel(Tlp::parse_level(tlp).unwrap()),
        default_x_opencti_score: score,
        ..Default::default()
    };
    built(&section)
}

/// The importer of `section`, going out direct (no proxies, the web PKI).
fn built(section: &IpsumConfig) -> IpsumConnector {
    let settings = section.connector.resolve_unregistered(&SPEC);
    IpsumConnector::new(section, &BuildContext::new(&settings, None)).expect("connector")
}

#[test]
fn parses_every_fixture_with_exact_counts() {
    let p = parse(&fixture("ipsum", "levels/1.txt"));
    assert_eq!(
        (p.ips.len(), p.private, p.junk, p.comments),
        (120_430, 0, 0, 0)
    );
    assert!(p.ips.iter().all(|i| i.count.is_none()));
    let p = parse(&fixture("ipsum", "levels/5.txt"));
    assert_eq!((p.ips.len(), p.skipped()), (1_413, 0));
    assert_eq!(p.ips[0].ip.to_string(), "77.90.185.20");
    let p = parse(&fixture("ipsum", "levels/8.txt"));
    assert_eq!(p.ips.len(), 23);
    let p = parse(&fixture("ipsum", "ipsum.txt"));
    assert_eq!((p.ips.len(), p.comments, p.skipped()), (120_430, 7, 0));
    assert_eq!(p.ips[0].count, Some(10));
    // levels/5 is exactly the IPs of ipsum.txt counted at least 5 times, in order.
    let five: Vec<_> = p
        .ips
        .iter()
        .filter(|i| i.count >= Some(5))
        .map(|i| i.ip)
        .collect();
    let level5: Vec<_> = parse(&fixture("ipsum", "levels/5.txt"))
        .ips
        .into_iter()
        .map(|i| i.ip)
        .collect();
    assert_eq!(five, level5);
    let histogram = |c: u32| p.ips.iter().filter(|i| i.count == Some(c)).count();
    assert_eq!(
        [histogram(1), histogram(5), histogram(10)],
        [89_657, 1_095, 3]
    );
}

#[test]
fn ids_match_the_reference_vectors() {
    let c = connector("white", 60);
    let [obs, ind, rel] = c.objects_for(
        &FeedIp {
            ip: "1.2.3.4".parse().unwrap(),
            count: None,
        },
        "2026-08-22T01:10:00.000Z",
    );
    assert_eq!(obs["id"], "ipv4-addr--0198f97b-e65d-5025-87e5-58bc39d4bdb4");
    assert_eq!(ind["id"], "indicator--274128a4-2ad4-50b5-ae7b-b0dea1fa9861");
    assert_eq!(ind["pattern"], "[ipv4-addr:value = '1.2.3.4']");
    assert_eq!(
        rel["id"],
        "relationship--a787645d-9c70-51d7-b74a-91f3c0a88d3f"
    );
    assert_eq!(rel["relationship_type"], "based-on");
    assert_eq!(rel["source_ref"], ind["id"]);
    assert_eq!(rel["target_ref"], obs["id"]);
    assert_eq!(
        c.author["id"],
        "identity--4178f14f-6c2a-52d0-8e67-f111c9ad7560"
    );
    assert_eq!(c.author["description"], AUTHOR_DESCRIPTION);
}

#[test]
fn observable_matches_the_reference_shape() {
    let c = connector("white", 60);
    let [obs, ind, rel] = c.objects_for(
        &FeedIp {
            ip: "1.2.3.4".parse().unwrap(),
            count: None,
        },
        "t",
    );
    assert_eq!(
        obs,
        json!({"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--0198f97b-e65d-5025-87e5-58bc39d4bdb4","value":"1.2.3.4",
               "object_marking_refs":["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"],
               "x_opencti_score":60,
               "x_opencti_created_by_ref":"identity--4178f14f-6c2a-52d0-8e67-f111c9ad7560",
               "x_opencti_external_references":[{"source_name":"IPsum","description":"All lists are automatically retrieved and parsed on a daily (24h) basis.","url":"https://github.com/stamparm/ipsum/tree/master"}]})
    );
    for o in [&ind, &rel] {
        assert_eq!(
            o["created_by_ref"],
            "identity--4178f14f-6c2a-52d0-8e67-f111c9ad7560"
        );
        assert_eq!(
            o["object_marking_refs"],
            json!(["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"])
        );
    }
    assert_eq!(ind["x_opencti_main_observable_type"], "IPv4-Addr");
    assert_eq!(ind["pattern_type"], "stix");
}

#[test]
fn ipv6_gets_ipv6_objects_with_the_compressed_value() {
    let c = connector("green", 60);
    let [obs, ind, _] = c.objects_for(
        &FeedIp {
            ip: "2001:4860:4860:0:0:0:0:8888".parse().unwrap(),
            count: None,
        },
        "t",
    );
    assert_eq!(obs["type"], "ipv6-addr");
    assert_eq!(obs["id"], "ipv6-addr--177929b5-cd78-5bed-b828-8d7aac4151b0");
    assert_eq!(ind["pattern"], "[ipv6-addr:value = '2001:4860:4860::8888']");
    assert_eq!(
        obs["object_marking_refs"],
        json!(["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"])
    );
}

#[test]
fn tlp_levels_map_to_the_stix2_markings() {
    assert_eq!(connector("WHITE", 60).marking["name"], "TLP:WHITE");
    assert_eq!(
        connector("clear", 60).marking["id"],
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
    );
    assert_eq!(connector("amber", 60).marking["name"], "TLP:AMBER");
    assert_eq!(
        connector("red", 60).marking["definition"],
        json!({"tlp": "red"})
    );
    let strict = connector("amber+strict", 60).marking;
    assert_eq!(
        strict["id"],
        "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
    );
    assert_eq!(strict["x_opencti_definition"], "TLP:AMBER+STRICT");
}

#[test]
fn score_grows_with_the_count_around_the_default() {
    assert_eq!(score_for(None, 60), 60);
    let scores: Vec<u8> = (1..=10).map(|c| score_for(Some(c), 60)).collect();
    assert_eq!(scores, [20, 30, 40, 50, 60, 70, 80, 90, 100, 100]);
    assert!(scores.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(score_for(Some(1), 20), 10);
    assert_eq!(score_for(Some(0), 60), 10);
}

#[test]
fn invalid_settings_are_rejected_with_the_allowed_values() {
    let env: std::collections::HashMap<String, String> = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "t"),
        ("IPSUM_ENABLED", "true"),
        ("IPSUM_CONNECTOR_ID", "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"),
        ("IPSUM_TLP_LEVEL", "purple"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let errors = crate::registry::Config::from_sources(None, &env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("ipsum.tlp_level (env IPSUM_TLP_LEVEL or CONNECTOR_IPSUM_TLP_LEVEL)")
            && errors.contains("amber+strict"),
        "{errors}"
    );
    let mut env = env;
    env.remove("IPSUM_TLP_LEVEL");
    env.insert(
        "CONNECTOR_IPSUM_DEFAULT_X_OPENCTI_SCORE".into(),
        "101".into(),
    );
    let errors = crate::registry::Config::from_sources(None, &env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("ipsum.default_x_opencti_score (env CONNECTOR_IPSUM_DEFAULT_X_OPENCTI_SCORE): `101` is out of range; allowed: 0 to 100"),
        "{errors}"
    );
}

#[test]
fn the_default_period_is_the_references_six_hours() {
    let block = crate::config::ConnectorBlock {
        id: Some(uuid::Uuid::nil()),
        ..Default::default()
    };
    let mut checks = crate::config::Checks::new(&SPEC);
    let settings = block.resolve(&SPEC, &mut checks);
    assert!(checks.is_empty());
    assert_eq!(
        settings.mode,
        crate::config::Mode::Import {
            period: std::time::Duration::from_secs(6 * 3600),
            queue_threshold: 500.0,
        }
    );
    assert_eq!(settings.name, "IPsum");
    assert_eq!(settings.scope, vec!["ipsum"]);
}

#[test]
fn networks_expand_lazily_as_ips_are_taken() {
    // Almost 20 million addresses behind a few KB: taking the first ones must not expand the
    // rest (this would take seconds and gigabytes if it did).
    let body: String = (1..=300)
        .map(|i| format!("{}.{}.0.0/16\n", 1 + i / 250, i % 250))
        .collect();
    let started = std::time::Instant::now();
    let mut feed = Feed::new(&body);
    let first: Vec<FeedIp> = feed.by_ref().take(3).collect();
    assert_eq!(
        first.iter().map(|f| f.ip.to_string()).collect::<Vec<_>>(),
        ["1.1.0.1", "1.1.0.2", "1.1.0.3"]
    );
    assert_eq!(
        feed.by_ref().take(70_000).count(),
        70_000,
        "into the second network"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_run_s_prepared_chunk_splits_as_its_objects_would() {
    use crate::opencti::prepared::{Split, split_prepared};
    use crate::opencti::split::split;
    let connector = built(&IpsumConfig::default());
    let feed = crate::fixtures::fixture("ipsum", "levels/5.txt");
    let ips: Vec<FeedIp> = parse(&feed).ips.into_iter().take(700).collect();
    let now = "2026-01-01T00:00:00.000Z";
    let mut values = Vec::new();
    for ip in &ips {
        values.extend(connector.objects_for(ip, now));
    }
    values.push(connector.author.clone());
    values.push(connector.marking.clone());
    let generic = split(values, true);
    let Split::Prepared(prepared) = split_prepared(connector.chunk(&ips, now), true) else {
        panic!("a run's chunk needs no cleaning");
    };
    assert_eq!(generic.len(), prepared.len());
    for (g, p) in generic.iter().zip(&prepared) {
        let parsed: Value = serde_json::from_str(&p.json).expect("JSON");
        assert_eq!((&g.object, g.nb_deps), (&parsed, p.nb_deps));
    }
}

/// A run's context: the state handed in, the state set, the objects sent.
#[derive(Default)]
struct Recorded {
    stored: Option<Value>,
    set: Option<Value>,
    objects: usize,
}

#[async_trait]
impl ImportContext for Recorded {
    fn state(&self) -> Option<Value> {
        self.stored.clone()
    }
    fn set_state(&mut self, state: Value) {
        self.set = Some(state);
    }
    async fn send(&mut self, objects: Vec<Value>) -> Result<usize, ConnectorError> {
        self.objects += objects.len();
        Ok(1)
    }
    async fn send_prepared(&mut self, objects: Vec<Prepared>) -> Result<usize, ConnectorError> {
        self.objects += objects.len();
        Ok(1)
    }
}

#[tokio::test]
async fn a_malformed_state_does_not_stop_the_import() {
    let feed = crate::fixtures::shared("fixtures/ipsum/levels/8.txt");
    let connector = built(&IpsumConfig::default())
        .with_source(&FeedSource::File(feed.into()))
        .expect("a file source");
    let mut first = Recorded {
        stored: Some(
            json!({"last_run": 1767225600, "feed_sha256": 5, "etag": null, "other": "kept"}),
        ),
        ..Default::default()
    };
    let message = connector.run(&mut first).await.expect("the run");
    assert!(message.contains(": 23 IPs imported"), "{message}");
    assert_eq!(first.objects, 23 * 3 + 2);
    let set = first.set.expect("a new state");
    assert_eq!(set["last_run"].as_str().map(str::len), Some(19), "{set}");
    assert_eq!(set["feed_sha256"].as_str().map(str::len), Some(64), "{set}");
    assert_eq!((set.get("etag"), &set["other"]), (None, &json!("kept")));
    // Read back, the digest it wrote makes the same feed "unchanged".
    let mut again = Recorded {
        stored: Some(set),
        ..Default::default()
    };
    let message = connector.run(&mut again).await.expect("the run");
    assert!(
        message.ends_with("unchanged since the last run, nothing sent"),
        "{message}"
    );
    assert_eq!(again.objects, 0);
}
