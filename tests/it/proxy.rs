//! Proxies as a corporate network has them: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
//! `NO_PROXY` apply to every client, through a local forward proxy (CONNECT for https) that
//! records what went through it; LastInfoSec's own proxy replaces only its target's and keeps
//! `NO_PROXY`; `check-config --online` prints each target's route without credentials.

use base64::Engine;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::forward_proxy::ForwardProxy;
use crate::common::pki::{https_server, pki};
use crate::common::*;
use opencti_connectors::connectors::Hosted;

fn enrichment(
    hosted: Hosted,
) -> std::sync::Arc<dyn opencti_connectors::connectors::EnrichmentConnector> {
    match hosted {
        Hosted::Enrichment(c) => c,
        Hosted::Import(_) => unreachable!("an enrichment connector"),
    }
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn https_upstream_calls_tunnel_through_https_proxy_with_its_credentials() {
    let pki = pki();
    let url = https_server(
        pki.acceptor.clone(),
        fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
    )
    .await;
    let proxy = ForwardProxy::start().await;
    let ipinfo = enrichment(
        build_connector(
            "ipinfo",
            &[("IPINFO_TOKEN", "k"), ("IPINFO_API_BASE_URL", &url)],
            &[
                ("HTTPS_CA_CERTIFICATES", &pki.ca_pem),
                ("HTTPS_PROXY", &proxy.url_with("corp", "hunter2")),
            ],
        )
        .1,
    );
    let outcome = ipinfo.enrich(&request_for(ip_stix(GREEN))).await.unwrap();
    assert!(format!("{outcome:?}").starts_with("Bundle("), "{outcome:?}");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, url.trim_start_matches("https://"));
    assert_eq!(seen[0].authorization, Some(basic("corp", "hunter2")));
}

async fn ipinfo_upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn http_calls_go_through_all_proxy_unless_no_proxy_names_the_host() {
    let upstream = ipinfo_upstream().await;
    let proxy = ForwardProxy::start().await;
    for (no_proxy, through) in [("", true), ("localhost, 127.0.0.0/8", false), ("*", false)] {
        let before = proxy.seen().len();
        let ipinfo = enrichment(
            build_connector(
                "ipinfo",
                &[
                    ("IPINFO_TOKEN", "k"),
                    ("IPINFO_API_BASE_URL", &upstream.uri()),
                ],
                &[("all_proxy", &proxy.url), ("NO_PROXY", no_proxy)],
            )
            .1,
        );
        let outcome = ipinfo.enrich(&request_for(ip_stix(GREEN))).await.unwrap();
        assert!(format!("{outcome:?}").starts_with("Bundle("), "{outcome:?}");
        let seen = &proxy.seen()[before..];
        if through {
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(seen[0].method, "GET");
            assert_eq!(seen[0].target, format!("{}/8.8.8.8/json", upstream.uri()));
            assert_eq!(seen[0].authorization, None);
        } else {
            assert!(seen.is_empty(), "NO_PROXY={no_proxy}: {seen:?}");
        }
    }
}

#[tokio::test]
async fn lastinfosec_own_proxy_replaces_only_its_target_and_keeps_no_proxy() {
    let lis = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422))
        .mount(&lis)
        .await;
    let own = ForwardProxy::start().await;
    let env_proxy = ForwardProxy::start().await;
    let build = |no_proxy: &str| {
        enrichment(
            build_connector(
                "lastinfosec",
                &[
                    ("CONFIG_LIS_APIKEY_CTI", "lis-key"),
                    ("LASTINFOSEC_API_BASE_URL", &lis.uri()),
                    ("PROXY_HTTP", &own.url),
                ],
                &[("HTTP_PROXY", &env_proxy.url), ("NO_PROXY", no_proxy)],
            )
            .1,
        )
    };
    build("").check_upstream().await.unwrap();
    assert_eq!(
        own.seen().len(),
        1,
        "LastInfoSec's own proxy: {:?}",
        own.seen()
    );
    assert!(env_proxy.seen().is_empty(), "{:?}", env_proxy.seen());
    build("127.0.0.1").check_upstream().await.unwrap();
    assert_eq!(
        own.seen().len(),
        1,
        "NO_PROXY still applies: {:?}",
        own.seen()
    );
    assert!(env_proxy.seen().is_empty());
}

#[tokio::test]
async fn check_config_online_prints_each_route_without_credentials() {
    let proxy = ForwardProxy::start().await;
    let proxy_url = proxy.url_with("corp", "hunter2");
    let port = proxy.url.rsplit(':').next().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::common::daemon::BIN)
            .env_clear()
            .args(["check-config", "--online"])
            .envs([
                ("OPENCTI_URL", "http://127.0.0.1:1"),
                ("OPENCTI_TOKEN", "t"),
                ("IPINFO_ENABLED", "true"),
                (
                    "IPINFO_CONNECTOR_ID",
                    "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60",
                ),
                ("IPINFO_TOKEN", "k"),
                ("IPINFO_API_BASE_URL", "https://127.0.0.1:2"),
                ("HTTPS_PROXY", proxy_url.as_str()),
                ("NO_PROXY", "opencti.internal"),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "route opencti: http://127.0.0.1:1/ direct".to_string(),
        format!(
            "route ipinfo: https://127.0.0.1:2/ through http://**redacted**@127.0.0.1:{port} (proxy.https_proxy)"
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` in\n{text}");
    }
    assert!(
        !text.contains("hunter2") && !text.contains("corp"),
        "{text}"
    );
    assert_eq!(proxy.seen().len(), 1, "the upstream check went through it");
}

#[tokio::test]
async fn a_malformed_proxy_is_a_startup_error_that_does_not_show_it() {
    let env: std::collections::HashMap<String, String> = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "t"),
        ("https_proxy", "socks5://corp:hunter2@proxy:1080"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = opencti_connectors::registry::Config::from_sources(None, &env).unwrap();
    let err = config.egress().unwrap_err().to_string();
    assert!(
        err.contains("proxy.https_proxy (env PROXY_HTTPS_PROXY or https_proxy or HTTPS_PROXY)"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
