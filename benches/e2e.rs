//! The end-to-end benchmark: the release daemon as a child process against the tests' Rust
//! fake OpenCTI, the real RabbitMQ, a Rust publisher and a Rust fake IPinfo with a set
//! latency. Prints a Markdown table (the README quotes it).
//!
//! `cargo bench --bench e2e` runs everything (about 8 minutes: 10,000 enrichments at
//! 100 ms and concurrency 4 alone take 250 s); `cargo bench --bench e2e -- quick` runs
//! 2,000 per case. Needs RabbitMQ on 127.0.0.1:5672 (guest/guest).
//!
//! What it measures:
//! - IPinfo enrichments at 0 and 100 ms upstream latency, concurrency 4, 16 and 64:
//!   throughput (first `toReceived` to last `toProcessed`) and per-request p50/p99
//!   (`toReceived` → `toProcessed` of each work), messages published before the daemon starts;
//! - the limit: the same fakes and broker driven by a loop that does no enrichment work
//!   (consume → one GraphQL call → push → ack), at concurrency 64;
//! - start-up time to every connector of the registry registered and consuming (`/healthz`
//!   200);
//! - RSS with every connector enabled after IPsum's first run (levels/5), after 10k and 20k
//!   enrichments (default settings, distinct IPs);
//! - IPsum imports of 1.4k to 120k IPs: wall time, daemon CPU (user + sys) and peak RSS.
//!
//! Instruction counts, to compare two commits on this noisy machine (README, "Comparing two
//! commits"): `BENCH_DAEMON_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=F.%p"`
//! starts each daemon under that command, waits for it [`PATIENCE`] times longer, and stops
//! it with SIGTERM (a graceful stop, so the profile is written) instead of SIGKILL;
//! `BENCH_N` sets the enrichments per case; `BENCH_DAEMON_BIN` runs another build of the
//! daemon (another commit's) under this same harness.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use testkit::fake_opencti::{self, FakeOpencti};
use testkit::{fixture, free_port, shared};

const BIN: &str = env!("CARGO_BIN_EXE_opencti-connectors");

/// How many times longer every wait is when the daemon runs under `BENCH_DAEMON_WRAPPER`
/// (callgrind runs it about 50 times slower).
const PATIENCE: u32 = 100;

