//! The platform version decides the dialect: a fake answering as 7.x gets the 7.x additions
//! (registration `version` and `slug`, multi-part import works, `"no_split": false` in
//! AMQP messages, `WORK_NOT_ALIVE` taken as "the work is gone"); one answering as 6.8.10
//! gets exactly what it got before; and the version is read again when the platform comes
//! back from an outage.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use opencti_connectors::config::QueueProtocol;
use opencti_connectors::connectors::{ConnectorError, Hosted, ImportConnector, ImportContext};
use opencti_connectors::opencti::{Dialect, OpenctiError};
use opencti_connectors::runtime::availability::Availability;
use opencti_connectors::stix::{Observable, to_object};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::fake_opencti::{Outage, VERSION_6, VERSION_7};
use crate::common::*;

/// Sends two observables in one bundle.
struct TwoObservables;

#[async_trait]
impl ImportConnector for TwoObservables {
    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        Ok("no upstream".into())
    }

    async fn run(&self, ctx: &mut dyn ImportContext) -> Result<String, ConnectorError> {
        let objects = ["1.1.1.1", "2.2.2.2"]
            .iter()
            .map(|ip| to_object(&Observable::new("ipv4-addr", *ip)))
            .collect();
        let sent = ctx.send(objects).await?;
        Ok(format!("imported {sent} objects"))
    }
}

/// One run of the IPsum-named importer over AMQP against `fake`: the recorded
/// registration input, `workAdd` variables, the push messages and the closing call.
async fn one_run(fake: &FakeOpencti) -> (Value, Value, Vec<Value>, Value) {
    let s = settings(
        "ipsum",
        import_mode(Duration::from_secs(3600)),
        QueueProtocol::Amqp,
    );
    let id = s.id.to_string();
    Scenario::new(fake, (s, Hosted::Import(Arc::new(TwoObservables))))
        .works(1)
        .await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let messages = fake
        .drain_queue(&FakeOpencti::push_queue(&id))
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(m).unwrap())
        .inspect(|m| {
            let content = b64.decode(m["content"].as_str().unwrap()).unwrap();
            serde_json::from_slice::<Value>(&content).expect("a bundle");
        })
        .collect();
    assert!(
        fake.state.lock().unwrap().invalid.is_empty(),
        "every operation validated: {:?}",
        fake.state.lock().unwrap().invalid
    );
    (
        fake.calls("registerConnector")[0].variables["input"].clone(),
        fake.calls("workAdd")[0].variables.clone(),
        messages,
        fake.calls("workEdit.toProcessed")[0].variables.clone(),
    )
}

#[tokio::test]
async fn a_7x_platform_gets_version_slug_multi_part_works_and_no_split() {
    let fake = FakeOpencti::start_as(VERSION_7).await;
    let (input, work, messages, processed) = one_run(&fake).await;
    assert_eq!(input["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(input["slug"], "ipsum");
    assert_eq!(work["isMultiPartWork"], true);
    assert_eq!(messages.len(), 2, "one message per object");
    for m in &messages {
        assert_eq!(m["no_split"], false, "{m}");
    }
    assert_eq!(processed["inError"], false);
    assert_eq!(fake.count("workEdit.addExpectations"), 1);
}

#[tokio::test]
async fn a_6_8_platform_gets_exactly_the_6x_operations() {
    let fake = FakeOpencti::start_as(VERSION_6).await;
    let (input, work, messages, processed) = one_run(&fake).await;
    assert!(
        input.get("version").is_none() && input.get("slug").is_none(),
        "{input}"
    );
    assert!(work.get("isMultiPartWork").is_none(), "{work}");
    assert_eq!(messages.len(), 2);
    for m in &messages {
        assert!(m.get("no_split").is_none(), "{m}");
    }
    assert_eq!(processed["inError"], false);
}

#[tokio::test]
async fn an_unparseable_version_is_spoken_to_as_6x() {
    let fake = FakeOpencti::start_as("nightly-build").await;
    let (input, work, messages, _) = one_run(&fake).await;
    assert!(input.get("version").is_none(), "{input}");
    assert!(work.get("isMultiPartWork").is_none(), "{work}");
    assert!(messages.iter().all(|m| m.get("no_split").is_none()));
}

#[tokio::test]
async fn on_7x_a_work_gone_from_opencti_still_gets_its_bundles_as_pycti_7_sends_them() {
    let fake = FakeOpencti::start_as(VERSION_7).await;
    fake.state.lock().unwrap().dead_works = true;
    let (_, _, messages, processed) = one_run(&fake).await;
    assert_eq!(fake.count("workEdit.addExpectations(not alive)"), 1);
    assert_eq!(messages.len(), 2, "published all the same");
    assert_eq!(processed["inError"], false, "{processed}");
}

#[tokio::test]
async fn on_6x_a_work_not_alive_answer_fails_the_send_as_before() {
    let fake = FakeOpencti::start_as(VERSION_6).await;
    fake.state.lock().unwrap().dead_works = true;
    let (_, _, messages, processed) = one_run(&fake).await;
    assert!(messages.is_empty(), "nothing published");
    assert_eq!(processed["inError"], true, "{processed}");
    assert!(
        processed["message"]
            .as_str()
            .unwrap()
            .contains("WORK_NOT_ALIVE"),
        "{processed}"
    );
}

#[tokio::test]
async fn the_version_is_read_again_when_opencti_comes_back() {
    let fake = FakeOpencti::start_as(VERSION_6).await;
    let platform = platform(&fake);
    let client = &platform.client;
    assert_eq!(client.dialect(), Dialect::V6, "nothing read yet");
    client.health_check().await.unwrap();
    assert_eq!(client.platform_version().as_deref(), Some(VERSION_6));
    // The platform goes down; a failed call finds `about` down too.
    fake.state.lock().unwrap().outage = Some(Outage::Unavailable);
    let availability = Availability::new(platform.metrics.clone());
    let error = OpenctiError::Unreachable("refused".into());
    assert!(!availability.answers(client, &error).await);
    assert!(availability.is_down());
    // It comes back upgraded.
    {
        let mut st = fake.state.lock().unwrap();
        st.version = VERSION_7.into();
        st.outage = None;
    }
    let up = tokio::time::timeout(
        Duration::from_secs(10),
        availability.wait_up(&CancellationToken::new()),
    )
    .await;
    assert_eq!(up, Ok(true));
    assert_eq!(client.platform_version().as_deref(), Some(VERSION_7));
    assert_eq!(client.dialect(), Dialect::V7);
}

#[tokio::test]
async fn a_daemon_started_before_opencti_reads_the_version_before_registering() {
    // The platform made by the tests never read `about`: registration reads it first.
    let fake = FakeOpencti::start_as(VERSION_7).await;
    let (input, _, _, _) = one_run(&fake).await;
    assert_eq!(input["slug"], "ipsum");
    let fields: Vec<String> = fake.all_calls().iter().map(|c| c.field.clone()).collect();
    let about = fields
        .iter()
        .position(|f| f == "about")
        .expect("about read");
    let register = fields
        .iter()
        .position(|f| f == "registerConnector")
        .unwrap();
    assert!(about < register, "{fields:?}");
}
