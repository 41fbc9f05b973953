//! Configuration of the host, shared by the host and the policies it loads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::isolate::CompileWorker;
use crate::{Limits, LoadLimits};

/// Configuration of a [`crate::PolicyHost`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub limits: Limits,
    pub load_limits: LoadLimits,
    /// Directory for precompiled components (`<sha256>.cwasm`). It must be writable only by the operator: its files
    /// are loaded as native code.
    pub cache_dir: Option<PathBuf>,
    /// Warm instances kept per policy and tenant (about the number of concurrent evaluations of one profile).
    pub max_warm_instances: usize,
    /// A tenant's instances are dropped after this long without a call, so their memory returns.
    pub idle_after: Duration,
    /// Linear memory that idle warm instances of all tenants may hold together. An instance that would cross it is
    /// dropped after its call instead of kept (the next call instantiates afresh, tens of microseconds), so many
    /// profiles, each within its own per-instance cap, cannot together hold the operator's memory.
    pub max_warm_memory_bytes: usize,
    /// Compilations running at once. A compilation that outlives its deadline keeps its slot until it ends, so
    /// this also bounds the CPU that refused components can still take.
    pub max_concurrent_compiles: usize,
    /// Compiled code the host keeps for components of every tenant; past it the least recently used are forgotten
    /// (compiled again when next loaded).
    pub max_compiled_bytes: usize,
    /// Compile tenants' components in a child process with its own memory limit, killed at the deadline (the
    /// operator does); `None` compiles on a thread of this process (the CLI, tests of the host alone).
    pub compile_worker: Option<CompileWorker>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            load_limits: LoadLimits::default(),
            cache_dir: None,
            max_warm_instances: 2,
            idle_after: Duration::from_secs(600),
            max_warm_memory_bytes: 256 << 20,
            max_concurrent_compiles: 1,
            max_compiled_bytes: 128 << 20,
            compile_worker: None,
        }
    }
}

/// The linear memory held by idle warm instances across the host, against `HostConfig::max_warm_memory_bytes`.
#[derive(Debug)]
pub(crate) struct WarmBudget {
    held: AtomicUsize,
    max: usize,
}

impl WarmBudget {
    pub(crate) fn new(max: usize) -> Self {
        Self { held: AtomicUsize::new(0), max }
    }

    /// Takes `bytes` of the budget if they fit.
    pub(crate) fn reserve(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes held now (for tests and metrics).
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (single insert/remove), so poison is moot.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