/// The daemon to run: `BENCH_DAEMON_BIN`, or this build's.
fn daemon_bin() -> String {
    std::env::var("BENCH_DAEMON_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// `BENCH_DAEMON_WRAPPER`, split on whitespace: the command the daemon runs under.
fn wrapper() -> Option<Vec<String>> {
    let words: Vec<String> = std::env::var("BENCH_DAEMON_WRAPPER")
        .ok()?
        .split_whitespace()
        .map(String::from)
        .collect();
    (!words.is_empty()).then_some(words)
}

/// `timeout`, longer under a wrapper.
fn patient(timeout: Duration) -> Duration {
    match wrapper() {
        Some(_) => timeout * PATIENCE,
        None => timeout,
    }
}

/// The fake upstreams: IPinfo with a latency, IPsum feeds by name, and LastInfoSec with one
/// very large answer.
#[derive(Clone)]
struct Upstream {
    latency_ms: Arc<AtomicU64>,
    ipinfo_body: Arc<String>,
    feeds: Arc<std::collections::HashMap<String, String>>,
    lastinfosec_body: Arc<std::sync::OnceLock<axum::body::Bytes>>,
}

/// LastInfoSec's answer to every lookup: [`large_lastinfosec_answer`], made once.
async fn lastinfosec(
    State(u): State<Upstream>,
) -> ([(&'static str, &'static str); 1], axum::body::Bytes) {
    let body = u
        .lastinfosec_body
        .get_or_init(large_lastinfosec_answer)
        .clone();
    ([("content-type", "application/json")], body)
}

/// The bytes of the large LastInfoSec answer: just under 31 MB.
const LARGE_ANSWER_BYTES: usize = 31_000_000;

/// A LastInfoSec answer of about 31 MB made of small objects (as the answers that took the
/// daemon past 2 GB): indicators, each related to the previous one.
fn large_lastinfosec_answer() -> axum::body::Bytes {
    let mut objects = Vec::new();
    let mut size = 0;
    let mut previous: Option<String> = None;
    let mut i = 0usize;
    while size < LARGE_ANSWER_BYTES - 1_000 {
        let id = format!("indicator--{}", uuid::Uuid::new_v4());
        let indicator = json!({"type": "indicator", "spec_version": "2.1", "id": id,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": format!("[domain-name:value = 'd{i}.example']"), "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z"});
        size += indicator.to_string().len() + 1;
        objects.push(indicator);
        if let Some(previous) = previous.replace(id.clone()) {
            let relationship = json!({"type": "relationship", "spec_version": "2.1",
                "id": format!("relationship--{}", uuid::Uuid::new_v4()),
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "relationship_type": "related-to", "source_ref": id, "target_ref": previous});
            size += relationship.to_string().len() + 1;
            objects.push(relationship);
        }
        i += 1;
    }
    let body = json!({"message": [{"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects}]});
    axum::body::Bytes::from(body.to_string())
}

async fn ipinfo(
    State(u): State<Upstream>,
    Path(_ip): Path<String>,
) -> ([(&'static str, &'static str); 1], String) {
    let ms = u.latency_ms.load(Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    (
        [("content-type", "application/json")],
        u.ipinfo_body.to_string(),
    )
}

async fn feed(State(u): State<Upstream>, Path(name): Path<String>) -> String {
    u.feeds.get(&name).cloned().unwrap_or_default()
}

/// The first `n` addresses of levels/1 as a feed (levels/5 as itself).
fn feeds() -> std::collections::HashMap<String, String> {
    let one = std::fs::read_to_string(shared("fixtures/ipsum/levels/1.txt")).unwrap();
    let lines: Vec<&str> = one.lines().filter(|l| !l.starts_with('#')).collect();
    let mut feeds = std::collections::HashMap::new();
    feeds.insert("5".to_string(), fixture("ipsum", "levels/5.txt"));
    for n in [15_000, 30_000, 60_000] {
        feeds.insert(n.to_string(), lines[..n].join("\n") + "\n");
    }
    feeds.insert("1".to_string(), one);
    feeds
}

async fn start_upstream() -> (String, Upstream) {
    let upstream = Upstream {
        latency_ms: Arc::new(AtomicU64::new(0)),
        ipinfo_body: Arc::new(fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json")),
        feeds: Arc::new(feeds()),
        lastinfosec_body: Arc::default(),
    };
    let app = Router::new()
        .route("/ipinfo/{ip}/json", get(ipinfo))
        .route("/feeds/{name}", get(feed))
        .route("/lis/v2/stix21/search/", axum::routing::post(lastinfosec))
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, upstream)
}

/// A daemon process; killed when dropped.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn spawn(env: &[(String, String)]) -> Daemon {
        let port = free_port();
        let mut command = match wrapper() {
            Some(words) => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]).arg(daemon_bin()).env_clear();
                // The wrapper may need the PATH to find its own parts; the daemon ignores it.
                if let Ok(path) = std::env::var("PATH") {
                    command.env("PATH", path);
                }
                command
            }
            None => {
                let mut command = Command::new(daemon_bin());
                command.env_clear();
                command
            }
        };
        // BENCH_DAEMON_ENV="K=V K2=V2" adds variables to every daemon (experiments).
        if let Ok(extra) = std::env::var("BENCH_DAEMON_ENV") {
            for pair in extra.split_whitespace() {
                if let Some((k, v)) = pair.split_once('=') {
                    command.env(k, v);
                }
            }
        }
        command
            .env("DAEMON_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir(std::env::temp_dir());
        for (k, v) in env {
            command.env(k, v);
        }
        Daemon {
            child: command.spawn().unwrap(),
            port,
        }
    }

    fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory now, MiB.
    fn rss_mib(&self) -> f64 {
        self.status("VmRSS:") as f64 / 1024.0
    }

    /// Peak resident memory, MiB.
    fn peak_mib(&self) -> f64 {
        self.status("VmHWM:") as f64 / 1024.0
    }

    /// CPU time used so far (user + sys).
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        Duration::from_secs_f64(ticks as f64 / clock_ticks())
    }

    async fn wait_healthy(&self, timeout: Duration) -> Duration {
        let timeout = patient(timeout);
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let client = reqwest::Client::new();
        while started.elapsed() < timeout {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the daemon did not become healthy in {timeout:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if wrapper().is_some() {
            // A graceful stop: a profiler writes its profile only when its program exits.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn base_env(fake: &FakeOpencti) -> Vec<(String, String)> {
    kv(&[
        ("OPENCTI_URL", &fake.url),
        ("OPENCTI_TOKEN", fake_opencti::TOKEN),
    ])
}

fn ipinfo_env(id: &str, upstream: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = kv(&[
        ("IPINFO_ENABLED", "true"),
        ("IPINFO_CONNECTOR_ID", id),
        ("IPINFO_TOKEN", "bench-token"),
        ("IPINFO_API_BASE_URL", &format!("{upstream}/ipinfo")),
    ]);
    env.extend(kv(extra));
    env
}

fn ipsum_env(id: &str, upstream: &str, feed: &str) -> Vec<(String, String)> {
    kv(&[
        ("IPSUM_ENABLED", "true"),
        ("IPSUM_CONNECTOR_ID", id),
        ("IPSUM_API_BASE_URL", &format!("{upstream}/feeds/{feed}")),
        ("IPSUM_CONNECTOR_DURATION_PERIOD", "PT1H"),
    ])
}

/// Sets each of `pairs` in `env`, in place when the name is there already.
fn set(env: &mut Vec<(String, String)>, pairs: Vec<(String, String)>) {
    for (k, v) in pairs {
        match env.iter_mut().find(|(name, _)| *name == k) {
            Some(entry) => entry.1 = v,
            None => env.push((k, v)),
        }
    }
}

/// Every connector of the registry enabled with what it requires and a fresh id, each at
/// `<upstream>/<section>`; IPinfo and IPsum as in their own cases (IPsum on levels/5).
/// Returns the environment, IPinfo's id and IPsum's.
fn every_connector_env(upstream: &str) -> (Vec<(String, String)>, String, String) {
    let id = || uuid::Uuid::new_v4().to_string();
    let (ipinfo_id, ipsum_id) = (id(), id());
    let mut env: Vec<(String, String)> = testkit::every_connector_env()
        .into_iter()
        .filter(|(k, _)| !testkit::OPENCTI_ENV.iter().any(|(name, _)| name == k))
        .map(|(k, v)| {
            if k.ends_with("_CONNECTOR_ID") {
                (k, id())
            } else {
                (k, v)
            }
        })
        .collect();
    set(&mut env, testkit::upstreams_at(upstream));
    set(&mut env, ipinfo_env(&ipinfo_id, upstream, &[]));
    set(&mut env, ipsum_env(&ipsum_id, upstream, "5"));
    (env, ipinfo_id, ipsum_id)
}

/// The `n`-th benchmark address: public (1.0.0.0 onwards), so none is skipped as private.
fn address(n: usize) -> String {
    Ipv4Addr::from(0x0100_0000 + n as u32).to_string()
}

/// Registers `n` entities (from `first`) in the fake and publishes their requests on
/// `connector`'s listen queue, with publisher confirms pipelined.
async fn publish(fake: &FakeOpencti, connector: &str, first: usize, n: usize) {
    let connection = Connection::connect(fake_opencti::BROKER_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    let routing = format!("listen_routing_{connector}");
    let mut confirms = Vec::with_capacity(n);
    for i in first..first + n {
        let ip = address(i);
        let id = opencti_connectors::stix::ids::value_observable_id("ipv4-addr", &ip);
        testkit::add_entity(
            fake,
            &id,
            &format!("internal-{i}"),
            "IPv4-Addr",
            json!([{"id": "m-1", "standard_id": testkit::GREEN, "definition_type": "TLP", "definition": "TLP:GREEN", "x_opencti_order": 2}]),
            Some(&ip),
        );
        let entity = json!({"id": id, "type": "ipv4-addr", "spec_version": "2.1", "value": ip});
        let body = testkit::manual_message(&format!("work_{connector}_{i}"), &entity);
        confirms.push(
            channel
                .basic_publish(
                    fake_opencti::CONNECTOR_EXCHANGE.into(),
                    routing.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap(),
        );
    }
    for c in confirms {
        c.await.unwrap();
    }
    let _ = connection.close(200, "published".into()).await;
}

/// Waits until `n` works of `connector` are processed; returns the throughput and the
/// per-request p50 and p99.
async fn processed(
    fake: &FakeOpencti,
    connector: &str,
    n: usize,
    timeout: Duration,
) -> (f64, Duration, Duration) {
    let timeout = patient(timeout);
    let prefix = format!("work_{connector}_");
    let started = Instant::now();
    // Scans only the calls recorded since the last look: a scan of every call every few
    // milliseconds would take the CPU the daemon is being measured with.
    let (mut seen, mut done) = (0, 0);
    loop {
        {
            let state = fake.state.lock().unwrap();
            done += state.calls[seen..]
                .iter()
                .filter(|c| c.closes_work(&prefix))
                .count();
            seen = state.calls.len();
        }
        if done >= n {
            break;
        }
        assert!(
            started.elapsed() < timeout,
            "{done}/{n} processed after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = fake.state.lock().unwrap();
    let mut received = std::collections::HashMap::new();
    let mut latencies = Vec::with_capacity(n);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for c in &state.calls {
        let Some(work) = c.variables["id"]
            .as_str()
            .filter(|w| w.starts_with(&prefix))
        else {
            continue;
        };
        match c.field.as_str() {
            "workEdit.toReceived" => {
                received.insert(work.to_string(), c.at);
                first = Some(first.map_or(c.at, |f: Instant| f.min(c.at)));
            }
            "workEdit.toProcessed" => {
                if let Some(r) = received.get(work) {
                    latencies.push(c.at - *r);
                }
                last = Some(last.map_or(c.at, |l: Instant| l.max(c.at)));
            }
            _ => {}
        }
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    let span = last.unwrap() - first.unwrap();
    (n as f64 / span.as_secs_f64(), pct(0.5), pct(0.99))
}

/// GraphQL calls per enrichment since call number `from`, and which: everything but the
/// connector's registration, pings and the start-up version check.
fn calls_per_enrichment(fake: &FakeOpencti, from: usize, n: usize) -> (f64, String) {
    let state = fake.state.lock().unwrap();
    let mut by_field: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in &state.calls[from..] {
        if !matches!(
            c.field.as_str(),
            "registerConnector" | "pingConnector" | "about"
        ) {
            *by_field.entry(c.field.as_str()).or_default() += 1;
        }
    }
    let total: usize = by_field.values().sum();
    let which = by_field
        .iter()
        .map(|(f, k)| format!("{f} ×{:.1}", *k as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(", ");
    (total as f64 / n as f64, which)
}

/// One enrichment case on a fresh daemon: `n` requests, upstream `latency`, `concurrency`.
async fn enrichment_case(
    fake: &FakeOpencti,
    upstream_url: &str,
    upstream: &Upstream,
    n: usize,
    latency_ms: u64,
    concurrency: usize,
) -> (f64, Duration, Duration, f64, String, Duration) {
    upstream.latency_ms.store(latency_ms, Ordering::Relaxed);
    // Each case starts with an empty record (and the fake's scans stay short).
    fake.state.lock().unwrap().calls.clear();
    let id = uuid::Uuid::new_v4().to_string();
    fake.declare_queues(&id).await;
    publish(fake, &id, 0, n).await;
    let from = fake.state.lock().unwrap().calls.len();
    let mut env = base_env(fake);
    let c = concurrency.to_string();
    env.extend(ipinfo_env(
        &id,
        upstream_url,
        &[("IPINFO_CONNECTOR_CONCURRENCY", &c)],
    ));
    let daemon = Daemon::spawn(&env);
    let timeout =
        Duration::from_secs(60 + (n as u64 * (latency_ms + 5)) / concurrency as u64 / 1000 * 3);
    let (rate, p50, p99) = processed(fake, &id, n, timeout).await;
    let cpu = daemon.cpu() / n as u32;
    drop(daemon);
    let (calls, which) = calls_per_enrichment(fake, from, n);
    (rate, p50, p99, calls, which, cpu)
}

/// The no-op limit: consume → one GraphQL call → push → ack, `concurrency` at once; with
/// `as_daemon`, the daemon's four calls (toReceived, read, push, toProcessed) instead.
async fn limit_case(fake: &FakeOpencti, n: usize, concurrency: u16, as_daemon: bool) -> f64 {
    fake.state.lock().unwrap().calls.clear();
    let id = uuid::Uuid::new_v4().to_string();
    fake.declare_queues(&id).await;
    publish(fake, &id, 0, n).await;
    let connection = Connection::connect(fake_opencti::BROKER_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(concurrency, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            FakeOpencti::listen_queue(&id).as_str().into(),
            "noop".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", fake.url);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    use futures_util::StreamExt;
    for _ in 0..n {
        let delivery = consumer.next().await.unwrap().unwrap();
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            use opencti_connectors::opencti::client::{READ_ENTITY, STIX_BUNDLE_PUSH, WORK_TO_PROCESSED, WORK_TO_RECEIVED};
            let read = json!({"query": READ_ENTITY, "variables": {"id": "none"}});
            let push = json!({"query": STIX_BUNDLE_PUSH,
                "variables": {"connectorId": "noop", "bundle": "{\"type\":\"bundle\",\"objects\":[]}", "work_id": null}});
            let bodies = if as_daemon {
                vec![
                    json!({"query": WORK_TO_RECEIVED, "variables": {"id": "noop-work", "message": "m"}}),
                    read,
                    push,
                    json!({"query": WORK_TO_PROCESSED, "variables": {"id": "noop-work", "message": "m", "inError": false}}),
                ]
            } else {
                vec![read, push]
            };
            for body in bodies {
                client
                    .post(&url)
                    .bearer_auth(fake_opencti::TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
            }
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        });
    }
    while tasks.join_next().await.is_some() {}
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = connection.close(200, "done".into()).await;
    rate
}

/// Waits for `connector`'s first import run to end; returns its wall time (workAdd →
/// toProcessed).
async fn import_done(fake: &FakeOpencti, connector: &str, timeout: Duration) -> Duration {
    let timeout = patient(timeout);
    let started = Instant::now();
    loop {
        {
            let state = fake.state.lock().unwrap();
            let added = state
                .calls
                .iter()
                .find(|c| c.field == "workAdd" && c.variables["connectorId"] == connector);
            if let Some(added) = added {
                let work = format!("work_{connector}_");
                let done = state.calls.iter().find(|c| {
                    c.field == "workEdit.toProcessed"
                        && c.variables["id"]
                            .as_str()
                            .is_some_and(|w| w.starts_with(&work))
                });
                if let Some(done) = done {
                    return done.at - added.at;
                }
            }
        }
        assert!(
            started.elapsed() < timeout,
            "the import did not end in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Eight enrichments whose LastInfoSec answers are about 31 MB each (under the 32 MiB cap),
/// all published at once, with the default settings: the daemon's peak RSS, and every work
/// processed with its bundle pushed.
async fn large_answers_case(fake: &FakeOpencti, upstream_url: &str, upstream: &Upstream) {
    const WORKS: usize = 8;
    let answer = upstream
        .lastinfosec_body
        .get_or_init(large_lastinfosec_answer);
    let (answer_bytes, answer_objects) = (
        answer.len(),
        answer
            .windows(6)
            .filter(|w| w == b"\"type\"")
            .count()
            .saturating_sub(1),
    );
    fake.state.lock().unwrap().calls.clear();
    let id = uuid::Uuid::new_v4().to_string();
    fake.declare_queues(&id).await;
    let domain = json!({"id": "domain-name--d8f80844-a558-554c-97ba-13937278c048", "type": "domain-name", "spec_version": "2.1", "value": "www.furth.com.ar"});
    testkit::add_entity(
        fake,
        domain["id"].as_str().unwrap(),
        "d-1",
        "Domain-Name",
        json!([]),
        Some("www.furth.com.ar"),
    );
    for i in 0..WORKS {
        fake.publish_listen(
            &id,
            &testkit::manual_message(&format!("work_{id}_{i}"), &domain),
        )
        .await;
    }
    let mut env = base_env(fake);
    env.extend(kv(&[
        ("LASTINFOSEC_ENABLED", "true"),
        ("LASTINFOSEC_CONNECTOR_ID", &id),
        ("LASTINFOSEC_API_KEY_CTI", "k"),
        (
            "LASTINFOSEC_API_BASE_URL",
            &format!("{upstream_url}/lis/v2"),
        ),
    ]));
    let started = Instant::now();
    let daemon = Daemon::spawn(&env);
    processed(fake, &id, WORKS, Duration::from_secs(900)).await;
    let took = started.elapsed();
    let peak = daemon.peak_mib();
    let cpu = daemon.cpu();
    drop(daemon);
    let state = fake.state.lock().unwrap();
    let failed = state
        .calls
        .iter()
        .filter(|c| c.closes_work(&format!("work_{id}_")) && c.variables["inError"] == true)
        .count();
    let works_pushed: std::collections::BTreeSet<&str> = state
        .calls
        .iter()
        .filter(|c| c.field == "stixBundlePush")
        .filter_map(|c| c.variables["work_id"].as_str())
        .collect();
    let pushed_bytes: u64 = state
        .calls
        .iter()
        .filter(|c| c.field == "stixBundlePush")
        .filter_map(|c| c.variables["bundle"].as_u64())
        .sum();
    println!("## Eight large answers at once (LastInfoSec, default settings)\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| one answer | {:.1} MB, {answer_objects} objects |",
        answer_bytes as f64 / 1e6
    );
    println!("| peak RSS | **{peak:.1} MiB** |");
    println!("| wall time, 8 works (start-up included) | {} |", ms(took));
    println!("| daemon CPU | {:.1} s |", cpu.as_secs_f64());
    println!(
        "| works processed / failed / with a bundle pushed | {WORKS} / {failed} / {} |",
        works_pushed.len()
    );
    println!(
        "| bundle text pushed | {:.0} MB |\n",
        pushed_bytes as f64 / 1e6
    );
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    // `memory`, `enrich`, `limit`, `ipsum`, `large`: only those sections (all by default).
    let sections = ["memory", "enrich", "limit", "ipsum", "large"];
    let chosen: Vec<&str> = sections
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let run = |section: &str| chosen.is_empty() || chosen.contains(&section);
    // BENCH_N sets the enrichments per case (instruction counts: a few thousand do).
    let n = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 10_000 });
    let fake = FakeOpencti::start().await;
    fake.state.lock().unwrap().keep_bundles = false;
    let (upstream_url, upstream) = start_upstream().await;
    if let Some(serve) = args.iter().find(|a| a.starts_with("serve")) {
        // For profiling by hand: the fakes stay up; the daemon's environment is printed.
        // `serve`: every connector; `serve-ipsum=<feed>`: IPsum alone on that feed (`1`,
        // `60000`…).
        let env = match serve.strip_prefix("serve-ipsum=") {
            Some(feed) => ipsum_env(&uuid::Uuid::new_v4().to_string(), &upstream_url, feed),
            None => every_connector_env(&upstream_url).0,
        };
        for (k, v) in [base_env(&fake), env].concat() {
            println!("export {k}='{v}'");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    println!("# opencti-connectors end-to-end benchmark ({n} enrichments per case)\n");
    println!(
        "Machine: {} cores; `{}`; daemon built with the bench profile.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".into(), |(_, m)| m.trim().to_string())
    );

    // Start-up and memory with every connector.
    if run("memory") {
        let (env, ipinfo_id, ipsum_id) = every_connector_env(&upstream_url);
        let daemon = Daemon::spawn(&[base_env(&fake), env].concat());
        let startup = daemon.wait_healthy(Duration::from_secs(60)).await;
        import_done(&fake, &ipsum_id, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_idle = daemon.rss_mib();
        let (anon_idle, file_idle) = (
            daemon.status("RssAnon:") as f64 / 1024.0,
            daemon.status("RssFile:") as f64 / 1024.0,
        );
        publish(&fake, &ipinfo_id, 0, 10_000).await;
        processed(&fake, &ipinfo_id, 10_000, Duration::from_secs(600)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_10k = daemon.rss_mib();
        publish(&fake, &ipinfo_id, 10_000, 10_000).await;
        processed(&fake, &ipinfo_id, 20_000, Duration::from_secs(600)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_20k = daemon.rss_mib();
        let threads = daemon.status("Threads:");
        drop(daemon);
        let count = opencti_connectors::registry::specs().len();
        println!("## Start-up and memory (all {count} connectors, default settings)\n");
        println!("| measure | value |\n|---|---|");
        println!(
            "| start-up to all {count} registered and consuming | {} |",
            ms(startup)
        );
        println!(
            "| RSS after IPsum's first run (levels/5, 1,413 IPs) | {rss_idle:.1} MiB ({anon_idle:.1} anonymous, {file_idle:.1} file) |"
        );
        println!("| RSS after 10,000 IPinfo enrichments | {rss_10k:.1} MiB |");
        println!("| RSS after 20,000 IPinfo enrichments | {rss_20k:.1} MiB |");
        println!("| threads | {} |\n", threads);
    }

    // Enrichment throughput.
    let mut best_zero: f64 = 0.0;
    if run("enrich") {
        println!("## IPinfo enrichments ({n} per case, distinct IPs)\n");
        println!(
            "| upstream latency | concurrency | enrichments/s | p50 | p99 | GraphQL calls / enrichment | daemon CPU / enrichment |"
        );
        println!("|---|---|---|---|---|---|---|");
        let mut calls_seen = String::new();
        // BENCH_LATENCIES="0" runs the 0 ms cases only (experiments).
        let latencies: Vec<u64> = std::env::var("BENCH_LATENCIES")
            .ok()
            .map(|l| l.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![0, 100]);
        for &latency in &latencies {
            // BENCH_CONCURRENCIES="64" runs those only (experiments).
            let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCIES")
                .ok()
                .map(|l| l.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![4, 16, 64]);
            for &concurrency in &concurrencies {
                let (rate, p50, p99, calls, which, cpu) =
                    enrichment_case(&fake, &upstream_url, &upstream, n, latency, concurrency).await;
                calls_seen = which;
                if latency == 0 {
                    best_zero = best_zero.max(rate);
                }
                println!(
                    "| {latency} ms | {concurrency} | {rate:.0} | {} | {} | {calls:.1} | {:.0} µs |",
                    ms(p50),
                    ms(p99),
                    cpu.as_secs_f64() * 1e6
                );
            }
        }
        let defaults = if !latencies.contains(&100) {
            String::new()
        } else {
            let (rate, p50, p99, _) = {
                upstream.latency_ms.store(100, Ordering::Relaxed);
                fake.state.lock().unwrap().calls.clear();
                let id = uuid::Uuid::new_v4().to_string();
                fake.declare_queues(&id).await;
                publish(&fake, &id, 0, n).await;
                let daemon =
                    Daemon::spawn(&[base_env(&fake), ipinfo_env(&id, &upstream_url, &[])].concat());
                let r = processed(&fake, &id, n, Duration::from_secs(900)).await;
                drop(daemon);
                (r.0, r.1, r.2, ())
            };
            format!(
                "| 100 ms | default | {rate:.0} | {} | {} | |",
                ms(p50),
                ms(p99)
            )
        };
        println!("{defaults}");
        println!("\nGraphQL calls per enrichment: {calls_seen}.");
    }
    if run("limit") {
        let limit = limit_case(&fake, n, 64, false).await;
        let limit4 = limit_case(&fake, n, 64, true).await;
        println!(
            "\nThe no-op limit (consume → one GraphQL call → push → ack, concurrency 64, same fakes and broker): **{limit:.0} messages/s**; the daemon's best at 0 ms is {:.0} % of it.",
            best_zero / limit * 100.0
        );
        println!(
            "The same loop making the daemon's four calls (toReceived, read, push, toProcessed): **{limit4:.0} messages/s**; the daemon's best at 0 ms is {:.0} % of it.\n",
            best_zero / limit4 * 100.0
        );
    }

    // Eight very large answers at once.
    if run("large") {
        large_answers_case(&fake, &upstream_url, &upstream).await;
    }

    // IPsum imports.
    if run("ipsum") {
        println!("## IPsum imports (IPsum only, `api` protocol)\n");
        println!(
            "| feed | IPs | wall time (workAdd → toProcessed) | daemon CPU, start-up included (user + sys) | peak RSS |\n|---|---|---|---|---|"
        );
        for (feed, ips) in [
            ("5", 1_413usize),
            ("15000", 15_000),
            ("30000", 30_000),
            ("60000", 60_000),
            ("1", 120_430),
        ] {
            fake.state.lock().unwrap().calls.clear();
            let id = uuid::Uuid::new_v4().to_string();
            let daemon =
                Daemon::spawn(&[base_env(&fake), ipsum_env(&id, &upstream_url, feed)].concat());
            // The run starts at registration: the CPU is the process's, start-up included.
            let wall = import_done(&fake, &id, Duration::from_secs(600)).await;
            let cpu = daemon.cpu();
            let name = if feed.len() == 1 {
                format!("levels/{feed}.txt")
            } else {
                format!("first {feed} of levels/1")
            };
            println!(
                "| {name} | {ips} | {} | {} | {:.1} MiB |",
                ms(wall),
                ms(cpu),
                daemon.peak_mib()
            );
        }
    }
}
