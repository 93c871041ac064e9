//! The scheduled-import runtime: workAdd → send → state → ping → toProcessed, on a schedule.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::common::*;
use async_trait::async_trait;
use opencti_connectors::config::{ConnectorSettings, QueueProtocol};
use opencti_connectors::connectors::{ConnectorError, Hosted, ImportConnector, ImportContext};
use opencti_connectors::runtime::Shutdown;
use opencti_connectors::stix::{Observable, to_object};
use serde_json::{Value, json};

/// Sends two chunks, counts its runs in the state; fails when told to.
#[derive(Default)]
struct TestImporter {
    seen_states: Mutex<Vec<Option<Value>>>,
    /// Every run fails with this error...
    fail: Option<ConnectorError>,
    /// ...or only the first N runs do.
    fail_times: Option<usize>,
    /// When set, a run waits for a permit after its first chunk (holds it mid-import).
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

#[async_trait]
impl ImportConnector for TestImporter {
    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        Ok("a test importer has no upstream".into())
    }

    async fn run(&self, ctx: &mut dyn ImportContext) -> Result<String, ConnectorError> {
        let state = ctx.state();
        let attempt = {
            let mut seen = self.seen_states.lock().unwrap();
            seen.push(state.clone());
            seen.len()
        };
        if let Some(error) = &self.fail
            && self.fail_times.is_none_or(|n| attempt <= n)
        {
            return Err(error.clone());
        }
        let runs = state.as_ref().and_then(|s| s["runs"].as_u64()).unwrap_or(0) + 1;
        let mut sent = 0;
        for chunk in [["1.1.1.1", "2.2.2.2"], ["3.3.3.3", "4.4.4.4"]] {
            let objects = chunk
                .iter()
                .map(|ip| to_object(&Observable::new("ipv4-addr", *ip)))
                .collect();
            sent += ctx.send(objects).await?;
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate").forget();
            }
        }
        ctx.set_state(json!({ "runs": runs }));
        Ok(format!("imported {sent} objects (run {runs})"))
    }
}

/// Connector `importer`'s settings: a run every `period`, sent by `protocol`.
fn importer_settings(period: Duration, protocol: QueueProtocol) -> ConnectorSettings {
    settings("importer", import_mode(period), protocol)
}

/// Starts `importer` with `s` (a 5 s drain) on a platform of its own: a replica of its own,
/// in this process.
async fn start_importer_on(
    platform: Arc<opencti_connectors::runtime::Platform>,
    fake: &FakeOpencti,
    s: ConnectorSettings,
    importer: Arc<dyn ImportConnector>,
) -> (Shutdown, tokio::task::JoinHandle<()>) {
    let drain = Duration::from_secs(5);
    start_on(platform, fake, s, Hosted::Import(importer), drain).await
}

