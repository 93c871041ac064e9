//! The scheduled-import runtime: workAdd → send → state → ping → toProcessed, on a schedule.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::common::*;
use async_trait::async_trait;
use opencti_connectors::config::{ConnectorKind, QueueProtocol};
use opencti_connectors::connectors::{ConnectorError, Hosted, ImportConnector, ImportContext};
use opencti_connectors::stix::{Observable, to_object};
use serde_json::{Value, json};

/// Sends two chunks, counts its runs in the state; fails when told to.
#[derive(Default)]
struct TestImporter {
    seen_states: Mutex<Vec<Option<Value>>>,
    fail: bool,
}

#[async_trait]
impl ImportConnector for TestImporter {
    async fn run(&self, ctx: &mut dyn ImportContext) -> Result<String, ConnectorError> {
        let state = ctx.state();
        self.seen_states.lock().unwrap().push(state.clone());
        if self.fail {
            return Err(ConnectorError::Rejected(
                "feed download failed: HTTP 502".into(),
            ));
        }
        let runs = state.as_ref().and_then(|s| s["runs"].as_u64()).unwrap_or(0) + 1;
        let mut sent = 0;
        for chunk in [["1.1.1.1", "2.2.2.2"], ["3.3.3.3", "4.4.4.4"]] {
            let objects = chunk
                .iter()
                .map(|ip| to_object(&Observable::new("ipv4-addr", *ip)))
                .collect();
            sent += ctx.send(objects).await?;
        }
        ctx.set_state(json!({ "runs": runs }));
        Ok(format!("imported {sent} objects (run {runs})"))
    }
}

#[tokio::test]
async fn runs_at_start_then_on_schedule_keeping_state_in_opencti() {
    let fake = FakeOpencti::start().await;
    let s = settings("importer", ConnectorKind::Import, QueueProtocol::Api);
    let id = s.id.to_string();
    fake.state
        .lock()
        .unwrap()
        .states
        .insert(id.clone(), Some(r#"{"runs": 41}"#.into()));
    let importer = Arc::new(TestImporter::default());
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Import(importer.clone()),
        Duration::from_secs(5),
    )
    .await;
    fake.wait_for("two runs", |s| s.count("workEdit.toProcessed") >= 2)
        .await;
    stop(shutdown, task).await;

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
        "the state comes from the registration"
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
    let s = settings("importer", ConnectorKind::Import, QueueProtocol::Api);
    let id = s.id.to_string();
    fake.state
        .lock()
        .unwrap()
        .states
        .insert(id.clone(), Some(r#"{"runs": 7}"#.into()));
    let importer = Arc::new(TestImporter {
        fail: true,
        ..Default::default()
    });
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Import(importer.clone()),
        Duration::from_secs(5),
    )
    .await;
    fake.wait_for("a failed run", |s| s.count("workEdit.toProcessed") >= 1)
        .await;
    stop(shutdown, task).await;
    let processed = &fake.calls("workEdit.toProcessed")[0].variables;
    assert_eq!(processed["inError"], true);
    assert_eq!(processed["message"], "feed download failed: HTTP 502");
    assert_eq!(fake.count("stixBundlePush"), 0);
    assert_eq!(
        fake.calls("pingConnector").pop().unwrap().variables["state"],
        r#"{"runs":7}"#
    );
}

#[tokio::test]
async fn a_state_reset_from_the_platform_is_adopted() {
    let fake = FakeOpencti::start().await;
    let mut s = settings("importer", ConnectorKind::Import, QueueProtocol::Api);
    s.duration_period = Some(Duration::from_millis(700));
    let id = s.id.to_string();
    let importer = Arc::new(TestImporter::default());
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Import(importer.clone()),
        Duration::from_secs(5),
    )
    .await;
    fake.wait_for("first run", |s| s.count("workEdit.toProcessed") >= 1)
        .await;
    fake.state.lock().unwrap().reset.push(id.clone());
    fake.wait_for("second run", |s| s.count("workEdit.toProcessed") >= 2)
        .await;
    stop(shutdown, task).await;
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
    let mut s = settings("importer", ConnectorKind::Import, QueueProtocol::Amqp);
    s.duration_period = Some(Duration::from_secs(3600));
    let id = s.id.to_string();
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Import(Arc::new(TestImporter::default())),
        Duration::from_secs(5),
    )
    .await;
    fake.wait_for("one run", |s| s.count("workEdit.toProcessed") >= 1)
        .await;
    stop(shutdown, task).await;
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
