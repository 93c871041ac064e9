//! One connector run against the fake OpenCTI: start it, publish listen messages (or let an
//! importer run), wait for its works and read each one's outcome, stop it.
//!
//! ```ignore
//! let outcome = Scenario::new(&fake, connector).run_once(&manual_message("w", &entity)).await;
//! assert!(!outcome.in_error);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opencti_connectors::config::{ConnectorSettings, QueueProtocol};
use opencti_connectors::connectors::Hosted;
use opencti_connectors::runtime::{Platform, Shutdown};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::{FakeOpencti, TestConnector, enrichment_mode, platform, pushed_objects, settings};

/// The work calls that close a work.
const PROCESSED: &str = "workEdit.toProcessed";

/// How one work ended: its `toProcessed` call, read.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub work_id: String,
    /// The work's message (`toProcessed`'s `message`).
    pub message: Value,
    pub in_error: bool,
    /// Every object pushed (`stixBundlePush`, the API protocol) for the work, in push order.
    pub objects: Vec<Value>,
}

/// What to start: one connector, the platform it reaches and its drain deadline.
pub struct Scenario {
    fake: FakeOpencti,
    settings: ConnectorSettings,
    hosted: Hosted,
    platform: Option<Arc<Platform>>,
    drain: Duration,
}

impl Scenario {
    /// `connector` (as [`super::build_connector`] returns it) against `fake`, a 5 s drain.
    pub fn new(fake: &FakeOpencti, (settings, hosted): (ConnectorSettings, Hosted)) -> Self {
        Scenario {
            fake: fake.clone(),
            settings,
            hosted,
            platform: None,
            drain: Duration::from_secs(5),
        }
    }

    /// A [`TestConnector`] as a playbook-compatible enrichment connector (API protocol).
    pub fn test_connector(fake: &FakeOpencti, connector: Arc<TestConnector>) -> Self {
        Self::new(
            fake,
            (
                settings("test", enrichment_mode(), QueueProtocol::Api),
                Hosted::Enrichment(connector),
            ),
        )
    }

    /// On a platform the test made (its own retry budget, broker port or OpenCTI address).
    pub fn on(mut self, platform: Arc<Platform>) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The connector's id (its queues' names).
    pub fn id(&self) -> String {
        self.settings.id.to_string()
    }

    /// Starts the connector and waits until it registered (so its queues exist).
    pub async fn start(self) -> Running {
        let id = self.id();
        let platform = self.platform.unwrap_or_else(|| platform(&self.fake));
        let seen = self.fake.count(PROCESSED);
        let (shutdown, task) =
            super::start_on(platform, &self.fake, self.settings, self.hosted, self.drain).await;
        Running {
            fake: self.fake,
            id,
            shutdown,
            task,
            seen: AtomicUsize::new(seen),
        }
    }

    /// Starts the connector, publishes `body`, waits for its work, stops: the work's outcome.
    pub async fn run_once(self, body: &[u8]) -> Outcome {
        self.run(&[body]).await.remove(0)
    }

    /// Starts the connector (an importer: it runs on its own), waits for `n` works, stops:
    /// their outcomes.
    pub async fn works(self, n: usize) -> Vec<Outcome> {
        let running = self.start().await;
        let outcomes = running.works(n).await;
        running.stop().await;
        outcomes
    }

    /// [`Scenario::run_once`] for several messages: their outcomes in the order the works
    /// closed.
    pub async fn run(self, bodies: &[&[u8]]) -> Vec<Outcome> {
        let running = self.start().await;
        for body in bodies {
            running.publish(body).await;
        }
        let outcomes = running.works(bodies.len()).await;
        running.stop().await;
        outcomes
    }
}

/// A started connector.
pub struct Running {
    fake: FakeOpencti,
    id: String,
    shutdown: Shutdown,
    task: JoinHandle<()>,
    /// `toProcessed` calls already handed out (or made before the start).
    seen: AtomicUsize,
}

impl Running {
    /// The connector's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Publishes a listen message for the connector, as the platform does.
    pub async fn publish(&self, body: &[u8]) {
        self.fake.publish_listen(&self.id, body).await;
    }

    /// Publishes `body` and waits for the next work to close: its outcome.
    pub async fn send(&self, body: &[u8]) -> Outcome {
        self.publish(body).await;
        self.works(1).await.remove(0)
    }

    /// Waits until `n` more works closed (10 s at most): their outcomes, in order.
    pub async fn works(&self, n: usize) -> Vec<Outcome> {
        let from = self.seen.load(Ordering::SeqCst);
        self.fake
            .wait_for(&format!("{n} more {PROCESSED}"), |s| {
                s.count(PROCESSED) >= from + n
            })
            .await;
        self.seen.store(from + n, Ordering::SeqCst);
        let pushes = self.fake.calls("stixBundlePush");
        self.fake.calls(PROCESSED)[from..from + n]
            .iter()
            .map(|call| {
                let work_id = call.variables["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let objects = pushes
                    .iter()
                    .filter(|p| p.variables["work_id"] == work_id.as_str())
                    .flat_map(pushed_objects)
                    .collect();
                Outcome {
                    message: call.variables["message"].clone(),
                    in_error: call.variables["inError"] == true,
                    objects,
                    work_id,
                }
            })
            .collect()
    }

    /// Stops the runtime and waits for it (10 s at most).
    pub async fn stop(self) {
        super::stop(self.shutdown, self.task).await;
    }
}

/// The outcome of `work_id` among `outcomes`.
pub fn work<'a>(outcomes: &'a [Outcome], work_id: &str) -> &'a Outcome {
    outcomes
        .iter()
        .find(|o| o.work_id == work_id)
        .unwrap_or_else(|| panic!("{work_id} was never processed"))
}