#[tokio::test]
async fn runs_at_start_then_on_schedule_keeping_state_in_opencti() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_millis(300), QueueProtocol::Api);
    let id = s.id.to_string();
    fake.state
        .lock()
        .unwrap()
        .states
        .insert(id.clone(), Some(r#"{"runs": 41}"#.into()));
    let importer = Arc::new(TestImporter::default());
    Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .works(2)
        .await;

    let reg = &fake.calls("registerConnector")[0].variables["input"];
    assert_eq!(reg["type"], "EXTERNAL_IMPORT");
    let works = fake.calls("workAdd");
    assert!(
        works[0].variables["friendlyName"]
            .as_str()
            .unwrap()
            .starts_with("Test importer run @ ")
    );
    assert_eq!(works[0].variables["connectorId"], id.as_str());
    let pushes = fake.calls("stixBundlePush");
    assert!(pushes.len() >= 4);
    assert_eq!(pushes[0].variables["work_id"], format!("work_{id}_1"));
    assert_eq!(pushes_objects_len(&pushes[0]), 2);
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(
        processed[0].variables["message"],
        "imported 4 objects (run 42)"
    );
    assert_eq!(processed[0].variables["inError"], false);
    assert_eq!(
        processed[1].variables["message"],
        "imported 4 objects (run 43)"
    );
    let seen = importer.seen_states.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        Some(json!({"runs": 41})),
        "the state stored in OpenCTI"
    );
    assert_eq!(seen[1], Some(json!({"runs": 42})));
    // The state reached OpenCTI through a ping before the work was closed.
    let all = fake.all_calls();
    let first_done = all
        .iter()
        .position(|c| c.field == "workEdit.toProcessed")
        .unwrap();
    assert!(
        all[..first_done]
            .iter()
            .any(|c| c.field == "pingConnector" && c.variables["state"] == r#"{"runs":42}"#)
    );
    let last_ping = fake.calls("pingConnector").pop().unwrap();
    assert!(last_ping.variables["connectorInfo"]["last_run_datetime"].is_string());
    assert!(last_ping.variables["connectorInfo"]["next_run_datetime"].is_string());
}

fn pushes_objects_len(call: &crate::common::fake_opencti::Call) -> usize {
    pushed_objects(call).len()
}

#[tokio::test]
async fn a_failed_run_fails_the_work_and_keeps_the_state() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_millis(300), QueueProtocol::Api);
    let id = s.id.to_string();
    fake.state
        .lock()
        .unwrap()
        .states
        .insert(id.clone(), Some(r#"{"runs": 7}"#.into()));
    let importer = Arc::new(TestImporter {
        fail: Some(ConnectorError::Rejected(
            "feed download failed: HTTP 404".into(),
        )),
        ..Default::default()
    });
    let outcomes = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .works(1)
        .await;
    assert!(outcomes[0].in_error);
    assert_eq!(outcomes[0].message, "feed download failed: HTTP 404");
    assert_eq!(fake.count("stixBundlePush"), 0);
    assert_eq!(
        fake.calls("pingConnector").pop().unwrap().variables["state"],
        r#"{"runs":7}"#
    );
}

#[tokio::test]
async fn a_state_reset_from_the_platform_is_adopted() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_millis(700), QueueProtocol::Api);
    let id = s.id.to_string();
    let importer = Arc::new(TestImporter::default());
    let running = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .start()
        .await;
    running.works(1).await;
    fake.state.lock().unwrap().reset.push(id.clone());
    running.works(1).await;
    running.stop().await;
    let seen = importer.seen_states.lock().unwrap().clone();
    assert_eq!(seen[0], None);
    assert_eq!(
        seen[1], None,
        "the reset wiped the state before the second run"
    );
    assert_eq!(
        fake.calls("workEdit.toProcessed")[1].variables["message"],
        "imported 4 objects (run 1)"
    );
}

#[tokio::test]
async fn amqp_importer_adds_expectations_per_chunk_and_publishes() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_secs(3600), QueueProtocol::Amqp);
    let id = s.id.to_string();
    Scenario::new(
        &fake,
        (s, Hosted::Import(Arc::new(TestImporter::default()))),
    )
    .works(1)
    .await;
    let expectations: Vec<u64> = fake
        .calls("workEdit.addExpectations")
        .iter()
        .map(|c| c.variables["expectations"].as_u64().unwrap())
        .collect();
    assert_eq!(expectations, vec![2, 2]);
    assert_eq!(
        fake.drain_queue(&FakeOpencti::push_queue(&id)).await.len(),
        4
    );
}

#[tokio::test]
async fn a_transient_failure_runs_again_within_the_same_work() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_secs(3600), QueueProtocol::Api);
    let importer = Arc::new(TestImporter {
        fail: Some(ConnectorError::retryable("feed download failed: HTTP 503")),
        fail_times: Some(2),
        ..Default::default()
    });
    Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .works(1)
        .await;
    assert_eq!(importer.seen_states.lock().unwrap().len(), 3, "two retries");
    assert_eq!(
        fake.count("workAdd"),
        1,
        "one work for the run and its retries"
    );
    let processed = &fake.calls("workEdit.toProcessed")[0].variables;
    assert_eq!(processed["inError"], false, "{processed}");
    assert_eq!(processed["message"], "imported 4 objects (run 1)");
}

