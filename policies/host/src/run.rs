//! Async wrapper: policy work is CPU-bound, so it runs on tokio's blocking pool and never on the async runtime's
//! worker threads. Evaluations and loads have separate permits: a slow load (a compilation) never holds a slot that
//! evaluations of other profiles need.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::types::{CacheInput, CacheOutput, RateLimitInput, RateLimitOutput};
use crate::{Error, Policy, PolicyHost, Result, World};

/// Runs policy work off the async runtime. Cheap to clone.
#[derive(Clone)]
pub struct Evaluator {
    permits: Arc<Semaphore>,
    loads: Arc<Semaphore>,
}

impl Evaluator {
    /// `max_concurrent`: evaluations running at once (e.g. the number of cores); loads get as many permits of
    /// their own (compilations themselves are further bounded by `HostConfig::max_concurrent_compiles`).
    pub fn new(max_concurrent: usize) -> Self {
        let n = max_concurrent.max(1);
        Self { permits: Arc::new(Semaphore::new(n)), loads: Arc::new(Semaphore::new(n)) }
    }

    /// Runs `work` on the blocking pool under an evaluation permit.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        run_under(&self.permits, work).await
    }

    /// Loads (checks and compiles on first sight) a policy from pinned bytes for `tenant`, off the async threads.
    pub async fn load_pinned(
        &self,
        host: Arc<PolicyHost>,
        tenant: String,
        world: World,
        bytes: Arc<[u8]>,
        sha256: String,
    ) -> Result<Arc<Policy>> {
        run_under(&self.loads, move || {
            host.load_for(&tenant, world, crate::Source::Pinned { bytes: &bytes, sha256: &sha256 })
        })
        .await
    }

    /// Loads a built-in policy for `tenant`, off the async threads.
    pub async fn load_builtin(
        &self,
        host: Arc<PolicyHost>,
        tenant: String,
        world: World,
        name: String,
    ) -> Result<Arc<Policy>> {
        // Once compiled, a built-in for a new tenant needs no load permit: only a slow load should wait for one.
        if let Some(loaded) = host.cached_source(&tenant, world, crate::Source::Builtin(&name)) {
            return loaded;
        }
        run_under(&self.loads, move || host.load_for(&tenant, world, crate::Source::Builtin(&name))).await
    }

    pub async fn validate_settings(&self, policy: Arc<Policy>, settings: String) -> Result<()> {
        self.run(move || policy.validate_settings(&settings)).await
    }

    pub async fn evaluate_cache(&self, policy: Arc<Policy>, input: CacheInput) -> Result<CacheOutput> {
        self.run(move || policy.evaluate_cache(&input)).await
    }

    pub async fn evaluate_rate_limit(&self, policy: Arc<Policy>, input: RateLimitInput) -> Result<RateLimitOutput> {
        self.run(move || policy.evaluate_rate_limit(&input)).await
    }
}

async fn run_under<T, F>(permits: &Arc<Semaphore>, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let permit =
        Arc::clone(permits).acquire_owned().await.map_err(|e| Error::Internal(format!("evaluator closed: {e}")))?;
    let joined = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await;
    joined.map_err(|e| Error::Internal(format!("policy task: {e}")))?
}
