//! Shared test support: the runtime with a test connector against the fake OpenCTI
//! ([`Scenario`]), the daemon as a child process, proxies and certificates; the fake itself,
//! the fixtures and the listen messages come from the `testkit` crate (`tests/support`).

pub mod daemon;
pub mod forward_proxy;
pub mod pki;
pub mod proxy;
pub mod scenario;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use opencti_connectors::config::{ConnectorSettings, Mode, MqConfig, QueueProtocol};
use opencti_connectors::connectors::{
    ConnectorError, EnrichmentConnector, EnrichmentRequest, Hosted, Outcome,
};
use opencti_connectors::metrics::Metrics;
use opencti_connectors::opencti::OpenctiClient;
use opencti_connectors::runtime::retry::RetryPolicy;
use opencti_connectors::runtime::{self, Platform, Shutdown};
use opencti_connectors::stix::{Identity, Tlp, to_object};
use serde_json::Value;
use tokio::task::JoinHandle;

pub use scenario::{Scenario, work};
pub use testkit::*;

/// A fresh, empty directory under the system's temporary directory, named `<prefix>-<uuid>`.
pub fn scratch_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Settings of a test connector with a fresh id (so fresh queues).
pub fn settings(key: &'static str, mode: Mode, protocol: QueueProtocol) -> ConnectorSettings {
    ConnectorSettings {
        key,
        id: uuid::Uuid::new_v4(),
        name: format!("Test {key}"),
        scope: vec!["IPv4-Addr".into()],
        queue_protocol: protocol,
        mode,
        max_answer_bytes: opencti_connectors::http::DEFAULT_MAX_UPSTREAM_BYTES,
    }
}

/// A playbook-compatible enrichment connector taking two messages at once.
pub fn enrichment_mode() -> Mode {
    Mode::Enrichment {
        auto: false,
        auto_update: false,
        playbook_compatible: true,
        concurrency: 2,
    }
}

/// An importer running every `period`.
pub fn import_mode(period: Duration) -> Mode {
    Mode::Import {
        period,
        queue_threshold: 500.0,
    }
}

/// [`platform`], told to reach RabbitMQ on `port` of the loopback (`mq.port`).
pub fn platform_with_broker_port(fake: &FakeOpencti, port: u16) -> Arc<Platform> {
    Arc::new(Platform {
        mq: MqConfig {
            port: Some(port),
            ..Default::default()
        },
        ..Arc::try_unwrap(platform(fake)).ok().unwrap()
    })
}

/// A platform pointing at the fake, with fast pings and retries.
pub fn platform(fake: &FakeOpencti) -> Arc<Platform> {
    let metrics = Arc::new(Metrics::default());
    Arc::new(Platform {
        client: OpenctiClient::new(
            &fake.url,
            opencti_connectors::config::Secret::new(fake_opencti::TOKEN),
            true,
        )
        .unwrap(),
        mq: MqConfig::default(),
        egress: None,
        ping_interval: Duration::from_millis(200),
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(20),
            max: Duration::from_millis(50),
        },
        max_retry: Duration::from_secs(30),
        hold_limit: opencti_connectors::config::hold_limit(
            opencti_connectors::config::DEFAULT_CONSUMER_TIMEOUT,
        ),
        publish_timeout: opencti_connectors::amqp::PUBLISH_TIMEOUT,
        work_ping_interval: Duration::from_millis(200),
        import_lock: true,
        availability: runtime::availability::Availability::new(metrics.clone()),
        isolation: Arc::default(),
        memory: opencti_connectors::memory::MemoryBudget::new(
            opencti_connectors::memory::DEFAULT_BUDGET,
        ),
        metrics,
    })
}

