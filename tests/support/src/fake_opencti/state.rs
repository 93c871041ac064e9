//! What the fake OpenCTI knows and saw: the recorded calls and the answers it is told to give.

use std::collections::HashMap;

use serde_json::Value;

use super::VERSION_6;

/// One recorded operation: the root field (`workEdit.toProcessed` for work edits).
#[derive(Debug, Clone)]
pub struct Call {
    pub field: String,
    pub variables: Value,
    pub draft_id: Option<String>,
    /// When it was answered (the end-to-end benchmark's latencies).
    pub at: std::time::Instant,
    /// The replica that called, for a daemon pointed at `<url>/<replica>` ([`FakeOpencti::replica_url`]).
    pub replica: Option<String>,
    /// The id a `workAdd` answered.
    pub work_id: Option<String>,
}

impl Call {
    /// Whether this closes (`toProcessed`) a work whose id starts with `prefix`.
    pub fn closes_work(&self, prefix: &str) -> bool {
        self.field == "workEdit.toProcessed"
            && self.variables["id"]
                .as_str()
                .is_some_and(|w| w.starts_with(prefix))
    }
}

/// How a platform that is down answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// An ingress before a restarting platform: HTTP 503 to everything.
    Unavailable,
    /// A platform that accepts connections and never answers.
    Hold,
}

/// What the fake knows and saw.
pub struct FakeState {
    pub calls: Vec<Call>,
    /// Operation texts that did not validate (each also answered 400).
    pub invalid: Vec<String>,
    /// `stixCoreObject` answers by id.
    pub entities: HashMap<String, Value>,
    /// The STIX export (`toStix`) of entities by id.
    pub stix: HashMap<String, Value>,
    /// `markingDefinition` answers by id.
    pub markings: HashMap<String, Value>,
    /// Stored connector states by connector id.
    pub states: HashMap<String, Option<String>>,
    /// The last `connectorInfo` pinged, by connector id.
    pub infos: HashMap<String, Value>,
    /// Connector ids whose state the "UI" reset.
    pub reset: Vec<String>,
    /// Every User-Agent the fake was called with.
    pub user_agents: std::collections::BTreeSet<String>,
    /// The size of each connector's push queue, in bytes (`connector_queue_details`).
    pub queue_bytes: HashMap<String, f64>,
    /// Connector ids whose next ping is answered with this (older) state.
    pub lagging: HashMap<String, String>,
    /// The next N `stixBundlePush` calls answer 503...
    pub fail_pushes: usize,
    /// ...after this many more have succeeded.
    pub fail_pushes_after: usize,
    /// Registration answers a push routing key no queue is bound to.
    pub unbound_push: bool,
    /// Operations (root fields) that are recorded and then never answered.
    pub hang: Vec<String>,
    /// The whole platform is down: every operation, `about` included, is answered so.
    pub outage: Option<Outage>,
    /// Operations (root fields) answered with a permission error, as an older or locked-down
    /// platform would.
    pub refuse: Vec<String>,
    /// `false`: a pushed bundle is recorded as its length only (benchmarks push hundreds of MB).
    pub keep_bundles: bool,
    /// The version `about` answers; operations are validated against its schema.
    pub version: String,
    /// Every work is gone: `addExpectations` is answered `WORK_NOT_ALIVE`, as a 7.x platform
    /// answers for a deleted work.
    pub dead_works: bool,
    /// The root field of each operation text already validated, by version and text
    /// (parsing once per text keeps the fake answering in microseconds).
    pub(super) validated: HashMap<(String, String), String>,
    pub(super) works: usize,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            calls: Vec::new(),
            invalid: Vec::new(),
            entities: HashMap::new(),
            stix: HashMap::new(),
            markings: HashMap::new(),
            states: HashMap::new(),
            infos: HashMap::new(),
            reset: Vec::new(),
            user_agents: Default::default(),
            queue_bytes: HashMap::new(),
            lagging: HashMap::new(),
            fail_pushes: 0,
            fail_pushes_after: 0,
            unbound_push: false,
            hang: Vec::new(),
            outage: None,
            refuse: Vec::new(),
            keep_bundles: true,
            version: VERSION_6.into(),
            dead_works: false,
            validated: HashMap::new(),
            works: 0,
        }
    }
}

impl FakeState {
    pub fn count(&self, field: &str) -> usize {
        self.calls.iter().filter(|c| c.field == field).count()
    }
}
