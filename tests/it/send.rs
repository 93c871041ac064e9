//! Sending bundles: the API resumes from the first chunk not accepted, AMQP adds its
//! expectations once per send and treats an unroutable publish as a failure.

use std::time::Duration;

use crate::common::fake_opencti::{CONNECTOR_EXCHANGE, WORKER_EXCHANGE};
use crate::common::*;
use opencti_connectors::amqp::BrokerAddress;
use opencti_connectors::config::{MqConfig, QueueProtocol};
use opencti_connectors::opencti::client::{Connection, QueueConfig};
use opencti_connectors::runtime::delivery::{Budget, GiveBack, Stop};
use opencti_connectors::runtime::send::{SendTarget, Sender};
use opencti_connectors::stix::{Observable, to_object};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A sender for a connector whose push messages go to `exchange` with `routing`.
fn sender(protocol: QueueProtocol, exchange: &str, routing: &str) -> Sender {
    let connection = Connection {
        host: "127.0.0.1".into(),
        vhost: "/".into(),
        use_ssl: false,
        port: 5672,
        user: "guest".into(),
        pass: opencti_connectors::config::Secret::new("guest"),
    };
    let queues = QueueConfig {
        connection: connection.clone(),
        listen: "unused".into(),
        listen_routing: "unused".into(),
        listen_exchange: CONNECTOR_EXCHANGE.into(),
        push: "unused".into(),
        push_routing: routing.into(),
        push_exchange: exchange.into(),
    };
    let broker = BrokerAddress::resolve(&connection, &MqConfig::default());
    Sender::new(
        uuid::Uuid::new_v4().to_string(),
        protocol,
        queues,
        broker,
        None,
        Duration::from_secs(30),
    )
}

fn observables(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let ip = format!("1.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            to_object(&Observable::new("ipv4-addr", ip))
        })
        .collect()
}

fn target(work_id: &str) -> SendTarget<'_> {
    SendTarget {
        work_id: Some(work_id),
        draft_id: None,
        cleanup_inconsistent: false,
        applicant_id: None,
    }
}

#[tokio::test]
async fn an_api_retry_resumes_from_the_first_chunk_not_accepted() {
    let fake = FakeOpencti::start().await;
    {
        let mut st = fake.state.lock().unwrap();
        st.fail_pushes_after = 1;
        st.fail_pushes = 1;
    }
    let sender = sender(QueueProtocol::Api, WORKER_EXCHANGE, "unused");
    let platform = platform(&fake);
    let abort = CancellationToken::new();
    let sent = sender
        .send(
            &platform.client,
            observables(4500),
            target("w1"),
            &Budget::new(&platform, &abort),
        )
        .await
        .unwrap();
    assert_eq!(sent, 4500);
    assert_eq!(fake.count("stixBundlePush(failed)"), 1);
    let chunks: Vec<usize> = fake
        .calls("stixBundlePush")
        .iter()
        .map(|c| pushed_objects(c).len())
        .collect();
    assert_eq!(chunks, vec![2000, 2000, 500], "each chunk accepted once");
}

#[tokio::test]
async fn an_unroutable_publish_fails_the_send_after_one_expectation() {
    let fake = FakeOpencti::start().await;
    let sender = sender(QueueProtocol::Amqp, WORKER_EXCHANGE, "push_routing_nobody");
    let platform = platform(&fake);
    let abort = CancellationToken::new();
    let result = sender
        .send(
            &platform.client,
            observables(3),
            target("w2"),
            &Budget::new(&platform, &abort),
        )
        .await;
    assert!(
        matches!(&result, Err(Stop::Failed(m)) if m.contains("could route a message to no queue")),
        "a returned message is a failure, not a success: {result:?}"
    );
    assert_eq!(fake.count("workEdit.addExpectations"), 1);
}

#[tokio::test]
async fn expectations_are_added_once_however_often_the_delivery_is_retried() {
    let fake = FakeOpencti::start().await;
    // An exchange that does not exist: every delivery attempt fails transiently.
    let sender = sender(QueueProtocol::Amqp, "amqp.no.such.exchange", "x");
    let platform = platform(&fake);
    let abort = CancellationToken::new();
    let stop = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1800)).await;
        stop.cancel();
    });
    let result = sender
        .send(
            &platform.client,
            observables(3),
            target("w3"),
            &Budget::new(&platform, &abort),
        )
        .await;
    assert_eq!(result, Err(Stop::GiveBack(GiveBack::Aborted)));
    assert_eq!(fake.count("workEdit.addExpectations"), 1);
    let add = &fake.calls("workEdit.addExpectations")[0].variables;
    assert_eq!(add["expectations"], 3);
}
