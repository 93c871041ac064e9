//! No secret in any log line at any level: every connector runs at `log.level: trace` (with
//! the daemon's own filter) through a success, a failure and a redirect, every line is
//! captured, and none may hold any of the configured secrets. Debug output of the config and
//! of a registration is searched too.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::*;
use async_trait::async_trait;
use opencti_connectors::connectors::{ConnectorError, Hosted, ImportContext};
use opencti_connectors::registry::{Config, build_all};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRETS: &[&str] = &[
    "opencti-secret-token",
    "ipinfo-secret-token",
    "riskiq-secret-user",
    "riskiq-secret-key",
    "lis-secret-key",
    "ivre_secret_key",
    "ivre-url-password",
    "ipsum-secret-key",
    "mq-secret-pass",
    "proxy-secret-pass",
    "env-proxy-secret",
];

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

/// The daemon's config with every connector enabled against `base`, all secrets set.
fn config(base: &str) -> Config {
    let ivre_url = format!(
        "{}/ivre#X-API-Key=ivre_secret_key",
        base.replace("http://", "http://ivre-user:ivre-url-password@")
    );
    let pairs = [
        ("LOG_LEVEL", "trace".to_string()),
        ("OPENCTI_URL", "http://127.0.0.1:9".into()),
        ("OPENCTI_TOKEN", "opencti-secret-token".into()),
        ("MQ_PASS", "mq-secret-pass".into()),
        ("IPINFO_ENABLED", "true".into()),
        ("IPINFO_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("IPINFO_TOKEN", "ipinfo-secret-token".into()),
        ("IPINFO_API_BASE_URL", format!("{base}/ipinfo")),
        ("RISKIQ_ENABLED", "true".into()),
        ("RISKIQ_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("RISKIQ_USERNAME", "riskiq-secret-user".into()),
        ("RISKIQ_API_KEY", "riskiq-secret-key".into()),
        ("RISKIQ_API_BASE_URL", format!("{base}/riskiq")),
        ("LASTINFOSEC_ENABLED", "true".into()),
        ("LASTINFOSEC_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("LASTINFOSEC_API_KEY_CTI", "lis-secret-key".into()),
        ("LASTINFOSEC_API_BASE_URL", format!("{base}/lis")),
        (
            "LASTINFOSEC_PROXY_HTTPS",
            "http://proxy-user:proxy-secret-pass@127.0.0.1:9".into(),
        ),
        ("IVRE_ENABLED", "true".into()),
        ("IVRE_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("IVRE_API_BASE_URL", ivre_url),
        ("IVRE_API_KEY", "ivre_secret_key".into()),
        ("IPSUM_ENABLED", "true".into()),
        ("IPSUM_CONNECTOR_ID", uuid::Uuid::new_v4().to_string()),
        ("IPSUM_API_KEY", "ipsum-secret-key".into()),
        ("IPSUM_API_BASE_URL", format!("{base}/ipsum/levels.txt")),
    ];
    let mut env: std::collections::HashMap<String, String> =
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    // A proxy with credentials for every client (bypassed for the local fakes), and a key
    // read from a file.
    env.insert(
        "HTTP_PROXY".into(),
        "http://env-proxy-user:env-proxy-secret@127.0.0.1:9".into(),
    );
    env.insert("NO_PROXY".into(), "127.0.0.1".into());
    let key_file = std::env::temp_dir().join(format!("ipsum-key-{}", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, "ipsum-secret-key\n").unwrap();
    env.remove("IPSUM_API_KEY");
    env.insert(
        "IPSUM_API_KEY_FILE".into(),
        key_file.to_str().unwrap().into(),
    );
    let config = Config::from_sources(None, &env).expect("the test config");
    let _ = std::fs::remove_file(key_file);
    config
}

/// An upstream that answers every connector with `status` (a redirect goes to `target`).
async fn upstream(status: u16, target: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let answer = |body: String| {
        let mut r = ResponseTemplate::new(status).set_body_raw(body, "application/json");
        if let Some(t) = target {
            // The redirect carries LastInfoSec's key in its query, as a real one would.
            r = r.insert_header(
                "location",
                format!("{t}?api_key=lis-secret-key&platform=opencti"),
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
            r"^/lis/.*",
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
    let redirect = upstream(302, Some(&format!("{base}/lis/v2/stix21/search/"))).await;
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
    for secret in SECRETS {
        let line = out.lines().find(|l| l.contains(secret));
        assert!(
            line.is_none(),
            "{secret} leaked: {}",
            line.unwrap_or_default()
        );
    }
}
