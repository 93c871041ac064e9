//! A RabbitMQ resource alarm during AMQP-protocol sends, with the compiled daemon: the broker
//! blocks every publishing connection of the node, so these tests run alone, as their own
//! step after the suite (`nextest` profile `broker-alarm`, excluded from the default one).
//! The alarm is raised by lowering nothing: the disk free limit is set above the free space,
//! and the limit is restored when the test ends, failed assertions included.

use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::*;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `rabbitmqctl` with `args`; its stdout.
fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl (the broker's own CLI) is on this machine");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the disk alarm is in effect.
fn alarm_on() -> bool {
    rabbitmqctl(&["eval", "rabbit_alarm:get_alarms()."]).contains("disk")
}

/// A disk alarm on the broker while it lives; the previous limit is restored on drop.
struct DiskAlarm {
    previous: String,
}

impl DiskAlarm {
    async fn raise() -> DiskAlarm {
        let current = rabbitmqctl(&["eval", "application:get_env(rabbit, disk_free_limit)."]);
        // `{ok,50000000}` (bytes), or `{ok,{mem_relative,1.0}}`: kept as the broker printed it.
        let previous = current
            .trim()
            .strip_prefix("{ok,")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or("50000000")
            .to_string();
        let alarm = DiskAlarm { previous };
        rabbitmqctl(&["set_disk_free_limit", "1000000GB"]);
        for _ in 0..100 {
            if alarm_on() {
                return alarm;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the disk alarm did not go off");
    }

    fn restore(&self) {
        let limit = self.previous.as_str();
        let restored = if limit.starts_with("{mem_relative") {
            let ratio = limit
                .trim_start_matches("{mem_relative,")
                .trim_end_matches('}');
            std::process::Command::new("rabbitmqctl")
                .args(["set_disk_free_limit", "mem_relative", ratio])
                .status()
        } else {
            std::process::Command::new("rabbitmqctl")
                .args(["set_disk_free_limit", limit])
                .status()
        };
        if !matches!(restored, Ok(s) if s.success()) {
            eprintln!("could not restore the broker's disk free limit to {limit}");
        }
        for _ in 0..100 {
            if !alarm_on() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("the disk alarm is still on after restoring the limit");
    }
}

impl Drop for DiskAlarm {
    fn drop(&mut self) {
        self.restore();
    }
}

/// A daemon running IPinfo over the AMQP protocol, against an IPinfo answering after `delay`.
async fn amqp_daemon(fake: &FakeOpencti, id: &str, delay: Duration) -> (Daemon, MockServer) {
    let upstream = MockServer::start().await;
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(
                    fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
                    "application/json",
                )
                .set_delay(delay),
        )
        .mount(&upstream)
        .await;
    let daemon = Daemon::spawn(&[
        ("OPENCTI_URL", fake.url.clone()),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN.into()),
        ("IPINFO_ENABLED", "true".into()),
        ("IPINFO_CONNECTOR_ID", id.to_string()),
        ("IPINFO_TOKEN", "ipinfo-secret-token".into()),
        ("IPINFO_API_BASE_URL", upstream.uri()),
        ("IPINFO_CONNECTOR_CONCURRENCY", "4".into()),
        ("IPINFO_CONNECTOR_QUEUE_PROTOCOL", "amqp".into()),
        ("IPINFO_CACHE_TTL", "PT0S".into()),
        ("DAEMON_PING_INTERVAL", "PT1S".into()),
        ("DAEMON_SHUTDOWN_TIMEOUT", "PT3S".into()),
        ("LOG_LEVEL", "info".into()),
    ]);
    (daemon, upstream)
}

/// The works processed without error.
fn succeeded(fake: &FakeOpencti) -> std::collections::BTreeSet<String> {
    fake.calls("workEdit.toProcessed")
        .iter()
        .filter(|c| c.variables["inError"] == false)
        .filter_map(|c| c.variables["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_alarm_during_sends_loses_nothing_and_never_holds_the_shutdown() {
    const WORKS: usize = 4;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let id = uuid::Uuid::new_v4().to_string();

    // 1. Blocked while sending, then unblocked: every send completes, nothing is lost.
    // rabbitmqctl takes a second or two a call: the upstream answers long after the alarm.
    let (daemon, upstream) = amqp_daemon(&fake, &id, Duration::from_secs(8)).await;
    fake.wait_for("registration", |s| s.count("registerConnector") == 1)
        .await;
    for i in 0..WORKS {
        fake.publish_listen(&id, &manual_message(&format!("work_a{i}"), &ip_stix(GREEN)))
            .await;
    }
    // Every request is in flight upstream: the alarm goes off before their sends.
    for _ in 0..100 {
        if upstream.received_requests().await.unwrap().len() >= WORKS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alarm = DiskAlarm::raise().await;
    fake.wait_for("the expectations, before the blocked publishes", |s| {
        s.count("workEdit.addExpectations") >= WORKS
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        succeeded(&fake).is_empty(),
        "no work is done while the broker takes no publish"
    );
    drop(alarm);
    fake.wait_for_long(
        "every work, once the alarm cleared",
        Duration::from_secs(60),
        |s| {
            s.calls
                .iter()
                .filter(|c| c.field == "workEdit.toProcessed" && c.variables["inError"] == false)
                .count()
                >= WORKS
        },
    )
    .await;

    // 2. Blocked while sending, then SIGTERM: the daemon exits within its shutdown bound
    // (drain PT3S + the 5 s hard stop), and a new one pushes every request after the alarm.
    for i in 0..WORKS {
        fake.publish_listen(&id, &manual_message(&format!("work_b{i}"), &ip_stix(GREEN)))
            .await;
    }
    for _ in 0..100 {
        if upstream.received_requests().await.unwrap().len() >= 2 * WORKS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alarm = DiskAlarm::raise().await;
    fake.wait_for("the expectations of the second requests", |s| {
        s.count("workEdit.addExpectations") >= 2 * WORKS
    })
    .await;
    let asked = std::time::Instant::now();
    let out = daemon.terminate().await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(3 + 5 + 2),
        "SIGTERM exits within the shutdown bound even with a blocked broker: {took:?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !succeeded(&fake).iter().any(|w| w.starts_with("work_b")),
        "nothing of the second batch was acked as done"
    );
    drop(alarm);
    let (second, _upstream) = amqp_daemon(&fake, &id, Duration::ZERO).await;
    fake.wait_for_long(
        "every request of the second batch, by the next daemon",
        Duration::from_secs(60),
        |s| {
            s.calls
                .iter()
                .filter(|c| c.closes_work("work_b") && c.variables["inError"] == false)
                .count()
                >= WORKS
        },
    )
    .await;
    let _ = second.terminate().await;
    assert_eq!(fake.queue_len(&FakeOpencti::listen_queue(&id)).await, 0);
    let pushed = fake.drain_queue(&FakeOpencti::push_queue(&id)).await;
    assert!(
        pushed.len() >= 2 * WORKS,
        "every request's objects are on the push queue ({} messages)",
        pushed.len()
    );
}
