//! Numbers and their ranges, and the defaults a partly set value keeps.

use super::*;

#[test]
fn absurd_periods_and_ping_intervals_are_rejected_at_start_up() {
    let mut e = ipinfo_env();
    e.push(("IPSUM_ENABLED", "true"));
    e.push(("IPSUM_CONNECTOR_ID", "9b7c2e14-3f5a-4d8b-9c1e-6a2f4b8d0e37"));
    e.push(("IPSUM_CONNECTOR_DURATION_PERIOD", "P5Y"));
    e.push(("DAEMON_PING_INTERVAL", "PT0.1S"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipsum.connector.duration_period (env IPSUM_CONNECTOR_DURATION_PERIOD): `P5Y` is out of range; allowed: PT1S to P365D"),
        "{err}"
    );
    assert!(
        err.contains("daemon.ping_interval (env DAEMON_PING_INTERVAL): `PT0.1S` is out of range; allowed: PT1S to PT5M"),
        "{err}"
    );
    let mut e = ipinfo_env();
    e.push(("IPINFO_REQUEST_TIMEOUT", "P999999999999Y"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.request_timeout") && err.contains("too long"),
        "{err}"
    );
}

#[test]
fn rate_limits_are_requests_a_second_and_never_negative() {
    let mut e = ipinfo_env();
    e.push(("IPINFO_RATE_LIMIT", "0.5"));
    let c = Config::from_sources(None, &env(&e)).unwrap();
    assert_eq!(c.ipinfo.rate_limit, 0.5);
    assert_eq!(c.riskiq.rate_limit, 0.0, "no limit unless configured");

    let mut e = ipinfo_env();
    e.push(("IPINFO_RATE_LIMIT", "-2"));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ipinfo.rate_limit (env IPINFO_RATE_LIMIT): `-2` is out of range; allowed: 0, or 0.001 to 10000"),
        "{err}"
    );
}

#[test]
fn numbers_outside_their_range_are_refused_naming_the_key_its_variable_and_the_range() {
    let mut numbers = 0;
    for key in all_keys() {
        // The ends of the range and the default are accepted; just past either end is not.
        let (mut inside, outside) = match key.kind {
            Kind::Int(r) => (
                vec![r.min.to_string(), r.max.to_string()],
                vec![(r.min - 1).to_string(), (r.max + 1).to_string()],
            ),
            Kind::Float(r) => {
                let mut inside = vec![r.min.to_string(), r.max.to_string()];
                if r.or_zero {
                    inside.push("0".into());
                }
                (
                    inside,
                    vec![
                        (r.min / 2.0).to_string(),
                        (r.max * 2.0).to_string(),
                        "-1".into(),
                    ],
                )
            }
            Kind::Duration(r) => {
                let mut outside =
                    vec![IsoDuration(r.max + std::time::Duration::from_secs(1)).to_string()];
                if !r.min.is_zero() {
                    outside
                        .push(IsoDuration(r.min - std::time::Duration::from_millis(1)).to_string());
                }
                (
                    vec![
                        IsoDuration(r.min).to_string(),
                        IsoDuration(r.max).to_string(),
                    ],
                    outside,
                )
            }
            _ => continue,
        };
        numbers += 1;
        if !key.default.is_empty() {
            inside.push(key.default.clone());
        }
        let range = key.kind.range().unwrap();
        // The retry budget must fit twice under the consumer timeout: the other of the two
        // takes room for the ends of each.
        let partner = match key.path.as_str() {
            "mq.consumer_timeout" => Some(("DAEMON_MAX_RETRY_DURATION", "PT10S")),
            "daemon.max_retry_duration" => Some(("MQ_CONSUMER_TIMEOUT", "P30D")),
            _ => None,
        };
        for value in &inside {
            let mut e = every_connector_env(&[(&key.env[0], value)]);
            e.extend(partner.map(|(k, v)| (k.to_string(), v.to_string())));
            let loaded =
                Config::from_sources(None, &e).and_then(|c| build_all(&c).map(|built| built.len()));
            assert_eq!(
                loaded.ok(),
                Some(specs().len()),
                "{} = {value} is within {range}",
                key.path
            );
        }
        for value in &outside {
            let e = every_connector_env(&[(&key.env[0], value)]);
            let err = Config::from_sources(None, &e).unwrap_err().to_string();
            let want = format!(
                "{} (env {}): `{value}` is out of range; allowed: {range}",
                key.path, key.env[0]
            );
            assert!(err.contains(&want), "{want}\nmissing from: {err}");
        }
    }
    assert!(numbers >= 30, "{numbers} numeric keys");
}

#[test]
fn numbers_in_the_file_are_checked_and_empty_keys_take_their_default() {
    for (yaml, want) in [
        (
            "ipinfo:\n  rate_limit: 1e-20\n",
            "ipinfo.rate_limit (env IPINFO_RATE_LIMIT): `1e-20` is out of range; allowed: 0, or 0.001 to 10000",
        ),
        (
            "ipinfo:\n  rate_limit: .nan\n",
            "ipinfo.rate_limit (env IPINFO_RATE_LIMIT): `.nan` is out of range",
        ),
        (
            "ipinfo:\n  cache:\n    ttl: P400D\n",
            "ipinfo.cache.ttl (env IPINFO_CACHE_TTL): `P400D` is out of range; allowed: PT0S to P365D",
        ),
        (
            "ipinfo:\n  cache:\n    capacity: 18446744073709551615\n",
            "ipinfo.cache.capacity (env IPINFO_CACHE_CAPACITY): `18446744073709551615` is out of range",
        ),
        (
            "ipsum:\n  api_key: k\n  default_x_opencti_score: '101'\n",
            "ipsum.default_x_opencti_score (env IPSUM_DEFAULT_X_OPENCTI_SCORE or CONNECTOR_IPSUM_DEFAULT_X_OPENCTI_SCORE): `101` is out of range; allowed: 0 to 100",
        ),
        (
            "daemon:\n  ping_interval: 0\n",
            "daemon.ping_interval (env DAEMON_PING_INTERVAL): `0` is out of range; allowed: PT1S to PT5M",
        ),
    ] {
        let err = Config::from_sources(Some(yaml), &env(&ipinfo_env()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want}\nmissing from: {err}");
    }
    let yaml =
        "log:\n  level:\nipinfo:\n  rate_limit:\n  cache:\n    ttl:\n  request_timeout: 45\n";
    let c = Config::from_sources(Some(yaml), &env(&ipinfo_env())).unwrap();
    assert_eq!(c.log.level, "info");
    assert_eq!(c.ipinfo.rate_limit, 0.0);
    assert_eq!(c.ipinfo.cache.ttl.0.as_secs(), 86400);
    assert_eq!(
        c.ipinfo.request_timeout.0.as_secs(),
        45,
        "a number of seconds"
    );
}

#[test]
fn a_partly_set_cache_keeps_its_connector_s_other_defaults() {
    let mut e = ipinfo_env();
    e.push(("IPINFO_CACHE_CAPACITY", "5000"));
    e.push(("IVRE_CACHE_MAX_BYTES", "1024"));
    let c =
        Config::from_sources(Some("lastinfosec:\n  cache:\n    capacity: 7\n"), &env(&e)).unwrap();
    assert_eq!(c.ipinfo.cache.capacity, 5000);
    assert_eq!(
        c.ipinfo.cache.ttl.0.as_secs(),
        86400,
        "IPinfo's TTL, not the cache's zero"
    );
    assert_eq!(
        c.ipinfo.cache.max_bytes,
        crate::upstream::cache::DEFAULT_MAX_BYTES
    );
    assert_eq!(c.ivre.cache.ttl.0.as_secs(), 3600);
    assert_eq!(c.ivre.cache.capacity, 10_000);
    assert_eq!(
        c.lastinfosec.cache.ttl.0.as_secs(),
        0,
        "LastInfoSec caches nothing by default"
    );
    assert_eq!(c.lastinfosec.cache.capacity, 7);
}

#[test]
fn riskiq_sends_nothing_above_tlp_amber_unless_told() {
    use crate::stix::Tlp;
    let riskiq = |yaml: Option<&str>, extra: &[(&'static str, &'static str)]| {
        let mut e = vec![
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "secret-token"),
            ("RISKIQ_ENABLED", "true"),
            (
                "RISKIQ_CONNECTOR_ID",
                "5d1f6a0e-8c3b-4f2a-9e7d-2b4c6d8e0f12",
            ),
            ("RISKIQ_USERNAME", "u"),
            ("RISKIQ_API_KEY", "k"),
        ];
        e.extend_from_slice(extra);
        let config = Config::from_sources(yaml, &env(&e)).unwrap();
        match build_all(&config).unwrap().remove(0).1 {
            crate::connectors::Hosted::Enrichment(c) => c.max_tlp(),
            crate::connectors::Hosted::Import(_) => panic!("riskiq enriches"),
        }
    };
    assert_eq!(riskiq(None, &[]), Some(Tlp::Amber));
    // The sample used to leave it empty for "no restriction": empty is now the default.
    assert_eq!(riskiq(Some("riskiq:\n  max_tlp:\n"), &[]), Some(Tlp::Amber));
    assert_eq!(
        riskiq(None, &[("RISKIQ_MAX_TLP", "TLP:RED")]),
        Some(Tlp::Red)
    );
    assert_eq!(
        riskiq(Some("riskiq:\n  max_tlp: TLP:GREEN\n"), &[]),
        Some(Tlp::Green)
    );
}
