//! The enrichment runtime end to end: real RabbitMQ, fake OpenCTI, a trivial test connector.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use opencti_connectors::config::QueueProtocol;
use opencti_connectors::connectors::{ConnectorError, Hosted};
use opencti_connectors::runtime::Platform;
use opencti_connectors::stix::Tlp;
use serde_json::Value;

fn enrichment(protocol: QueueProtocol) -> opencti_connectors::config::ConnectorSettings {
    settings("test", enrichment_mode(), protocol)
}

#[tokio::test]
async fn enrichment_pushes_the_bundle_reports_the_work_then_acks() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let connector = Arc::new(TestConnector {
        max_tlp: Some(Tlp::Amber),
        ..Default::default()
    });
    let running = Scenario::test_connector(&fake, connector.clone())
        .start()
        .await;
    let id = running.id().to_string();

    fake.wait_for("registration and a ping", |s| {
        s.count("registerConnector") == 1 && s.count("pingConnector") >= 1
    })
    .await;
    let reg = &fake.calls("registerConnector")[0].variables["input"];
    assert_eq!(reg["type"], "INTERNAL_ENRICHMENT");
    assert_eq!(reg["playbook_compatible"], true);
    assert_eq!(fake.calls("pingConnector")[0].variables["state"], "null");

    let outcome = running
        .send(&manual_message("work_1", &ip_stix(GREEN)))
        .await;

    let received = &fake.calls("workEdit.toReceived")[0].variables;
    assert_eq!(received["id"], "work_1");
    assert_eq!(
        received["message"],
        "Connector ready to process the operation"
    );
    let pushes = fake.calls("stixBundlePush");
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].variables["work_id"], "work_1");
    assert_eq!(pushes[0].variables["connectorId"], id.as_str());
    let objects = pushed_objects(&pushes[0]);
    let ids: Vec<&str> = objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
    // Marking first (fewest dependencies), then the entity, then the addition.
    assert_eq!(ids, vec![GREEN, added_id().as_str(), IP_ID]);
    assert_eq!(outcome.message, "Sent 3 stix bundle(s) for worker import");
    assert!(!outcome.in_error);
    assert_eq!(connector.calls(), 1);

    running.stop().await;
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        0,
        "the message was acked"
    );
    assert!(
        fake.state.lock().unwrap().invalid.is_empty(),
        "every operation validated"
    );
}

#[tokio::test]
async fn pre_6_8_9_message_reads_the_entity_through_graphql() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    fake.state
        .lock()
        .unwrap()
        .stix
        .insert(IP_ID.into(), ip_stix(GREEN));
    let body = format!(
        r#"{{"internal":{{"work_id":"work_old","applicant_id":null}},"event":{{"entity_id":"{IP_ID}"}}}}"#
    );
    let outcome = Scenario::test_connector(&fake, Arc::default())
        .run_once(body.as_bytes())
        .await;
    // The access check and the STIX export come in one request (`toStix`).
    assert_eq!(fake.count("stixCoreObject"), 1);
    assert_eq!(fake.count("stix"), 0);
    assert!(!outcome.in_error);
}

#[tokio::test]
async fn playbook_step_gets_the_original_objects_plus_additions_and_no_work_calls() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::test_connector(&fake, Arc::default())
        .start()
        .await;
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("playbookStepExecution", |s| {
        s.count("playbookStepExecution") == 1
    })
    .await;
    let call = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(call["bundle"].as_str().unwrap()).unwrap();
    let ids: Vec<&str> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![IP_ID, added_id().as_str()]);
    assert_eq!(call["step_id"], "step-2");
    assert_eq!(call["previous_step_id"], "step-1");
    let previous: Value = serde_json::from_str(call["previous_bundle"].as_str().unwrap()).unwrap();
    assert_eq!(previous["objects"].as_array().unwrap().len(), 1);
    let calls = fake.all_calls();
    assert!(
        calls
            .iter()
            .all(|c| !c.field.starts_with("workEdit") && c.field != "stixBundlePush"),
        "no work calls, no push"
    );
    running.stop().await;
}

