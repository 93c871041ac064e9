//! One memory budget for the whole process (`daemon.memory_budget`).
//!
//! Every large buffer of a request (an upstream answer, its parsed form, the bundle being
//! built and pushed, a listen message) is charged against the budget before it is
//! allocated, and released when the request ends. A request reserves its likely peak at its
//! first large charge (an answer's size times what its parsing costs), so it usually waits
//! for the budget once, before it holds anything, and two requests do not hold part of what
//! they need while each waits for the other; later charges draw on that reservation.
//!
//! - When the budget is exhausted, a request waits for room, at most until the end of its
//!   retry budget; then it gives up ([`MemoryError::Busy`]) and its message is given back.
//! - A request that needs more than the whole budget can never run: it fails with
//!   [`MemoryError::NeverFits`], which names the setting.
//!
//! The ledger of the request being handled is task-local ([`LEDGER`]), set by the runtime
//! around each message and import run, so the upstream plumbing charges it without every
//! connector passing it along. Outside a request (one-shot commands, online checks, pings)
//! nothing is charged.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Charges are counted in KiB (a semaphore permit each).
const UNIT: u64 = 1024;

/// The default budget when no cgroup limit is found: 192 MiB, what a 256 MiB container
/// limit gives (75 %), so the daemon behaves the same on a host as in the Kubernetes
/// manifest we ship. It fits two of the largest answers the per-answer cap allows at once,
/// and thousands of ordinary ones.
pub const DEFAULT_BUDGET: u64 = 192 * 1024 * 1024;
/// The share of a cgroup memory limit the budget takes by default: the rest is the
/// daemon's own baseline (about 20 MiB), the allocator's slack and the answer caches.
pub const CGROUP_SHARE_PERCENT: u64 = 75;

/// What parsing an answer costs, as a multiple of its size: the answer kept as it is, or
/// turned into a `serde_json::Value` tree, plus the bundle built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Kept as it is and parsed lazily (a feed): 1×.
    Raw,
    /// Read and parsed lean (objects kept as their JSON text), then sent: about 3×.
    Lean,
    /// Parsed into a `serde_json::Value` tree: about 8× (the tree of small objects is
    /// about six times the text, then the bundle).
    Tree,
}

impl Weight {
    /// The reservation for an answer of `bytes`.
    pub fn of(self, bytes: u64) -> u64 {
        bytes.saturating_mul(match self {
            Weight::Raw => 1,
            Weight::Lean => 3,
            Weight::Tree => 8,
        })
    }
}

/// The process-wide budget.
#[derive(Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total: u64,
    /// What requests hold, in bytes (`opencti_connectors_memory_held_bytes`).
    held: prometheus_client::metrics::gauge::Gauge,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Arc<Self> {
        let units = (bytes / UNIT).clamp(1024, u64::from(u32::MAX));
        Arc::new(MemoryBudget {
            permits: Arc::new(Semaphore::new(units as usize)),
            total: units * UNIT,
            held: Default::default(),
        })
    }

    /// The same budget, shown by `metrics` (its size, and what requests hold of it).
    pub fn shown_in(self: Arc<Self>, metrics: &crate::metrics::Metrics) -> Arc<Self> {
        let (total, held) = metrics.memory_gauges();
        total.set(i64::try_from(self.total).unwrap_or(i64::MAX));
        let budget = MemoryBudget {
            permits: self.permits.clone(),
            total: self.total,
            held,
        };
        Arc::new(budget)
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// What is free now, in bytes.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// A ledger for one request whose waits end at `deadline` or when `abort` fires.
    pub fn ledger(self: &Arc<Self>, deadline: Instant, abort: CancellationToken) -> Ledger {
        Ledger {
            inner: Arc::new(LedgerInner {
                budget: self.clone(),
                held: Mutex::new(Held::default()),
                deadline,
                abort,
                starved: AtomicBool::new(false),
            }),
        }
    }
}

/// Why a charge was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The request needs more than the whole budget.
    #[error(
        "this request needs about {} MiB of memory, more than daemon.memory_budget ({} MiB) allows; raise daemon.memory_budget (env DAEMON_MEMORY_BUDGET) or the container's memory limit",
        .needed / (1024 * 1024),
        .budget / (1024 * 1024)
    )]
    NeverFits { needed: u64, budget: u64 },
    /// The budget stayed full until the request's retry budget ran out (or it was aborted).
    #[error("the memory budget (daemon.memory_budget) stayed full; the request is given back")]
    Busy,
}

/// What one request holds.
#[derive(Debug, Default)]
struct Held {
    /// Permits acquired from the budget.
    permits: Vec<OwnedSemaphorePermit>,
    /// Bytes acquired in all.
    reserved: u64,
    /// Bytes charged so far (at most `reserved`).
    used: u64,
}

#[derive(Debug)]
struct LedgerInner {
    budget: Arc<MemoryBudget>,
    held: Mutex<Held>,
    deadline: Instant,
    abort: CancellationToken,
    /// A wait for the budget ended without room.
    starved: AtomicBool,
}

/// One request's charges; everything is released when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<LedgerInner>,
}

impl Ledger {
    /// Charges `bytes` about to be allocated: drawn on what the request reserved, the rest
    /// acquired from the budget (waiting for room until the request's deadline).
    pub async fn charge(&self, bytes: u64) -> Result<(), MemoryError> {
        self.reserve_and_charge(bytes, bytes).await
    }

