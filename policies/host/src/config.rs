//! Configuration of the host, shared by the host and the policies it loads.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

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
    /// Compilations running at once. A compilation that outlives its deadline keeps its slot until it ends, so
    /// this also bounds the CPU that refused components can still take.
    pub max_concurrent_compiles: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            load_limits: LoadLimits::default(),
            cache_dir: None,
            max_warm_instances: 2,
            idle_after: Duration::from_secs(600),
            max_concurrent_compiles: 1,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (single insert/remove), so poison is moot.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
