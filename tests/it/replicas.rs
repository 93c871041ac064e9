//! Replicas: two daemon processes with one configuration against one fake OpenCTI and the
//! real RabbitMQ. IPsum runs on one of them at a time (the import lock); the other takes
//! over when the holder is SIGKILLed; enrichment requests are shared between both. Each
//! replica talks to the fake through its own path, so every call says which one made it.
//! These run one at a time (`.config/nextest.toml`, group `replicas`): they measure time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::common::daemon::Daemon;
use crate::common::fake_opencti::Call;
use crate::common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REPLICAS: [&str; 2] = ["a", "b"];

/// A feed server answering the IPsum fixture `levels/8.txt`.
async fn feed() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/levels/8.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ipsum", "levels/8.txt")))
        .mount(&server)
        .await;
    server
}

/// One replica's environment: IPsum (`ipsum_id`, every `period`) and, with `ipinfo`, IPinfo
/// (`ipinfo_id` against `upstream`), both against the fake through `replica`'s path.
fn replica_env(
    fake: &FakeOpencti,
    replica: &str,
    ipsum: Option<(&str, &str, &str)>,
    ipinfo: Option<(&str, &str)>,
    ping_interval: &str,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("OPENCTI_URL", fake.replica_url(replica)),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN.into()),
        ("DAEMON_PING_INTERVAL", ping_interval.into()),
        // Logs are piped and not read: keep them few.
        ("LOG_LEVEL", "warn".into()),
    ];
    if let Some((id, feed, period)) = ipsum {
        env.extend([
            ("IPSUM_ENABLED", "true".into()),
            ("IPSUM_CONNECTOR_ID", id.to_string()),
            ("CONNECTOR_IPSUM_API_BASE_URL", feed.to_string()),
            ("IPSUM_CONNECTOR_DURATION_PERIOD", period.to_string()),
        ]);
    }
    if let Some((id, upstream)) = ipinfo {
        env.extend([
            ("IPINFO_ENABLED", "true".into()),
            ("IPINFO_CONNECTOR_ID", id.to_string()),
            ("IPINFO_TOKEN", "ipinfo-secret-token".into()),
            ("IPINFO_API_BASE_URL", upstream.to_string()),
        ]);
    }
    env
}

/// Both replicas, started together with [`replica_env`].
fn both(
    fake: &FakeOpencti,
    ipsum: Option<(&str, &str, &str)>,
    ipinfo: Option<(&str, &str)>,
    ping_interval: &str,
) -> Vec<Daemon> {
    REPLICAS
        .iter()
        .map(|r| Daemon::spawn(&replica_env(fake, r, ipsum, ipinfo, ping_interval)))
        .collect()
}