#[tokio::test]
async fn failing_playbook_enrichment_still_answers_with_the_original_bundle() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let connector = Arc::new(TestConnector {
        fail: Some(ConnectorError::Rejected("upstream said no".into())),
        ..Default::default()
    });
    let running = Scenario::test_connector(&fake, connector).start().await;
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("playbookStepExecution", |s| {
        s.count("playbookStepExecution") == 1
    })
    .await;
    let call = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(call["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(bundle["objects"], serde_json::json!([ip_stix(GREEN)]));
    running.stop().await;
}

#[tokio::test]
async fn tlp_above_max_calls_nothing_upstream_and_the_work_says_why() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:RED", RED);
    let connector = Arc::new(TestConnector {
        max_tlp: Some(Tlp::Amber),
        ..Default::default()
    });
    let outcome = Scenario::test_connector(&fake, connector.clone())
        .run_once(&manual_message("work_red", &ip_stix(RED)))
        .await;
    assert!(outcome.in_error);
    assert_eq!(
        outcome.message,
        "Do not send any data, TLP of the observable is greater than MAX TLP"
    );
    assert_eq!(connector.calls(), 0, "the connector was never called");
    assert_eq!(fake.count("stixBundlePush"), 0);
}

#[tokio::test]
async fn malformed_messages_are_reported_acked_and_the_loop_goes_on() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::test_connector(&fake, Arc::default())
        .start()
        .await;
    let id = running.id().to_string();
    running.publish(b"this is not json").await;
    running
        .publish(br#"{"internal":{"work_id":"work_bad"},"event":"not an object"}"#)
        .await;
    running
        .publish(br#"{"internal":{"work_id":"work_noid"},"event":{}}"#)
        .await;
    running
        .publish(&manual_message("work_good", &ip_stix(GREEN)))
        .await;
    let outcomes = running.works(3).await;
    let bad = work(&outcomes, "work_bad");
    assert!(bad.in_error);
    assert!(
        bad.message
            .as_str()
            .unwrap()
            .starts_with("malformed listen message")
    );
    let noid = work(&outcomes, "work_noid");
    assert_eq!(
        noid.message,
        "Internal enrichment must be based on a specific id"
    );
    assert!(!work(&outcomes, "work_good").in_error);
    running.stop().await;
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        0,
        "nothing left to poison the queue"
    );
}

#[tokio::test]
async fn unreadable_entity_fails_the_work_with_pyctis_message() {
    let fake = FakeOpencti::start().await;
    let outcome = Scenario::test_connector(&fake, Arc::default())
        .run_once(&manual_message("work_x", &ip_stix(GREEN)))
        .await;
    assert_eq!(
        outcome.message,
        "Unable to read/access the entity, please check the connector permissions"
    );
    assert!(outcome.in_error);
}

#[tokio::test]
async fn transient_upstream_errors_are_retried_then_fail_the_work() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let connector = Arc::new(TestConnector {
        fail: Some(ConnectorError::retryable("HTTP 503 upstream")),
        ..Default::default()
    });
    let outcome = Scenario::test_connector(&fake, connector.clone())
        .run_once(&manual_message("work_r", &ip_stix(GREEN)))
        .await;
    assert_eq!(connector.calls(), 3, "the policy allows 3 attempts");
    assert_eq!(outcome.message, "HTTP 503 upstream");
    assert!(outcome.in_error);
}

#[tokio::test]
async fn platform_outage_during_push_is_retried_before_the_ack() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    fake.state.lock().unwrap().fail_pushes = 2;
    let outcome = Scenario::test_connector(&fake, Arc::default())
        .run_once(&manual_message("work_p", &ip_stix(GREEN)))
        .await;
    assert_eq!(fake.count("stixBundlePush(failed)"), 2);
    assert_eq!(fake.count("stixBundlePush"), 1);
    assert!(!outcome.in_error);
}