    /// Makes sure the request holds at least `peak` bytes in all (its likely peak), waiting
    /// once for what is missing, then charges `bytes` of it.
    pub async fn reserve_and_charge(&self, peak: u64, bytes: u64) -> Result<(), MemoryError> {
        let inner = &self.inner;
        let missing = {
            let held = self.lock();
            let wanted = held.reserved.max(held.used.saturating_add(bytes)).max(peak);
            wanted.saturating_sub(held.reserved)
        };
        if missing > 0 {
            let total = inner.budget.total;
            let needed = self.lock().reserved.saturating_add(missing);
            if needed > total {
                return Err(MemoryError::NeverFits {
                    needed,
                    budget: total,
                });
            }
            let units = u32::try_from(missing.div_ceil(UNIT)).unwrap_or(u32::MAX);
            let acquire = inner.budget.permits.clone().acquire_many_owned(units);
            let permit = tokio::select! {
                p = tokio::time::timeout_at(inner.deadline, acquire) => match p {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; a timeout is a budget that stayed full.
                    _ => return Err(self.starve()),
                },
                _ = inner.abort.cancelled() => return Err(self.starve()),
            };
            let bytes = u64::from(units).saturating_mul(UNIT);
            let mut held = self.lock();
            held.reserved = held.reserved.saturating_add(bytes);
            held.permits.push(permit);
            inner
                .budget
                .held
                .inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut held = self.lock();
        held.used = held.used.saturating_add(bytes);
        Ok(())
    }

    /// Charges `bytes` for a buffer that goes before the request ends: released (from what
    /// the request uses, its reservation kept for the next such buffer) when the guard drops.
    pub async fn transient(&self, bytes: u64) -> Result<Transient, MemoryError> {
        self.charge(bytes).await?;
        Ok(Transient {
            ledger: Some(self.clone()),
            bytes,
        })
    }

    /// Whether a wait for the budget ended without room (the message is to be given back).
    pub fn starved(&self) -> bool {
        self.inner.starved.load(Ordering::Relaxed)
    }

    /// What the request holds of the budget, in bytes.
    pub fn reserved(&self) -> u64 {
        self.lock().reserved
    }

    fn starve(&self) -> MemoryError {
        self.inner.starved.store(true, Ordering::Relaxed);
        MemoryError::Busy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A transient charge; released when dropped.
#[derive(Debug)]
#[must_use = "the charge is released when the guard drops"]
pub struct Transient {
    ledger: Option<Ledger>,
    bytes: u64,
}

impl Drop for Transient {
    fn drop(&mut self) {
        if let Some(ledger) = &self.ledger {
            let mut held = ledger.lock();
            held.used = held.used.saturating_sub(self.bytes);
        }
    }
}

impl Drop for LedgerInner {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(|p| p.into_inner());
        self.budget
            .held
            .dec_by(i64::try_from(held.reserved).unwrap_or(i64::MAX));
    }
}

tokio::task_local! {
    /// The ledger of the request the current task handles.
    pub static LEDGER: Ledger;
}

/// The current request's ledger, if the task handles one.
pub fn current() -> Option<Ledger> {
    LEDGER.try_with(Ledger::clone).ok()
}

/// Charges `bytes` to the current request (nothing outside a request).
pub async fn charge(bytes: u64) -> Result<(), MemoryError> {
    match current() {
        Some(ledger) => ledger.charge(bytes).await,
        None => Ok(()),
    }
}

/// A transient charge of `bytes` to the current request (nothing outside a request).
pub async fn transient(bytes: u64) -> Result<Transient, MemoryError> {
    match current() {
        Some(ledger) => ledger.transient(bytes).await,
        None => Ok(Transient {
            ledger: None,
            bytes,
        }),
    }
}

/// Reserves `peak` for the current request and charges `bytes` of it (nothing outside a
/// request).
pub async fn reserve(peak: u64, bytes: u64) -> Result<(), MemoryError> {
    match current() {
        Some(ledger) => ledger.reserve_and_charge(peak, bytes).await,
        None => Ok(()),
    }
}

/// The default budget: [`CGROUP_SHARE_PERCENT`] of the cgroup memory limit when the process
/// has one, else [`DEFAULT_BUDGET`].
pub fn default_budget() -> u64 {
    cgroup_limit()
        .map(|limit| limit / 100 * CGROUP_SHARE_PERCENT)
        .unwrap_or(DEFAULT_BUDGET)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1
/// `memory.limit_in_bytes`), when it has one.
pub fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup_limit_from(&cgroups, |path| std::fs::read_to_string(path).ok())
}

/// [`cgroup_limit`] from `/proc/self/cgroup`'s text, reading files through `read`.
pub fn cgroup_limit_from(cgroups: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    // "Unlimited" is the largest page-aligned i64 in v1, `max` in v2; anything past 2^60
    // bytes is no limit either.
    let parse = |text: String| {
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|&l| l > 0 && l < 1 << 60)
    };
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        // Inside a cgroup namespace the path is `/` and the mount is the cgroup itself.
        let candidates: Vec<String> = if controllers.is_empty() {
            vec![
                format!("/sys/fs/cgroup{path}/memory.max"),
                "/sys/fs/cgroup/memory.max".into(),
            ]
        } else if controllers.split(',').any(|c| c == "memory") {
            vec![
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                "/sys/fs/cgroup/memory/memory.limit_in_bytes".into(),
            ]
        } else {
            continue;
        };
        if let Some(limit) = candidates.iter().find_map(|c| read(c).and_then(parse)) {
            return Some(limit);
        }
    }
    None
}

#[cfg(test)]
mod tests;