#[tokio::test]
async fn a_transient_failure_that_persists_fails_the_run_after_the_attempts() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_secs(3600), QueueProtocol::Api);
    let id = s.id.to_string();
    let importer = Arc::new(TestImporter {
        fail: Some(ConnectorError::retryable("feed download failed: HTTP 503")),
        ..Default::default()
    });
    let outcomes = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .works(1)
        .await;
    assert_eq!(
        importer.seen_states.lock().unwrap().len(),
        3,
        "the test policy's three attempts"
    );
    assert!(outcomes[0].in_error);
    assert_eq!(outcomes[0].message, "feed download failed: HTTP 503");
    assert_eq!(fake.count("stixBundlePush"), 0);
    assert_eq!(
        fake.state.lock().unwrap().states[&id].as_deref(),
        Some("null"),
        "no state stored"
    );
}

/// An hourly importer, stored state `{"runs": 3}`, whose run stalls after its first chunk.
fn stalled_run(fake: &FakeOpencti) -> (ConnectorSettings, String, Arc<TestImporter>) {
    let s = importer_settings(Duration::from_secs(3600), QueueProtocol::Api);
    let id = s.id.to_string();
    fake.state
        .lock()
        .unwrap()
        .states
        .insert(id.clone(), Some(r#"{"runs": 3}"#.into()));
    let importer = Arc::new(TestImporter {
        gate: Some(Arc::new(tokio::sync::Semaphore::new(0))),
        ..Default::default()
    });
    (s, id, importer)
}

/// The stored state is still the one [`stalled_run`] started from.
fn assert_state_kept(fake: &FakeOpencti, id: &str) {
    assert_eq!(
        fake.state.lock().unwrap().states[id].as_deref(),
        Some(r#"{"runs":3}"#),
        "the previous state is kept"
    );
}

#[tokio::test]
async fn the_shutdown_deadline_closes_a_run_as_interrupted_and_keeps_the_state() {
    let fake = FakeOpencti::start().await;
    let (s, id, importer) = stalled_run(&fake);
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Import(importer.clone()),
        Duration::from_millis(300),
    )
    .await;
    fake.wait_for("the first chunk", |s| s.count("stixBundlePush") == 1)
        .await;
    stop(shutdown, task).await;
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(processed.len(), 1, "the run's work is closed");
    assert_eq!(processed[0].variables["message"], "interrupted by shutdown");
    assert_eq!(processed[0].variables["inError"], true);
    assert_state_kept(&fake, &id);
}

/// Panics on every run.
struct PanickingImporter;

#[async_trait]
impl ImportConnector for PanickingImporter {
    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        Ok("a test importer has no upstream".into())
    }

    async fn run(&self, _ctx: &mut dyn ImportContext) -> Result<String, ConnectorError> {
        panic!("importer bug");
    }
}

#[tokio::test]
async fn a_panicking_connector_is_restarted_without_leaking_its_pinger() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_secs(3600), QueueProtocol::Api);
    let id = s.id.to_string();
    let running = Scenario::new(&fake, (s, Hosted::Import(Arc::new(PanickingImporter))))
        .start()
        .await;
    fake.wait_for("a restart after the panic", |s| {
        s.calls
            .iter()
            .filter(|c| c.field == "registerConnector" && c.variables["input"]["id"] == id.as_str())
            .count()
            >= 2
    })
    .await;
    running.stop().await;
    let pings = fake.count("pingConnector");
    // The test platform pings every 200 ms: a leaked pinger would keep going.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        fake.count("pingConnector"),
        pings,
        "no pinger outlives its run"
    );
}

#[tokio::test]
async fn a_ping_answer_that_lags_behind_is_not_adopted() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_millis(700), QueueProtocol::Api);
    let id = s.id.to_string();
    let importer = Arc::new(TestImporter::default());
    let running = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .start()
        .await;
    running.works(1).await;
    // The platform answers the next ping with the state of before the first run.
    fake.state
        .lock()
        .unwrap()
        .lagging
        .insert(id.clone(), r#"{"runs": 0}"#.into());
    running.works(1).await;
    running.stop().await;
    let seen = importer.seen_states.lock().unwrap().clone();
    assert_eq!(
        seen[1],
        Some(json!({"runs": 1})),
        "the state of the first run, not the lagging answer"
    );
}