#[tokio::test]
async fn killed_daemon_mid_message_gets_the_message_redelivered() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    // The "daemon" runs on its own runtime so that dropping it kills every task at once,
    // as a crash would: no ack, no nack, connections simply gone.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let blocked = Arc::new(TestConnector {
        gate: Some(gate),
        ..Default::default()
    });
    let daemon = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let platform = platform(&fake);
    let hosted = Hosted::Enrichment(blocked.clone());
    let settings = s.clone();
    daemon.spawn(async move {
        opencti_connectors::runtime::run(
            platform,
            vec![(settings, hosted)],
            Default::default(),
            Duration::from_secs(5),
        )
        .await
    });
    fake.wait_for("registration", |st| st.count("registerConnector") == 1)
        .await;
    fake.publish_listen(&id, &manual_message("work_k", &ip_stix(GREEN)))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while blocked.calls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message never reached the connector"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.shutdown_background();
    assert_eq!(fake.count("workEdit.toProcessed"), 0);

    let healthy = Arc::new(TestConnector::default());
    let running = Scenario::new(&fake, (s, Hosted::Enrichment(healthy.clone())))
        .start()
        .await;
    running.works(1).await;
    assert_eq!(healthy.calls(), 1);
    assert_eq!(
        fake.calls("workEdit.toProcessed")[0].variables["id"],
        "work_k"
    );
    running.stop().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_work_within_the_deadline() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let connector = Arc::new(TestConnector {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Enrichment(connector.clone()),
        Duration::from_secs(5),
    )
    .await;
    fake.publish_listen(&id, &manual_message("work_s", &ip_stix(GREEN)))
        .await;
    while connector.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "the runtime waits for in-flight work");
    gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        fake.calls("workEdit.toProcessed")[0].variables["inError"],
        false
    );
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}

#[tokio::test]
async fn shutdown_deadline_requeues_what_did_not_finish() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let connector = Arc::new(TestConnector {
        gate: Some(gate),
        fail: None,
        ..Default::default()
    });
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Enrichment(connector.clone()),
        Duration::from_millis(300),
    )
    .await;
    fake.publish_listen(&id, &manual_message("work_d", &ip_stix(GREEN)))
        .await;
    while connector.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connector never returns: the deadline must still end the runtime.
    shutdown.stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the drain deadline ends the runtime")
        .unwrap();
    assert_eq!(fake.count("workEdit.toProcessed"), 0);
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        1,
        "the message is back in the queue"
    );
}

#[tokio::test]
async fn amqp_protocol_publishes_one_object_per_message_after_expectations() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let scenario = Scenario::new(
        &fake,
        (
            enrichment(QueueProtocol::Amqp),
            Hosted::Enrichment(Arc::new(TestConnector::default())),
        ),
    );
    let id = scenario.id();
    let outcome = scenario
        .run_once(&manual_message("work_a", &ip_stix(GREEN)))
        .await;
    let expectations = &fake.calls("workEdit.addExpectations")[0].variables;
    assert_eq!(expectations["id"], "work_a");
    assert_eq!(expectations["expectations"], 3);
    assert_eq!(fake.count("stixBundlePush"), 0);
    let messages = fake.drain_queue(&FakeOpencti::push_queue(&id)).await;
    assert_eq!(messages.len(), 3);
    use base64::Engine;
    let mut seqs = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let envelope: Value = serde_json::from_slice(m).unwrap();
        assert_eq!(envelope["bundle_type"], "QUEUE_BUNDLE");
        assert_eq!(envelope["work_id"], "work_a");
        assert_eq!(envelope["applicant_id"], fake_opencti_user());
        assert_eq!(envelope["action_sequence"], i + 1);
        assert_eq!(envelope["update"], false);
        assert!(envelope["draft_id"].is_null());
        let bundle: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(envelope["content"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(bundle["objects"].as_array().unwrap().len(), 1);
        seqs.push(bundle["x_opencti_seq"].as_u64().unwrap());
    }
    assert!(
        seqs.windows(2).all(|w| w[0] <= w[1]),
        "dependencies first: {seqs:?}"
    );
    assert_eq!(outcome.message, "Sent 3 stix bundle(s) for worker import");
}

