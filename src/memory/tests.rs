use std::time::Duration;

use super::*;

fn budget_mib(mib: u64) -> Arc<MemoryBudget> {
    MemoryBudget::new(mib * 1024 * 1024)
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn charges_draw_on_the_reservation_and_come_back_when_the_request_ends() {
    let budget = budget_mib(100);
    let ledger = budget.ledger(
        Instant::now() + Duration::from_secs(5),
        CancellationToken::new(),
    );
    ledger.reserve_and_charge(30 * MIB, 10 * MIB).await.unwrap();
    assert_eq!(ledger.reserved(), 30 * MIB);
    assert_eq!(budget.available(), 70 * MIB);
    // Within the reservation: nothing more is taken from the budget.
    ledger.charge(15 * MIB).await.unwrap();
    assert_eq!(budget.available(), 70 * MIB);
    // Past it: the shortfall is.
    ledger.charge(10 * MIB).await.unwrap();
    assert_eq!(ledger.reserved(), 35 * MIB);
    assert_eq!(budget.available(), 65 * MIB);
    let clone = ledger.clone();
    drop(ledger);
    assert_eq!(budget.available(), 65 * MIB, "a clone still holds it");
    drop(clone);
    assert_eq!(budget.available(), 100 * MIB);
}

#[tokio::test]
async fn a_request_that_can_never_fit_names_the_setting() {
    let budget = budget_mib(100);
    let ledger = budget.ledger(
        Instant::now() + Duration::from_secs(5),
        CancellationToken::new(),
    );
    let error = ledger.reserve_and_charge(101 * MIB, MIB).await.unwrap_err();
    assert!(matches!(error, MemoryError::NeverFits { .. }));
    let text = error.to_string();
    assert!(
        text.contains("daemon.memory_budget")
            && text.contains("101 MiB")
            && text.contains("100 MiB"),
        "{text}"
    );
    assert!(!ledger.starved(), "failing is not waiting");
    assert_eq!(budget.available(), 100 * MIB);
}

#[tokio::test(start_paused = true)]
async fn a_full_budget_is_waited_for_until_the_request_s_deadline() {
    let budget = budget_mib(100);
    let holder = budget.ledger(
        Instant::now() + Duration::from_secs(600),
        CancellationToken::new(),
    );
    holder.charge(80 * MIB).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiter = budget.ledger(deadline, CancellationToken::new());
    // Room comes back before the deadline: the wait ends with it.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(holder);
    });
    waiter.charge(50 * MIB).await.unwrap();
    assert_eq!(
        Instant::now() - (deadline - Duration::from_secs(60)),
        Duration::from_secs(10)
    );
    release.await.unwrap();
    // No room before the deadline: the request gives up and says it starved.
    let late = budget.ledger(
        Instant::now() + Duration::from_secs(30),
        CancellationToken::new(),
    );
    let started = Instant::now();
    assert_eq!(late.charge(60 * MIB).await, Err(MemoryError::Busy));
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(late.starved());
    assert_eq!(
        budget.available(),
        50 * MIB,
        "a request that gave up holds nothing more"
    );
}

#[tokio::test]
async fn an_abort_ends_the_wait() {
    let budget = budget_mib(10);
    let holder = budget.ledger(
        Instant::now() + Duration::from_secs(600),
        CancellationToken::new(),
    );
    holder.charge(10 * MIB).await.unwrap();
    let abort = CancellationToken::new();
    let waiter = budget.ledger(Instant::now() + Duration::from_secs(600), abort.clone());
    abort.cancel();
    assert_eq!(waiter.charge(MIB).await, Err(MemoryError::Busy));
}

#[tokio::test]
async fn outside_a_request_nothing_is_charged() {
    assert_eq!(charge(u64::MAX).await, Ok(()));
    let budget = budget_mib(10);
    let ledger = budget.ledger(
        Instant::now() + Duration::from_secs(5),
        CancellationToken::new(),
    );
    LEDGER
        .scope(ledger.clone(), async {
            charge(MIB).await.unwrap();
            assert!(matches!(
                reserve(11 * MIB, 0).await,
                Err(MemoryError::NeverFits { .. })
            ));
        })
        .await;
    assert_eq!(ledger.reserved(), MIB);
}

#[test]
fn weights_scale_an_answer_and_saturate() {
    assert_eq!(Weight::Raw.of(10), 10);
    assert_eq!(Weight::Lean.of(10), 30);
    assert_eq!(Weight::Tree.of(10), 80);
    assert_eq!(Weight::Tree.of(u64::MAX), u64::MAX);
}

#[test]
fn the_cgroup_limit_is_read_from_v1_and_v2_and_unlimited_is_none() {
    let files = |entries: &'static [(&'static str, &'static str)]| {
        move |path: &str| {
            entries
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, t)| t.to_string())
        }
    };
    let v1 = "4:memory:/kubepods/pod1/c1\n1:cpu:/kubepods/pod1/c1\n0::/\n";
    assert_eq!(
        cgroup_limit_from(
            v1,
            files(&[(
                "/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes",
                "268435456\n"
            )])
        ),
        Some(256 * MIB)
    );
    // Inside a cgroup namespace: the path is `/`, the mount is the container's cgroup.
    let v2 = "0::/\n";
    assert_eq!(
        cgroup_limit_from(v2, files(&[("/sys/fs/cgroup/memory.max", "536870912\n")])),
        Some(512 * MIB)
    );
    assert_eq!(
        cgroup_limit_from(v2, files(&[("/sys/fs/cgroup/memory.max", "max\n")])),
        None
    );
    assert_eq!(
        cgroup_limit_from(
            v1,
            files(&[(
                "/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes",
                "9223372036854771712\n"
            )])
        ),
        None,
        "v1's unlimited"
    );
    assert_eq!(cgroup_limit_from("garbage", files(&[])), None);
}

#[tokio::test]
async fn a_transient_charge_is_reused_once_released() {
    let budget = budget_mib(100);
    let ledger = budget.ledger(
        Instant::now() + Duration::from_secs(5),
        CancellationToken::new(),
    );
    for _ in 0..10 {
        let chunk = ledger.transient(20 * MIB).await.unwrap();
        drop(chunk);
    }
    assert_eq!(
        ledger.reserved(),
        20 * MIB,
        "ten chunks, one at a time, hold one"
    );
    assert_eq!(budget.available(), 80 * MIB);
}

#[tokio::test]
async fn the_metrics_show_the_budget_and_what_requests_hold() {
    let metrics = crate::metrics::Metrics::default();
    let budget = budget_mib(100).shown_in(&metrics);
    let ledger = budget.ledger(
        Instant::now() + Duration::from_secs(5),
        CancellationToken::new(),
    );
    ledger.charge(3 * MIB).await.unwrap();
    let text = metrics.render();
    assert!(
        text.contains("opencti_connectors_memory_budget_bytes 104857600"),
        "{text}"
    );
    assert!(
        text.contains("opencti_connectors_memory_held_bytes 3145728"),
        "{text}"
    );
    drop(ledger);
    assert!(
        metrics
            .render()
            .contains("opencti_connectors_memory_held_bytes 0")
    );
}