#[tokio::test]
async fn runs_wait_while_the_push_queue_is_over_its_threshold() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_millis(400), QueueProtocol::Api);
    let id = s.id.to_string();
    let importer = Arc::new(TestImporter::default());
    let running = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .start()
        .await;
    fake.wait_for("first run", |s| s.count("workAdd") >= 1)
        .await;
    // The workers fall behind: 600 MB waiting in the push queue (threshold 500 MB).
    fake.state
        .lock()
        .unwrap()
        .queue_bytes
        .insert(id.clone(), 600_000_000.0);
    fake.wait_for("a ping saying it is buffering", |s| {
        s.calls.iter().any(|c| {
            c.field == "pingConnector" && c.variables["connectorInfo"]["buffering"] == true
        })
    })
    .await;
    let works = fake.count("workAdd");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(fake.count("workAdd"), works, "no run while buffering");
    let ping = fake
        .calls("pingConnector")
        .into_iter()
        .rev()
        .find(|c| c.variables["connectorInfo"]["buffering"] == true)
        .unwrap();
    let info = &ping.variables["connectorInfo"];
    assert_eq!(info["queue_messages_size"], 600.0);
    assert_eq!(info["queue_threshold"], 500.0);
    assert!(info["last_run_datetime"].is_string() && info["next_run_datetime"].is_string());

    fake.state
        .lock()
        .unwrap()
        .queue_bytes
        .insert(id.clone(), 0.0);
    fake.wait_for("runs again", |s| s.count("workAdd") > works)
        .await;
    running.stop().await;
}

/// Two schedulers of one importer (two replicas in one process, each with its own client):
/// one holds the import lock and runs, the other stands by; when the holder stops, the
/// other takes over, continues the state the holder's pings stored, and keeps the schedule.
#[tokio::test]
async fn two_replicas_run_one_importer_and_the_standby_takes_over() {
    let fake = FakeOpencti::start().await;
    let s = importer_settings(Duration::from_millis(400), QueueProtocol::Api);
    let (first, second) = (
        crate::common::platform(&fake),
        crate::common::platform(&fake),
    );
    let (first_metrics, second_metrics) = (first.metrics.clone(), second.metrics.clone());
    let a = Arc::new(TestImporter::default());
    let b = Arc::new(TestImporter::default());
    let (stop_a, task_a) = start_importer_on(first, &fake, s.clone(), a.clone()).await;
    fake.wait_for("the first replica's run", |s| {
        s.count("workEdit.toProcessed") >= 1
    })
    .await;
    let (stop_b, task_b) = start_importer_on(second, &fake, s, b.clone()).await;
    fake.wait_for("three runs", |s| s.count("workEdit.toProcessed") >= 3)
        .await;
    assert_eq!(first_metrics.import_lock("importer"), Some(true));
    assert_eq!(second_metrics.import_lock("importer"), Some(false));
    assert!(
        b.seen_states.lock().unwrap().is_empty(),
        "the standby never ran"
    );
    let runs_of_a = a.seen_states.lock().unwrap().len();

    stop(stop_a, task_a).await;
    let handover = fake.all_calls().len();
    fake.wait_for("a run by the second replica", |s| {
        s.count("workEdit.toProcessed") > runs_of_a
    })
    .await;
    assert_eq!(second_metrics.import_lock("importer"), Some(true));
    stop(stop_b, task_b).await;

    // The second replica went on from the state the first one stored.
    let seen = b.seen_states.lock().unwrap().clone();
    assert_eq!(seen[0], Some(json!({ "runs": runs_of_a })));
    let processed = fake.calls("workEdit.toProcessed");
    let messages: Vec<&str> = processed
        .iter()
        .map(|c| c.variables["message"].as_str().unwrap())
        .collect();
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            *m,
            format!("imported 4 objects (run {})", i + 1),
            "{messages:?}"
        );
    }
    // Runs never overlapped: each work was closed before the next one was opened.
    let all = fake.all_calls();
    let mut open = 0;
    for c in &all {
        match c.field.as_str() {
            "workAdd" => open += 1,
            "workEdit.toProcessed" => open -= 1,
            _ => {}
        }
        assert!(open <= 1, "two runs at once");
    }
    // It read the stored schedule before its first run, and did not run ahead of it.
    let after: Vec<&str> = all[handover..].iter().map(|c| c.field.as_str()).collect();
    let read = after
        .iter()
        .position(|f| *f == "connector")
        .expect("schedule read");
    let work = after.iter().position(|f| *f == "workAdd").expect("a run");
    assert!(read < work, "{after:?}");
}