fn fake_opencti_user() -> &'static str {
    crate::common::fake_opencti::CONNECTOR_USER_ID
}

#[tokio::test]
async fn one_failing_connector_does_not_stop_another() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let good = enrichment(QueueProtocol::Api);
    let bad = opencti_connectors::config::ConnectorSettings {
        key: "broken",
        ..enrichment(QueueProtocol::Api)
    };
    let good_id = good.id.to_string();
    let bad_id = bad.id.to_string();
    let shutdown = opencti_connectors::runtime::Shutdown::default();
    let task = tokio::spawn(opencti_connectors::runtime::run(
        platform(&fake),
        vec![
            (bad, Hosted::Enrichment(Arc::new(PanickingConnector))),
            (good, Hosted::Enrichment(Arc::new(TestConnector::default()))),
        ],
        shutdown.clone(),
        Duration::from_secs(2),
    ));
    fake.wait_for("both registered", |s| s.count("registerConnector") == 2)
        .await;
    fake.publish_listen(&bad_id, &manual_message("work_bad", &ip_stix(GREEN)))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.publish_listen(&good_id, &manual_message("work_good", &ip_stix(GREEN)))
        .await;
    fake.wait_for("the healthy connector's work", |s| {
        s.calls
            .iter()
            .any(|c| c.field == "workEdit.toProcessed" && c.variables["id"] == "work_good")
    })
    .await;
    fake.wait_for("the panic reported on the work", |s| {
        s.calls.iter().any(|c| {
            c.field == "workEdit.toProcessed"
                && c.variables["id"] == "work_bad"
                && c.variables["inError"] == true
        })
    })
    .await;
    stop(shutdown, task).await;
}

struct PanickingConnector;

#[async_trait::async_trait]
impl opencti_connectors::connectors::EnrichmentConnector for PanickingConnector {
    fn max_tlp(&self) -> Option<Tlp> {
        None
    }
    async fn enrich(
        &self,
        _: &opencti_connectors::connectors::EnrichmentRequest,
    ) -> Result<opencti_connectors::connectors::Outcome, ConnectorError> {
        panic!("connector bug")
    }
    async fn check_upstream(&self) -> Result<String, ConnectorError> {
        Ok("a test connector has no upstream".into())
    }
}

#[tokio::test]
async fn a_request_in_a_draft_works_in_that_draft_only() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let running = Scenario::test_connector(&fake, Arc::default())
        .start()
        .await;
    let mut in_draft: Value =
        serde_json::from_slice(&manual_message("work_d", &ip_stix(GREEN))).unwrap();
    in_draft["internal"]["draft_id"] = "draft-1".into();
    running.send(in_draft.to_string().as_bytes()).await;
    running
        .send(&manual_message("work_live", &ip_stix(GREEN)))
        .await;
    running.stop().await;

    let drafts = |field: &str| -> Vec<Option<String>> {
        fake.calls(field).into_iter().map(|c| c.draft_id).collect()
    };
    let draft = Some("draft-1".to_string());
    assert_eq!(drafts("stixBundlePush"), vec![draft.clone(), None]);
    assert_eq!(drafts("workEdit.toReceived"), vec![draft.clone(), None]);
    assert_eq!(drafts("workEdit.toProcessed"), vec![draft, None]);
    assert!(
        drafts("pingConnector").iter().all(Option::is_none),
        "connector calls stay outside the draft"
    );
}