/// Test logs (RUST_LOG=debug to see them), once per process.
pub fn logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Starts the runtime for one connector and waits until it registered (so its queues
/// exist); returns its shutdown tokens and task.
pub async fn start(
    fake: &FakeOpencti,
    settings: ConnectorSettings,
    hosted: Hosted,
    drain: Duration,
) -> (Shutdown, JoinHandle<()>) {
    start_on(platform(fake), fake, settings, hosted, drain).await
}

/// [`start`] on a platform the test made (its own retry budget or OpenCTI address).
pub async fn start_on(
    platform: Arc<Platform>,
    fake: &FakeOpencti,
    settings: ConnectorSettings,
    hosted: Hosted,
    drain: Duration,
) -> (Shutdown, JoinHandle<()>) {
    logs();
    let id = settings.id.to_string();
    let before = fake
        .state
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.field == "registerConnector" && c.variables["input"]["id"] == id.as_str())
        .count();
    let shutdown = Shutdown::default();
    let task = tokio::spawn(runtime::run(
        platform,
        vec![(settings, hosted)],
        shutdown.clone(),
        drain,
    ));
    fake.wait_for("registration", |s| {
        s.calls
            .iter()
            .filter(|c| c.field == "registerConnector" && c.variables["input"]["id"] == id.as_str())
            .count()
            > before
    })
    .await;
    (shutdown, task)
}

/// Stops the runtime and waits for it (5 s at most).
pub async fn stop(shutdown: Shutdown, task: JoinHandle<()>) {
    shutdown.stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("runtime stops in time")
        .unwrap();
}

/// The bundle objects of a recorded `stixBundlePush`.
pub fn pushed_objects(call: &fake_opencti::Call) -> Vec<Value> {
    let bundle: Value = serde_json::from_str(call.variables["bundle"].as_str().unwrap()).unwrap();
    bundle["objects"].as_array().unwrap().clone()
}

/// A trivial enrichment connector: adds one author identity to the request's objects.
#[derive(Default)]
pub struct TestConnector {
    pub calls: AtomicUsize,
    /// Calls running now, and the most that ever ran at once.
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: AtomicUsize,
    /// When set, each call waits for a permit (lets a test hold a message in flight).
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    pub fail: Option<ConnectorError>,
    pub max_tlp: Option<Tlp>,
}

/// The id of the identity [`TestConnector`] adds.
pub fn added_id() -> String {
    opencti_connectors::stix::ids::identity_id("Test Author", "organization")
}

#[async_trait]
impl EnrichmentConnector for TestConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        self.max_tlp
    }

    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        Ok("a test connector has no upstream".into())
    }

    async fn enrich(&self, request: &EnrichmentRequest) -> Result<Outcome, ConnectorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        /// Counts a call out when it ends, however it ends (a dropped future included).
        struct Running(Arc<AtomicUsize>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running(self.in_flight.clone());
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate").forget();
        }
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let mut objects = request.stix_objects.clone();
        objects.push(to_object(&Identity::organization(
            "Test Author",
            None,
            "2024-01-01T00:00:00.000Z",
        )));
        Ok(Outcome::Bundle {
            objects,
            message: Box::new(|n| format!("Sent {n} stix bundle(s) for worker import")),
        })
    }
}

impl TestConnector {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Builds one connector from environment-style settings, as the daemon does: OpenCTI
/// placeholders, `<SECTION>_ENABLED=true` and a fresh `<SECTION>_CONNECTOR_ID` (so fresh
/// queues), then `settings`, then `extra` (which may override them).
pub fn build_connector(
    section: &str,
    settings: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (ConnectorSettings, Hosted) {
    let prefix = section.to_uppercase();
    let mut env: std::collections::HashMap<String, String> = [
        ("OPENCTI_URL".to_string(), "http://unused".to_string()),
        ("OPENCTI_TOKEN".to_string(), "t".to_string()),
        (format!("{prefix}_ENABLED"), "true".to_string()),
        (
            format!("{prefix}_CONNECTOR_ID"),
            uuid::Uuid::new_v4().to_string(),
        ),
    ]
    .into_iter()
    .collect();
    env.extend(
        settings
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config =
        opencti_connectors::registry::Config::from_sources(None, &env).expect("test config");
    opencti_connectors::registry::build_all(&config)
        .expect("test connector")
        .remove(0)
}

/// A request for `entity` alone (its STIX form, no markings), as connector tests need it.
pub fn request_for(entity: Value) -> EnrichmentRequest {
    EnrichmentRequest {
        entity_id: entity["id"].as_str().expect("entity id").into(),
        entity_type: None,
        internal_id: None,
        observable_value: None,
        stix_objects: vec![entity.clone()],
        stix_entity: entity,
        markings: vec![],
        playbook: false,
    }
}