/// The test broker as a registration would name it.
fn test_broker() -> opencti_connectors::amqp::BrokerAddress {
    opencti_connectors::amqp::BrokerAddress {
        host: "127.0.0.1".into(),
        port: 5672,
        vhost: "/".into(),
        use_ssl: false,
        user: "guest".into(),
        pass: opencti_connectors::config::Secret::new("guest"),
        ca_pem: None,
    }
}

/// A standby tries the lock for as long as it runs: each refused declare closes a channel,
/// and more refusals than a connection has channels (2,047) leave it usable. A holder that
/// goes without releasing (a panic) frees the lock all the same.
#[tokio::test]
async fn a_standby_can_try_the_lock_forever_and_a_dropped_hold_frees_it() {
    use opencti_connectors::runtime::lock::ImportLock;
    let id = uuid::Uuid::new_v4().to_string();
    let ping = Duration::from_secs(1);
    let lock = ImportLock::new(test_broker(), &id, "importer", ping);
    let stop = tokio_util::sync::CancellationToken::new();
    let first = lock.acquire(&stop).await.expect("a free lock is taken");
    assert!(!first.waited);

    let standby = ImportLock::new(test_broker(), &id, "importer", ping);
    let connection = test_broker().connect("test standby").await.unwrap();
    for attempt in 0..2100 {
        let refused = standby.try_declare(&connection).await;
        assert!(refused.is_err(), "attempt {attempt} took a held lock");
    }
    assert!(connection.status().connected());
    assert_eq!(standby.probe().await, Ok(false), "held");

    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), standby.acquire(&stop))
        .await
        .expect("the dropped hold freed the lock")
        .unwrap();
    assert!(!second.held.lost.is_cancelled());
    second.held.release().await;
    assert_eq!(lock.probe().await, Ok(true), "released");
}

/// A holder whose broker connection goes silent mid-run loses the lock: the run stops, its
/// work says why, the state is left as it was, and this replica stands by.
#[tokio::test]
async fn a_run_stops_when_its_replica_loses_the_import_lock() {
    let fake = FakeOpencti::start().await;
    let (s, id, importer) = stalled_run(&fake);
    // This replica reaches RabbitMQ (and so the lock) through a proxy that will go silent.
    let broker = crate::common::proxy::Proxy::start("http://127.0.0.1:5672").await;
    let port: u16 = broker.url.rsplit(':').next().unwrap().parse().unwrap();
    let platform = platform_with_broker_port(&fake, port);
    let metrics = platform.metrics.clone();
    let running = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .on(platform)
        .start()
        .await;
    fake.wait_for("the first chunk", |s| s.count("stixBundlePush") == 1)
        .await;
    assert_eq!(metrics.import_lock("importer"), Some(true));
    broker.freeze();
    running.works(1).await;
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(
        processed[0].variables["message"],
        opencti_connectors::runtime::import::LOCK_LOST
    );
    assert_eq!(processed[0].variables["inError"], true);
    assert_eq!(metrics.import_lock("importer"), Some(false));
    let pings = fake.count("pingConnector");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        fake.count("pingConnector"),
        pings,
        "no ping without the lock"
    );
    assert_state_kept(&fake, &id);
    running.stop().await;
}

