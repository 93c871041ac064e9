//! No secret in any log line at any level: every connector runs at `log.level: trace` (with
//! the daemon's own filter) through a success, a failure and a redirect, every line is
//! captured, and none may hold any of the configured secrets. Debug output of the config and
//! of a registration is searched too.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::*;
use async_trait::async_trait;
use opencti_connectors::config::Kind;
use opencti_connectors::connectors::{ConnectorError, Hosted, ImportContext};
use opencti_connectors::registry::{Config, all_keys, build_all, specs};
use serde_json::{Value, json};
use wiremock::matchers::{any, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The secrets set outside the connectors' own secret keys (see [`section_secrets`]).
const SECRETS: &[&str] = &[
    "opencti-secret-token",
    "ivre-url-password",
    "mq-secret-pass",
    "proxy-secret-pass",
    "env-proxy-secret",
];

/// The value of the secret variable `name` here: `ipinfo-token-s3cret` for `IPINFO_TOKEN`.
fn secret_of(name: &str) -> String {
    format!("{}-s3cret", name.to_ascii_lowercase().replace('_', "-"))
}

/// Every secret key of every connector of the registry, by its variable, with its secret.
fn section_secrets() -> Vec<(String, String)> {
    let sections: Vec<String> = specs().iter().map(|s| format!("{}.", s.section)).collect();
    all_keys()
        .into_iter()
        .filter(|k| k.kind == Kind::Secret && sections.iter().any(|s| k.path.starts_with(s)))
        .map(|k| {
            let value = secret_of(&k.env[0]);
            (k.env[0].clone(), value)
        })
        .collect()
}

/// Everything written by the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An import context that accepts every chunk.
#[derive(Default)]
struct Accepting {
    state: Option<Value>,
}

#[async_trait]
impl ImportContext for Accepting {
    fn state(&self) -> Option<Value> {
        self.state.clone()
    }
    fn set_state(&mut self, state: Value) {
        self.state = Some(state);
    }
    async fn send(&mut self, objects: Vec<Value>) -> Result<usize, ConnectorError> {
        Ok(objects.len())
    }
    async fn send_prepared(
        &mut self,
        objects: Vec<opencti_connectors::opencti::prepared::Prepared>,
    ) -> Result<usize, ConnectorError> {
        Ok(objects.len())
    }
}

/// The daemon's config with every connector of the registry enabled against `base` (each at
/// `<base>/<section>`), all secrets set.
fn config(base: &str) -> Config {
    let mut env: std::collections::HashMap<String, String> =
        testkit::every_connector_env().into_iter().collect();
    env.extend(section_secrets());
    env.extend(testkit::upstreams_at(base));
    // IVRE's URL with a password and its key in the fragment; IPsum's feed, its key read
    // from a file; LastInfoSec's own proxy with credentials.
    let ivre_url = format!(
        "{}/ivre#X-API-Key={}",
        base.replace("http://", "http://ivre-user:ivre-url-password@"),
        secret_of("IVRE_API_KEY")
    );
    let key_file = std::env::temp_dir().join(format!("ipsum-key-{}", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, format!("{}\n", secret_of("IPSUM_API_KEY"))).unwrap();
    assert!(
        env.remove("IPSUM_API_KEY").is_some(),
        "IPsum's key is a secret"
    );
    env.extend(
        [
            ("LOG_LEVEL", "trace".to_string()),
            ("OPENCTI_URL", "http://127.0.0.1:9".into()),
            ("OPENCTI_TOKEN", "opencti-secret-token".into()),
            ("MQ_PASS", "mq-secret-pass".into()),
            ("IVRE_API_BASE_URL", ivre_url),
            ("IPSUM_API_BASE_URL", format!("{base}/ipsum/levels.txt")),
            ("IPSUM_API_KEY_FILE", key_file.to_str().unwrap().into()),
            (
                "LASTINFOSEC_PROXY_HTTPS",
                "http://proxy-user:proxy-secret-pass@127.0.0.1:9".into(),
            ),
            // A proxy with credentials for every client (bypassed for the local fakes).
            (
                "HTTP_PROXY",
                "http://env-proxy-user:env-proxy-secret@127.0.0.1:9".into(),
            ),
            ("NO_PROXY", "127.0.0.1".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let config = Config::from_sources(None, &env).expect("the test config");
    let _ = std::fs::remove_file(key_file);
    config
}

/// An upstream that answers every connector with `status` (a redirect goes to `target`):
/// the known ones with their fixtures, any other with `{}`.
async fn upstream(status: u16, target: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let lis_key = secret_of("LASTINFOSEC_API_KEY_CTI");
    let answer = |body: String| {
        let mut r = ResponseTemplate::new(status).set_body_raw(body, "application/json");
        if let Some(t) = target {
            // The redirect carries LastInfoSec's key in its query, as a real one would.
            r = r.insert_header(
                "location",
                format!("{t}?api_key={lis_key}&platform=opencti"),
            );
        }
        r
    };
    for (route, body) in [
        (
            r"^/ipinfo/.*",
            fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
        ),
        (
            r"^/riskiq/v2/account/quota$",
            fixture("riskiq", "account_quota.json"),
        ),
        (
            r"^/riskiq/v2/dns/passive$",
            fixture("riskiq", "dns_passive_domain_www.furth.com.ar.json"),
        ),
        (
            r"^/lastinfosec/.*",
            fixture("lastinfosec", "stix21_search_domain_found_constructed.json"),
        ),
        (r"^/ivre/ipdata/.*", fixture("ivre", "ipdata_8.8.8.8.json")),
        (
            r"^/ivre/(passive|scans)$",
            fixture("ivre", "scans_empty_result.json"),
        ),
        (r"^/ipsum/.*", "8.8.8.8\n1.1.1.1\n".to_string()),
    ] {
        Mock::given(method("GET"))
            .and(path_regex(route))
            .respond_with(answer(body.clone()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(route))
            .respond_with(answer(body))
            .mount(&server)
            .await;
    }
    Mock::given(any())
        .respond_with(answer("{}".into()))
        .with_priority(u8::MAX)
        .mount(&server)
        .await;
    server
}

async fn exercise(built: &[(opencti_connectors::config::ConnectorSettings, Hosted)]) {
    let entities = [
        json!({"id": IP_ID, "type": "ipv4-addr", "spec_version": "2.1", "value": IP}),
        json!({"id": "domain-name--d8f80844-a558-554c-97ba-13937278c048", "type": "domain-name", "spec_version": "2.1", "value": "www.furth.com.ar"}),
    ];
    for (settings, hosted) in built {
        match hosted {
            Hosted::Enrichment(c) => {
                for entity in &entities {
                    let outcome = c.enrich(&request_for(entity.clone())).await;
                    tracing::info!(connector = settings.key, ?outcome, "Exercised.");
                }
            }
            Hosted::Import(c) => {
                let outcome = c.run(&mut Accepting::default()).await;
                tracing::info!(connector = settings.key, ?outcome, "Exercised.");
            }
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_any_log_line_at_trace_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    let success = upstream(200, None).await;
    let base = success.uri();
    let filter = config(&base).log_filter();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap())
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("this test owns the process's subscriber (nextest runs one test a process)");

    let failure = upstream(401, None).await;
    let redirect = upstream(302, Some(&format!("{base}/lastinfosec/stix21/search/"))).await;
    for server in [&success, &failure, &redirect] {
        let config = config(&server.uri());
        tracing::debug!(?config, "The whole configuration.");
        let built = build_all(&config).expect("every connector builds");
        exercise(&built).await;
    }
    let registration: opencti_connectors::opencti::client::Registration =
        serde_json::from_value(json!({"id": "c", "connector_state": null, "connector_user_id": null,
            "config": {"connection": {"host": "rabbitmq", "vhost": "/", "use_ssl": false, "port": 5672, "user": "opencti", "pass": "mq-secret-pass"},
                "listen": "l", "listen_routing": "lr", "listen_exchange": "le", "push": "p", "push_routing": "pr", "push_exchange": "pe"}}))
        .unwrap();
    tracing::debug!(?registration, "A registration.");

    let out = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        out.contains("The whole configuration.") && out.contains("A registration."),
        "the capture works"
    );
    assert!(out.contains("status=302"), "the redirects ran");
    // IPinfo's token, RiskIQ's user and key, LastInfoSec's, IVRE's and IPsum's keys at least.
    assert!(section_secrets().len() >= 6, "{:?}", section_secrets());
    let secrets: Vec<String> = SECRETS
        .iter()
        .map(|s| s.to_string())
        .chain(section_secrets().into_iter().map(|(_, v)| v))
        .collect();
    for secret in &secrets {
        let line = out.lines().find(|l| l.contains(secret.as_str()));
        assert!(
            line.is_none(),
            "{secret} leaked: {}",
            line.unwrap_or_default()
        );
    }
}
