//! Async wrapper: policy calls are CPU-bound, so they run on tokio's blocking pool, at most `permits` at once, and
//! never on the async runtime's worker threads.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::types::{CacheInput, CacheOutput, RateLimitInput, RateLimitOutput};
use crate::{Error, Policy, PolicyHost, Result, World};

/// Runs policy work off the async runtime. Cheap to clone.
#[derive(Clone)]
pub struct Evaluator {
    permits: Arc<Semaphore>,
}

impl Evaluator {
    /// `max_concurrent`: calls running at once (e.g. the number of cores).
    pub fn new(max_concurrent: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }

    /// Runs `work` on the blocking pool under a permit.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(format!("evaluator closed: {e}")))?;
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await;
        joined.map_err(|e| Error::Internal(format!("policy task: {e}")))?
    }

    /// Loads (compiles on first sight) a policy from pinned bytes, off the async threads.
    pub async fn load_pinned(
        &self,
        host: Arc<PolicyHost>,
        world: World,
        bytes: Arc<[u8]>,
        sha256: String,
    ) -> Result<Arc<Policy>> {
        self.run(move || host.load(world, crate::Source::Pinned { bytes: &bytes, sha256: &sha256 })).await
    }

    /// Loads a built-in policy, off the async threads.
    pub async fn load_builtin(&self, host: Arc<PolicyHost>, world: World, name: String) -> Result<Arc<Policy>> {
        self.run(move || host.load_builtin(world, &name)).await
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