/// A platform that refuses the schedule read: a replica taking the lock registers again for
/// the state, as a restarted connector does, and runs at once.
#[tokio::test]
async fn a_refused_schedule_read_falls_back_to_a_new_registration() {
    let fake = FakeOpencti::start().await;
    fake.state.lock().unwrap().refuse.push("connector".into());
    let s = importer_settings(Duration::from_secs(3600), QueueProtocol::Api);
    let (first, second) = (
        crate::common::platform(&fake),
        crate::common::platform(&fake),
    );
    let a = Arc::new(TestImporter::default());
    let b = Arc::new(TestImporter::default());
    let (stop_a, task_a) = start_importer_on(first, &fake, s.clone(), a.clone()).await;
    fake.wait_for("the first run", |s| s.count("workEdit.toProcessed") >= 1)
        .await;
    let (stop_b, task_b) = start_importer_on(second, &fake, s, b).await;
    stop(stop_a, task_a).await;
    fake.wait_for("the run of the second replica", |s| {
        s.count("workEdit.toProcessed") >= 2
    })
    .await;
    stop(stop_b, task_b).await;
    assert_eq!(
        fake.count("registerConnector"),
        4,
        "each replica registered at start, then again when it took the lock"
    );
    assert_eq!(
        fake.calls("workEdit.toProcessed")[1].variables["message"],
        "imported 4 objects (run 2)",
        "the state came from the registration"
    );
}

/// A run that makes no progress for twice the retry budget: the holder stops it, says so on
/// its work, keeps the state, gives the import lock up and, free again, runs again.
#[tokio::test]
async fn a_run_that_makes_no_progress_gives_the_import_lock_up() {
    let fake = FakeOpencti::start().await;
    let (s, id, importer) = stalled_run(&fake);
    let mut platform = crate::common::platform(&fake);
    Arc::get_mut(&mut platform).unwrap().max_retry = Duration::from_millis(500);
    let running = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .on(platform)
        .start()
        .await;
    running.works(1).await;
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(
        processed[0].variables["message"],
        opencti_connectors::runtime::import::STALLED
    );
    assert_eq!(processed[0].variables["inError"], true);
    assert_state_kept(&fake, &id);
    fake.wait_for("a run after the lock was taken again", |s| {
        s.count("workAdd") >= 2
    })
    .await;
    running.stop().await;
}

/// OpenCTI goes down in the middle of a run: the run stops without failing for it, its work
/// says why once the platform answers again, and the run is redone at once.
#[tokio::test]
async fn a_run_cut_short_by_an_opencti_outage_says_so_and_is_redone_when_it_answers() {
    let fake = FakeOpencti::start().await;
    let (s, id, importer) = stalled_run(&fake);
    let gate = importer.gate.clone().unwrap();
    let running = Scenario::new(&fake, (s, Hosted::Import(importer.clone())))
        .start()
        .await;
    fake.wait_for("the first chunk", |s| s.count("stixBundlePush") == 1)
        .await;
    fake.state.lock().unwrap().outage = Some(crate::common::fake_opencti::Outage::Unavailable);
    gate.add_permits(1);
    fake.wait_for("the second chunk meeting the outage", |s| {
        s.count("stixBundlePush(Unavailable)") >= 1 && s.count("about(Unavailable)") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.count("workEdit.toProcessed"),
        0,
        "nothing is recorded while the platform is down"
    );
    assert_state_kept(&fake, &id);
    fake.state.lock().unwrap().outage = None;
    gate.add_permits(10);
    running.works(2).await;
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(
        processed[0].variables["message"],
        opencti_connectors::runtime::import::PLATFORM_DOWN
    );
    assert_eq!(processed[0].variables["inError"], true);
    assert_eq!(processed[1].variables["inError"], false);
    assert_eq!(
        processed[1].variables["message"],
        "imported 4 objects (run 4)"
    );
    assert_ne!(processed[0].variables["id"], processed[1].variables["id"]);
    running.stop().await;
}