/// `/healthz` of a replica: its status and body.
async fn health(daemon: &Daemon) -> (u16, String) {
    match reqwest::get(format!("http://127.0.0.1:{}/healthz", daemon.port)).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Waits until exactly one of `daemons` says it holds IPsum's lock and the others stand by;
/// returns the holder's index.
async fn holder(daemons: &[&Daemon]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut held = Vec::new();
        let mut standby = 0;
        for (i, d) in daemons.iter().enumerate() {
            let (status, body) = health(d).await;
            if status == 200 && body.contains("ipsum: import lock held") {
                held.push(i);
            } else if status == 200 && body.contains("ipsum: standby") {
                standby += 1;
            }
        }
        if held.len() == 1 && held.len() + standby == daemons.len() {
            return held[0];
        }
        assert!(held.len() <= 1, "two replicas hold the import lock");
        assert!(Instant::now() < deadline, "no replica took the lock");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The calls about connector `id` (by `id`, `connectorId` or `input.id`), in order.
fn calls_of(fake: &FakeOpencti, id: &str) -> Vec<Call> {
    fake.all_calls()
        .into_iter()
        .filter(|c| {
            let v = &c.variables;
            v["connectorId"] == id || v["id"] == id || v["input"]["id"] == id
        })
        .collect()
}

/// The import runs of connector `id`: (replica, workAdd time, toProcessed time).
fn runs(fake: &FakeOpencti, id: &str) -> Vec<(String, Instant, Option<Instant>)> {
    let all = fake.all_calls();
    all.iter()
        .filter(|c| c.field == "workAdd" && c.variables["connectorId"] == id)
        .map(|add| {
            let work = add.work_id.as_deref().unwrap_or_default();
            let closed = all
                .iter()
                .find(|c| c.field == "workEdit.toProcessed" && c.variables["id"] == work)
                .map(|c| c.at);
            (add.replica.clone().unwrap_or_default(), add.at, closed)
        })
        .collect()
}

/// Both replicas registered the connector, with the same id, name, scope and options.
fn assert_registered_alike(calls: &[Call]) {
    let registrations: Vec<&Call> = calls
        .iter()
        .filter(|c| c.field == "registerConnector")
        .collect();
    let by: HashSet<&str> = registrations
        .iter()
        .filter_map(|c| c.replica.as_deref())
        .collect();
    assert_eq!(by.len(), 2, "both replicas registered");
    assert!(
        registrations
            .windows(2)
            .all(|w| w[0].variables == w[1].variables),
        "the replicas' registrations differ"
    );
}

/// Runs never overlap: each one closed before the next one opened.
fn assert_one_at_a_time(runs: &[(String, Instant, Option<Instant>)]) {
    for pair in runs.windows(2) {
        let closed = pair[0].2.expect("an earlier run was never closed");
        assert!(closed <= pair[1].1, "two runs at once: {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_ipsum_once_per_period_and_only_the_holder_pings_its_state() {
    const PERIOD: Duration = Duration::from_secs(2);
    let fake = FakeOpencti::start().await;
    let feed = feed().await;
    let url = format!("{}/levels/8.txt", feed.uri());
    let id = uuid::Uuid::new_v4().to_string();
    let daemons = both(&fake, Some((&id, &url, "PT2S")), None, "PT1S");
    let started = Instant::now();
    let holding = holder(&daemons.iter().collect::<Vec<_>>()).await;
    let watch = Duration::from_secs(11);
    tokio::time::sleep(watch.saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed();
    assert_eq!(
        holder(&daemons.iter().collect::<Vec<_>>()).await,
        holding,
        "the lock stayed"
    );
    drop(daemons);

    let runs = runs(&fake, &id);
    // Fixed delay after each run: about elapsed / period runs, the first at start.
    let most = (elapsed.as_secs_f64() / PERIOD.as_secs_f64()).ceil() as usize + 1;
    eprintln!(
        "{} runs in {elapsed:?} ({most} at most with one scheduler)",
        runs.len()
    );
    assert!(runs.len() >= 4 && runs.len() <= most, "{runs:?}");
    assert_one_at_a_time(&runs);
    let holder = REPLICAS[holding];
    assert!(
        runs.iter().all(|r| r.0 == holder),
        "every run on the holder"
    );
    for pair in runs.windows(2) {
        let gap = pair[1].1 - pair[0].2.unwrap();
        assert!(
            gap >= PERIOD - Duration::from_millis(100),
            "a run came early: {gap:?}"
        );
    }
    // Both registered alike; only the holder pinged IPsum's state.
    let calls = calls_of(&fake, &id);
    assert_registered_alike(&calls);
    let pingers: HashSet<&str> = calls
        .iter()
        .filter(|c| c.field == "pingConnector")
        .filter_map(|c| c.replica.as_deref())
        .collect();
    assert_eq!(pingers, HashSet::from([holder]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_runs_the_next_import_in_time_when_the_holder_is_killed() {
    const PERIOD: Duration = Duration::from_secs(3);
    const PING: Duration = Duration::from_secs(2);
    let fake = FakeOpencti::start().await;
    let feed = feed().await;
    let url = format!("{}/levels/8.txt", feed.uri());
    let id = uuid::Uuid::new_v4().to_string();
    let mut daemons = both(&fake, Some((&id, &url, "PT3S")), None, "PT2S");
    let holding = holder(&daemons.iter().collect::<Vec<_>>()).await;
    let standing = 1 - holding;
    // Two runs on the holder, then it dies between runs, its next run scheduled.
    let prefix = format!("work_{id}_");
    fake.wait_for("two runs", |s| {
        s.calls.iter().filter(|c| c.closes_work(&prefix)).count() >= 2
    })
    .await;
    // Let the ping after the run store the schedule.
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemons[holding].kill();
    let killed_at = Instant::now();
    let before = runs(&fake, &id).len();

    let deadline = Instant::now() + PERIOD + 2 * PING + Duration::from_secs(5);
    while runs(&fake, &id).len() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = runs(&fake, &id);
    assert!(all.len() > before, "the standby never ran: {all:?}");
    let (last_of_holder, next) = (&all[before - 1], &all[before]);
    assert_eq!(next.0, REPLICAS[standing]);
    assert!(all[..before].iter().all(|r| r.0 == REPLICAS[holding]));
    // The next run was due one period after the holder's last one ended; the standby took
    // over within two ping intervals and ran it then (the stored schedule has whole seconds,
    // so it may come up to a second early, never sooner).
    let due = last_of_holder.2.unwrap() + PERIOD;
    let late = next.1.saturating_duration_since(due.max(killed_at));
    assert!(late <= 2 * PING, "{late:?} late");
    assert!(
        next.1 + Duration::from_millis(1100) >= due,
        "ran ahead of the schedule"
    );
    eprintln!(
        "killed {:?} after the last run, next run {:?} after it was due",
        killed_at - last_of_holder.2.unwrap(),
        next.1.saturating_duration_since(due)
    );
    let (status, body) = health(&daemons[standing]).await;
    assert_eq!(status, 200);
    assert!(body.contains("ipsum: import lock held"), "{body}");
    // The survivor went on from the state the holder stored, and pings it from now on.
    let calls = calls_of(&fake, &id);
    assert!(
        calls
            .iter()
            .any(|c| c.field == "connector" && c.replica.as_deref() == Some(REPLICAS[standing]))
    );
    fake.wait_for("the survivor's run closed", |s| {
        s.calls
            .iter()
            .filter(|c| c.field == "workEdit.toProcessed")
            .count()
            > before
    })
    .await;
    assert_one_at_a_time(&runs(&fake, &id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_enrichments_are_shared_by_two_replicas_and_all_processed() {
    const WORKS: usize = 1000;
    let fake = FakeOpencti::start().await;
    add_ip_entity(&fake, "TLP:GREEN", GREEN);
    let upstream = MockServer::start().await;
    Mock::given(path("/8.8.8.8/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
            "application/json",
        ))
        .mount(&upstream)
        .await;
    let id = uuid::Uuid::new_v4().to_string();
    let daemons = both(&fake, None, Some((&id, &upstream.uri())), "PT1S");
    // Both consume before the first request is queued.
    let queue = FakeOpencti::listen_queue(&id);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.queue_consumers(&queue).await < 2 {
        assert!(
            Instant::now() < deadline,
            "both replicas consume the listen queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..WORKS {
        fake.publish_listen(&id, &manual_message(&format!("work_{i}"), &ip_stix(GREEN)))
            .await;
    }
    let done = |s: &fake_opencti::FakeState| {
        s.calls
            .iter()
            .filter(|c| c.field == "workEdit.toProcessed")
            .count()
            >= WORKS
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(&fake.state.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "every enrichment processed in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for d in &daemons {
        let (status, body) = health(d).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok\n"),
            "no import lock line without an importer"
        );
    }
    drop(daemons);

    let processed = fake.calls("workEdit.toProcessed");
    let mut by_replica: HashMap<&str, usize> = HashMap::new();
    let mut works = HashSet::new();
    for c in &processed {
        assert_eq!(c.variables["inError"], false, "{:?}", c.variables);
        works.insert(c.variables["id"].as_str().unwrap().to_string());
        *by_replica
            .entry(c.replica.as_deref().unwrap_or("?"))
            .or_default() += 1;
    }
    eprintln!("{WORKS} enrichments: {by_replica:?}");
    assert!(
        (0..WORKS).all(|i| works.contains(&format!("work_{i}"))),
        "every work processed"
    );
    for r in REPLICAS {
        assert!(
            by_replica.get(r).copied().unwrap_or(0) >= WORKS / 10,
            "{by_replica:?}"
        );
    }
    assert_eq!(fake.queue_len(&queue).await, 0, "every message acked");
    // Both registered alike, and their pings agree: an enrichment connector keeps no state.
    let calls = calls_of(&fake, &id);
    assert_registered_alike(&calls);
    let pings: Vec<&Call> = calls
        .iter()
        .filter(|c| c.field == "pingConnector")
        .collect();
    let pingers: HashSet<&str> = pings.iter().filter_map(|c| c.replica.as_deref()).collect();
    assert_eq!(pingers.len(), 2);
    assert!(pings.iter().all(|c| c.variables["state"] == "null"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_progress_when_the_holder_is_killed_is_redone_by_the_standby() {
    const PING: Duration = Duration::from_secs(1);
    let fake = FakeOpencti::start().await;
    // The first download hangs long enough to kill the holder in the middle of its run.
    let feed = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/levels/8.txt"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(fixture("ipsum", "levels/8.txt"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&feed)
        .await;
    let url = format!("{}/levels/8.txt", feed.uri());
    let id = uuid::Uuid::new_v4().to_string();
    let mut daemons = both(&fake, Some((&id, &url, "PT1H")), None, "PT1S");
    let holding = holder(&daemons.iter().collect::<Vec<_>>()).await;
    fake.wait_for("the holder's run started", |s| s.count("workAdd") >= 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemons[holding].kill();
    let killed_at = Instant::now();
    fake.wait_for("the run redone by the standby", |s| s.count("workAdd") >= 2)
        .await;
    let all = runs(&fake, &id);
    let redo = &all[1];
    assert_eq!(redo.0, REPLICAS[1 - holding]);
    assert!(
        redo.1 - killed_at <= 2 * PING,
        "{:?} after the kill",
        redo.1 - killed_at
    );
    fake.wait_for("the redone run closed", |s| {
        s.count("workEdit.toProcessed") >= 1
    })
    .await;
    let processed = fake.calls("workEdit.toProcessed");
    assert_eq!(
        processed.len(),
        1,
        "the killed run's work stays open, as pycti's"
    );
    assert_eq!(processed[0].variables["id"], format!("work_{id}_2"));
    assert_eq!(processed[0].variables["inError"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_holder_loses_the_broker_silently() {
    const PING: Duration = Duration::from_secs(4);
    let fake = FakeOpencti::start().await;
    let feed = feed().await;
    let url = format!("{}/levels/8.txt", feed.uri());
    let id = uuid::Uuid::new_v4().to_string();
    // The first replica reaches RabbitMQ through a proxy that will drop everything silently.
    let broker = crate::common::proxy::Proxy::start("http://127.0.0.1:5672").await;
    let port = broker.url.rsplit(':').next().unwrap().to_string();
    let mut env = replica_env(&fake, "a", Some((&id, &url, "PT1H")), None, "PT4S");
    env.push(("MQ_PORT", port));
    let a = Daemon::spawn(&env);
    assert_eq!(holder(&[&a]).await, 0);
    let b = Daemon::spawn(&replica_env(
        &fake,
        "b",
        Some((&id, &url, "PT1H")),
        None,
        "PT4S",
    ));
    assert_eq!(holder(&[&a, &b]).await, 0);

    broker.freeze();
    let frozen_at = Instant::now();
    let (status, body) = loop {
        let (status, body) = health(&b).await;
        if body.contains("ipsum: import lock held") {
            break (status, body);
        }
        assert!(frozen_at.elapsed() < 4 * PING, "no takeover: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = frozen_at.elapsed();
    eprintln!("the standby took the lock {took:?} after the holder's network froze");
    assert_eq!(status, 200);
    assert!(took <= 2 * PING, "{took:?}: {body}");
    // The old holder gave its hold up, and stopped pinging IPsum's state.
    let (_, body) = health(&a).await;
    assert!(body.contains("ipsum: standby"), "{body}");
    let pings_of_a = || {
        calls_of(&fake, &id)
            .iter()
            .filter(|c| c.field == "pingConnector" && c.replica.as_deref() == Some("a"))
            .count()
    };
    let before = pings_of_a();
    tokio::time::sleep(PING + Duration::from_millis(500)).await;
    assert_eq!(pings_of_a(), before, "the old holder still pings");
}