#[tokio::test]
async fn a_hung_platform_cannot_hold_the_shutdown_past_its_bound() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    let drain = Duration::from_millis(500);
    let (shutdown, task) = start(
        &fake,
        s,
        Hosted::Enrichment(Arc::new(TestConnector::default())),
        drain,
    )
    .await;
    // From now on the platform takes pushes and pings and never answers.
    fake.state.lock().unwrap().hang = vec!["stixBundlePush".into(), "pingConnector".into()];
    fake.publish_listen(&id, &manual_message("work_hung", &ip_stix(GREEN)))
        .await;
    fake.wait_for("the hung push", |s| s.count("stixBundlePush(hung)") == 1)
        .await;
    let started = std::time::Instant::now();
    shutdown.stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the runtime stops")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < drain + opencti_connectors::runtime::HARD_STOP + Duration::from_secs(1),
        "stopped after {took:?}"
    );
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        1,
        "the message was given back for redelivery"
    );
}

#[tokio::test]
async fn a_platform_failing_every_push_fails_the_work_after_the_retry_budget() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    fake.state.lock().unwrap().fail_pushes = usize::MAX;
    let mut platform = platform(&fake);
    Arc::get_mut(&mut platform).unwrap().max_retry = Duration::from_secs(1);
    let scenario = Scenario::test_connector(&fake, Arc::default()).on(platform);
    let id = scenario.id();
    let done = scenario
        .run_once(&manual_message("work_5xx", &ip_stix(GREEN)))
        .await;
    assert!(done.in_error);
    assert!(
        done.message
            .as_str()
            .unwrap()
            .starts_with("OpenCTI answered HTTP 503"),
        "{done:?}"
    );
    assert!(fake.count("stixBundlePush(failed)") >= 2, "retried first");
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        0,
        "then acked: no poisoned queue"
    );
}

#[tokio::test]
async fn an_unreachable_platform_pauses_the_consumer_until_it_answers() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let proxy = proxy::Proxy::start(&fake.url).await;
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    let platform = Arc::new(Platform {
        client: opencti_connectors::opencti::OpenctiClient::new(
            &proxy.url,
            opencti_connectors::config::Secret::new(fake_opencti::TOKEN),
            true,
        )
        .unwrap(),
        max_retry: Duration::from_millis(500),
        ..Arc::try_unwrap(crate::common::platform(&fake))
            .ok()
            .unwrap()
    });
    let metrics = platform.metrics.clone();
    let running = Scenario::new(
        &fake,
        (s, Hosted::Enrichment(Arc::new(TestConnector::default()))),
    )
    .on(platform)
    .start()
    .await;
    let up = || metrics.all_up(&["test"]);
    for _ in 0..100 {
        if up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up(), "consuming");

    proxy.down();
    running
        .publish(&manual_message("work_down", &ip_stix(GREEN)))
        .await;
    for _ in 0..100 {
        if !up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!up(), "paused while OpenCTI is unreachable");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.queue_len(&FakeOpencti::listen_queue(&id)).await,
        1,
        "the message waits in the queue instead of cycling"
    );

    proxy.up().await;
    running.works(1).await;
    assert_eq!(fake.processed("work_down")["inError"], false);
    assert!(up(), "consuming again");
    running.stop().await;
}

