//! Configuration of the host, shared by the host and the policies it loads.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::Limits;

/// Configuration of a [`PolicyHost`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub limits: Limits,
    /// Directory for precompiled components (`<sha256>.cwasm`). It must be writable only by the operator: its files
    /// are loaded as native code.
    pub cache_dir: Option<PathBuf>,
    /// Warm instances kept per policy (about the number of concurrent evaluations).
    pub max_warm_instances: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { limits: Limits::default(), cache_dir: None, max_warm_instances: 4 }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (single insert/remove), so poison is moot.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
