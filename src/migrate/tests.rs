//! The migration: recognition, mapping through the key table, interpolation, secrets.
use super::*;

fn official(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/migrate/official/{name}.docker-compose.yml",
        env!("CARGO_MANIFEST_DIR")
    ))
}

#[test]
fn the_official_ipinfo_file_maps_every_variable_it_can() {
    let m = migrate(&[official("ipinfo")]).unwrap();
    assert_eq!(m.sections, ["ipinfo"]);
    let config: serde_yaml::Value = serde_yaml::from_str(&m.yaml).unwrap();
    assert_eq!(config["opencti"]["url"], "http://localhost");
    let ipinfo = &config["ipinfo"];
    assert_eq!(ipinfo["enabled"], true);
    assert_eq!(ipinfo["connector"]["name"], "IpInfo");
    assert_eq!(ipinfo["connector"]["scope"], "IPv4-Addr,IPv6-Addr");
    assert_eq!(ipinfo["connector"]["auto"], true);
    assert_eq!(ipinfo["connector"]["confidence_level"], 75);
    assert_eq!(ipinfo["connector"]["log_level"], "error");
    assert_eq!(ipinfo["max_tlp"], "TLP:AMBER");
    assert_eq!(ipinfo["use_asn_name"], true);
    // The placeholders are reported with the key to set, never written.
    for name in ["OPENCTI_TOKEN", "CONNECTOR_ID", "IPINFO_TOKEN"] {
        assert!(
            m.unmapped
                .iter()
                .any(|u| u.contains(name) && u.contains("placeholder")),
            "{name}: {:?}",
            m.unmapped
        );
    }
    assert!(!m.yaml.contains("ChangeMe"), "{}", m.yaml);
    assert!(m.secrets.is_empty());
}