#[tokio::test]
async fn a_connector_that_cannot_reach_its_broker_is_not_up() {
    let fake = FakeOpencti::start().await;
    let s = enrichment(QueueProtocol::Api);
    // Registered, but the broker it is told to use answers nothing.
    let platform = platform_with_broker_port(&fake, crate::common::daemon::free_port());
    let metrics = platform.metrics.clone();
    let running = Scenario::new(
        &fake,
        (s, Hosted::Enrichment(Arc::new(TestConnector::default()))),
    )
    .on(platform)
    .start()
    .await;
    fake.wait_for("a ping", |s| s.count("pingConnector") >= 1)
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !metrics.all_up(&["test"]),
        "registered and pinging, but not consuming: /healthz must say so"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_lost_consumer_gives_its_message_back_before_the_next_consumer_takes_it() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let connector = Arc::new(TestConnector {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let running = Scenario::new(&fake, (s, Hosted::Enrichment(connector.clone())))
        .start()
        .await;
    running
        .publish(&manual_message("work_lost", &ip_stix(GREEN)))
        .await;
    for _ in 0..100 {
        if connector.calls() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connector.calls(), 1, "held in flight");
    // The broker drops our consumer's connection (as on a network loss): it redelivers.
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--no-table-headers",
            "-q",
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let pids: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(&id))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!pids.is_empty());
    for pid in pids {
        std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test"])
            .output()
            .unwrap();
    }
    for _ in 0..300 {
        if connector.calls() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connector.calls(), 2, "redelivered to the next consumer");
    gate.add_permits(1);
    running.works(1).await;
    running.stop().await;
    assert_eq!(
        connector
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "never handled twice at the same time"
    );
}

/// Where an object carries its organisations: its OpenCTI extension, else the top level.
fn granted(object: &Value) -> Vec<String> {
    let ext = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";
    let refs = object
        .pointer(&format!("/extensions/{ext}/granted_refs"))
        .or_else(|| object.get("x_opencti_granted_refs"));
    refs.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

const ORG: &str = "identity--6f1c2a59-1a7a-5d6e-9b8e-2f8a4c0d1e11";

#[tokio::test]
async fn every_object_sent_is_shared_with_the_entity_s_organisations_and_the_entity_is_fresh() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    // The platform's export now: shared with ORG, score 90; the queued snapshot said 10.
    let mut now = ip_stix(GREEN);
    now["x_opencti_granted_refs"] = serde_json::json!([ORG]);
    now["x_opencti_score"] = 90.into();
    fake.state.lock().unwrap().stix.insert(IP_ID.into(), now);
    let mut stale = ip_stix(GREEN);
    stale["x_opencti_score"] = 10.into();
    let objects = Scenario::test_connector(&fake, Arc::default())
        .run_once(&manual_message("work_org", &stale))
        .await
        .objects;
    assert_eq!(objects.len(), 3);
    for object in &objects {
        assert_eq!(granted(object), [ORG], "{object}");
    }
    let entity = objects.iter().find(|o| o["id"] == IP_ID).unwrap();
    assert_eq!(
        entity["x_opencti_score"], 90,
        "the export at processing time, not the snapshot"
    );
}