#[test]
fn secrets_go_to_the_env_file_by_the_daemon_s_names() {
    let dir = std::env::temp_dir().join(format!("occ-migrate-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let compose = dir.join("docker-compose.yml");
    std::fs::write(
        &compose,
        "services:\n  connector-lastinfosec-enrichment:\n    image: opencti/connector-lastinfosec-enrichment:6.8.9\n    environment:\n      OPENCTI_URL: http://opencti:8080\n      OPENCTI_TOKEN: ${OPENCTI_ADMIN_TOKEN}\n      CONNECTOR_ID: 0f0e3e2a-6d8e-4c1b-9a7f-3b2c1d0e9f8a\n      CONFIG_LIS_APIKEY_CTI: \"lis key with blanks\"\n      CONNECTOR_AUTO: 'false'\n      HTTP_PROXY: http://proxy:3128\n  ivre:\n    image: opencti/connector-ivre:latest\n    env_file: ivre.env\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "OPENCTI_ADMIN_TOKEN=admin-token-from-dotenv\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ivre.env"),
        "# IVRE\nCONNECTOR_ID=7c5a1d2e-0b3f-4e6a-8d9c-1f2e3a4b5c6d\nIVRE_DB_URL=https://ivre.example/cgi#X-API-Key=ivre-secret\nIVRE_MAX_TLP=TLP:GREEN\n",
    )
    .unwrap();
    let m = migrate(&[compose]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(m.sections, ["lastinfosec", "ivre"]);
    assert_eq!(
        m.secrets,
        BTreeMap::from([
            (
                "IVRE_API_BASE_URL".into(),
                "https://ivre.example/cgi#X-API-Key=ivre-secret".into()
            ),
            (
                "LASTINFOSEC_API_KEY_CTI".into(),
                "lis key with blanks".into()
            ),
            ("OPENCTI_TOKEN".into(), "admin-token-from-dotenv".into()),
            ("PROXY_HTTP_PROXY".into(), "http://proxy:3128".into()),
        ])
    );
    assert!(
        m.env_file
            .contains("LASTINFOSEC_API_KEY_CTI=\"lis key with blanks\"\n"),
        "{}",
        m.env_file
    );
    for secret in ["admin-token", "lis key", "ivre-secret"] {
        assert!(!m.yaml.contains(secret), "{secret} in\n{}", m.yaml);
    }
    let config: serde_yaml::Value = serde_yaml::from_str(&m.yaml).unwrap();
    assert_eq!(
        config["lastinfosec"]["connector"]["id"],
        "0f0e3e2a-6d8e-4c1b-9a7f-3b2c1d0e9f8a"
    );
    assert_eq!(config["lastinfosec"]["connector"]["auto"], false);
    assert_eq!(
        config["ivre"]["connector"]["id"],
        "7c5a1d2e-0b3f-4e6a-8d9c-1f2e3a4b5c6d"
    );
    assert_eq!(config["ivre"]["max_tlp"], "TLP:GREEN");
    // The proxy variables are carried over (a proxy URL may hold credentials: env file).
    assert!(
        m.mapped.iter().any(|u| u
            == "connector-lastinfosec-enrichment: HTTP_PROXY -> PROXY_HTTP_PROXY (env file: a secret)"),
        "{:?}",
        m.mapped
    );

    // What came out loads, with the secrets from the env file.
    let env: HashMap<String, String> = m.secrets.clone().into_iter().collect();
    let loaded = registry::Config::from_sources(Some(&m.yaml), &env).unwrap();
    let built = registry::build_all(&loaded).unwrap();
    let ids: Vec<String> = built.iter().map(|(s, _)| s.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "0f0e3e2a-6d8e-4c1b-9a7f-3b2c1d0e9f8a",
            "7c5a1d2e-0b3f-4e6a-8d9c-1f2e3a4b5c6d"
        ]
    );
}

#[test]
fn interpolation_follows_docker_compose() {
    let dotenv = HashMap::from([
        ("A".to_string(), "x".to_string()),
        ("E".to_string(), String::new()),
    ]);
    let mut unmapped = Vec::new();
    let mut i = |t: &str| interpolate(t, &dotenv, "s", "N", &mut unmapped);
    assert_eq!(i("${A}-$A-$$A"), "x-x-$A");
    assert_eq!(i("${E:-d}|${E-d}|${NOPE_OCC_MIGRATE:-d}"), "d||d");
    assert_eq!(i("cost $ 5"), "cost $ 5");
    assert_eq!(i("${NOPE_OCC_MIGRATE}"), "");
    assert_eq!(unmapped.len(), 1, "{unmapped:?}");
}

#[test]
fn unknown_services_and_a_second_copy_are_reported_and_nothing_recognised_is_an_error() {
    let m = migrate(&[
        official("ipsum"),
        official("lastinfosec-feed"),
        official("ipsum"),
    ])
    .unwrap();
    assert_eq!(m.sections, ["ipsum"]);
    assert!(
        m.unmapped
            .iter()
            .any(|u| u.contains("connector-lastinfosec-feed") && u.contains("not one of"))
    );
    assert!(
        m.unmapped
            .iter()
            .any(|u| u.contains("a second ipsum service"))
    );
    let err = migrate(&[official("lastinfosec-feed")]).unwrap_err();
    assert!(err.contains("opencti/connector-ipinfo"), "{err}");
}

#[test]
fn riskiq_s_max_tlp_is_written_when_set_and_its_stricter_default_reported_when_not() {
    let dir = std::env::temp_dir().join(format!("occ-migrate-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, max_tlp: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("services:\n  connector-riskiq-passive-total:\n    image: opencti/connector-riskiq-passive-total:6.8.10\n    environment:\n      - CONNECTOR_ID=5d1f6a0e-8c3b-4f2a-9e7d-2b4c6d8e0f12\n{max_tlp}"),
        )
        .unwrap();
        path
    };
    let set = migrate(&[write("set.yml", "      - RISKIQ_MAX_TLP=TLP:RED\n")]).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&set.yaml).unwrap();
    assert_eq!(config["riskiq"]["max_tlp"], "TLP:RED");
    assert!(
        set.mapped.contains(
            &"connector-riskiq-passive-total: RISKIQ_MAX_TLP -> riskiq.max_tlp".to_string()
        ),
        "{:?}",
        set.mapped
    );
    assert!(
        !set.unmapped.iter().any(|u| u.contains("max_tlp")),
        "{:?}",
        set.unmapped
    );
    let unset = migrate(&[write("unset.yml", "")]).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&unset.yaml).unwrap();
    assert!(config["riskiq"].get("max_tlp").is_none(), "{}", unset.yaml);
    assert!(
        unset.unmapped.contains(&"connector-riskiq-passive-total: RISKIQ_MAX_TLP is not set, so the daemon's default riskiq.max_tlp: TLP:AMBER applies (the official connector then sends every TLP; set TLP:RED for that)".to_string()),
        "{:?}",
        unset.unmapped
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_official_name_of_a_key_maps_back_to_that_key() {
    let keys = registry::all_keys();
    let mut checked = 0;
    for official in RECOGNISED.iter() {
        let section = official.section;
        for key in keys
            .iter()
            .filter(|k| k.path.starts_with(&format!("{section}.")))
        {
            for name in official_names(key, section) {
                let found = official_key(&keys, section, &name).map(|k| k.path.as_str());
                assert_eq!(found, Some(key.path.as_str()), "{name}");
                checked += 1;
            }
        }
    }
    // id, name, scope, confidence_level, log_level, queue_protocol and the kind's own, for
    // every connector.
    assert!(checked >= 5 * 8, "{checked}");
    let keys_of =
        |section: &str, name: &str| official_key(&keys, section, name).map(|k| k.path.clone());
    assert_eq!(
        keys_of("ipsum", "CONNECTOR_IPSUM_API_KEY").as_deref(),
        Some("ipsum.api_key")
    );
    assert_eq!(
        keys_of("ipinfo", "OPENCTI_URL").as_deref(),
        Some("opencti.url")
    );
    assert_eq!(keys_of("ipinfo", "CONNECTOR_RUN_AND_TERMINATE"), None);
}

#[test]
fn a_service_that_sets_no_connector_id_keeps_its_images_default_id() {
    // The official IPsum file leaves CONNECTOR_ID commented out: that image registers with
    // its default id, so the migrated configuration must too (the same connector, its state).
    let m = migrate(&[official("ipsum")]).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&m.yaml).unwrap();
    assert_eq!(
        config["ipsum"]["connector"]["id"],
        "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"
    );
    assert!(
        m.mapped
            .iter()
            .any(|l| l.contains("CONNECTOR_ID not set") && l.contains("default")),
        "{:?}",
        m.mapped
    );
    // An image without a UUID default (IPinfo's is `ipinfo--…`) gets none: the placeholder
    // is reported instead.
    let m = migrate(&[official("ipinfo")]).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&m.yaml).unwrap();
    assert!(
        config["ipinfo"]["connector"].get("id").is_none(),
        "{}",
        m.yaml
    );
}

#[test]
fn the_official_manifest_slugs() {
    let slugs: Vec<_> = ["ipinfo", "ipsum", "riskiq", "lastinfosec", "ivre"]
        .into_iter()
        .map(manifest_slug)
        .collect();
    assert_eq!(
        slugs,
        [
            Some("ipinfo"),
            Some("ipsum"),
            Some("riskiq-passive-total"),
            Some("lastinfosec-enrichment"),
            Some("ivre"),
        ]
    );
    assert_eq!(manifest_slug("importer"), None);
}