#[tokio::test]
async fn a_playbook_answer_is_shared_too_and_an_unreadable_entity_is_refused() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let connector = Arc::new(TestConnector::default());
    let running = Scenario::new(&fake, (s, Hosted::Enrichment(connector.clone())))
        .start()
        .await;
    let mut shared = ip_stix(GREEN);
    shared["x_opencti_granted_refs"] = serde_json::json!([ORG]);
    running.publish(&playbook_message(vec![shared])).await;
    fake.wait_for("the step", |s| s.count("playbookStepExecution") == 1)
        .await;
    let step = &fake.calls("playbookStepExecution")[0].variables;
    let bundle: Value = serde_json::from_str(step["bundle"].as_str().unwrap()).unwrap();
    for object in bundle["objects"].as_array().unwrap() {
        assert_eq!(granted(object), [ORG], "{object}");
    }
    assert_eq!(connector.calls(), 1);

    // An entity the connector user cannot read: refused without an upstream call, and the
    // playbook still gets its bundle back unchanged.
    fake.state.lock().unwrap().entities.clear();
    running
        .publish(&playbook_message(vec![ip_stix(GREEN)]))
        .await;
    fake.wait_for("the second step", |s| s.count("playbookStepExecution") == 2)
        .await;
    running.stop().await;
    assert_eq!(connector.calls(), 1, "no upstream call");
    let step = &fake.calls("playbookStepExecution")[1].variables;
    let bundle: Value = serde_json::from_str(step["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(bundle["objects"], serde_json::json!([ip_stix(GREEN)]));
}

#[tokio::test]
async fn a_playbook_marking_that_is_no_static_tlp_is_resolved_before_the_tlp_gate() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let custom = "marking-definition--9b1f8c2e-3d4a-4e5f-8a6b-7c8d9e0f1a2b";
    fake.state.lock().unwrap().markings.insert(
        custom.into(),
        serde_json::json!({"id": "m-red", "standard_id": custom, "definition_type": "TLP", "definition": "TLP:RED", "x_opencti_order": 4}),
    );
    let connector = Arc::new(TestConnector {
        max_tlp: Some(Tlp::Amber),
        ..Default::default()
    });
    let running = Scenario::test_connector(&fake, connector.clone())
        .start()
        .await;
    // A previous step marked the bundle's copy with a custom RED marking.
    let mut marked = ip_stix(GREEN);
    marked["object_marking_refs"] = serde_json::json!([GREEN, custom]);
    running.publish(&playbook_message(vec![marked])).await;
    fake.wait_for("the step", |s| s.count("playbookStepExecution") == 1)
        .await;
    running.stop().await;
    assert_eq!(fake.count("markingDefinition"), 1);
    assert_eq!(
        connector.calls(),
        0,
        "RED is above AMBER: nothing sent upstream"
    );
}

#[tokio::test]
async fn the_envelope_names_the_applicant_and_a_long_work_is_pinged() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Amqp);
    let id = s.id.to_string();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let connector = Arc::new(TestConnector {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let running = Scenario::new(&fake, (s, Hosted::Enrichment(connector)))
        .start()
        .await;
    let mut message: Value =
        serde_json::from_slice(&manual_message("work_long", &ip_stix(GREEN))).unwrap();
    message["internal"]["applicant_id"] = "applicant-user-1".into();
    running.publish(message.to_string().as_bytes()).await;
    // The test platform pings works every 200 ms: hold the message past two pings.
    fake.wait_for("two work pings", |s| s.count("workEdit.ping") >= 2)
        .await;
    gate.add_permits(1);
    running.works(1).await;
    running.stop().await;
    assert_eq!(fake.calls("workEdit.ping")[0].variables["id"], "work_long");
    let envelopes = fake.drain_queue(&FakeOpencti::push_queue(&id)).await;
    assert!(!envelopes.is_empty());
    for body in envelopes {
        let envelope: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(envelope["applicant_id"], "applicant-user-1");
    }
}

/// A message held as long as the broker allows (`mq.consumer_timeout`) is given back before
/// the broker would close the channel, then processed normally.
#[tokio::test]
async fn a_message_held_as_long_as_the_broker_allows_is_given_back_then_done() {
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let s = enrichment(QueueProtocol::Api);
    let id = s.id.to_string();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let connector = Arc::new(TestConnector {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let mut platform = crate::common::platform(&fake);
    Arc::get_mut(&mut platform).unwrap().hold_limit = Duration::from_millis(800);
    let metrics = platform.metrics.clone();
    let running = Scenario::new(&fake, (s, Hosted::Enrichment(connector.clone())))
        .on(platform)
        .start()
        .await;
    running
        .publish(&manual_message("work_h", &ip_stix(GREEN)))
        .await;
    let given_back = r#"event="messages_given_back"} 1"#;
    for _ in 0..100 {
        if metrics.render().contains(given_back) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.render().contains(given_back), "given back once");
    assert_eq!(fake.count("workEdit.toProcessed"), 0);
    gate.add_permits(1);
    running.works(1).await;
    assert_eq!(fake.processed("work_h")["inError"], false);
    assert_eq!(connector.calls(), 2, "processed again after the give-back");
    running.stop().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
}
