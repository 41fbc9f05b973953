//! A loaded policy for one tenant (a profile): evaluated on warm instances that belong to that tenant alone, under
//! per-call limits. Guest state (statics, the allocator's arena) therefore never carries one profile's input into
//! another profile's decision; the compiled code is shared through [`Template`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::check;
use crate::config::{WarmBudget, lock};
use crate::limits::StoreState;
use crate::template::{Exports, Instance, Template};
use crate::types::{CacheInput, CacheOutput, RateLimitInput, RateLimitOutput};
use crate::{Error, Result, World};

/// A policy component of one world, for one tenant. Cheap to share (`Arc`); calls may run concurrently, each on its
/// own instance.
pub struct Policy {
    template: Arc<Template>,
    tenant: String,
    max_warm: usize,
    /// Host-wide bound on the memory idle instances hold; each kept instance holds its memory size of it.
    budget: Arc<WarmBudget>,
    /// Idle instances, with the bytes of the budget each holds. Dropped after any failed call into wasm (guest state after a trap is not trustworthy; a
    /// completed call whose output the host refuses keeps its instance) and when idle (see [`Policy::release_idle`]).
    warm: Mutex<Vec<(Instance, usize)>>,
    last_fuel_used: AtomicU64,
    peak_memory: AtomicUsize,
    /// Calls so far, and (calls, when) as of the last idle check: a counter keeps the clock off the hot path.
    calls: AtomicU64,
    seen: Mutex<(u64, Instant)>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("sha256", &self.template.sha256)
            .field("world", &self.template.world)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl Policy {
    pub(crate) fn new(template: Arc<Template>, tenant: &str, max_warm: usize, budget: Arc<WarmBudget>) -> Self {
        Self {
            template,
            tenant: tenant.to_string(),
            max_warm,
            budget,
            warm: Mutex::default(),
            last_fuel_used: AtomicU64::new(0),
            peak_memory: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            seen: Mutex::new((0, Instant::now())),
        }
    }

    pub fn sha256(&self) -> &str {
        &self.template.sha256
    }

    pub fn world(&self) -> World {
        self.template.world
    }

    /// Whose instances these are (the profile's `namespace/name`; empty for the CLI).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Calls the policy's `validate-settings` with the settings JSON text; a refusal is [`Error::BadSettings`].
    pub fn validate_settings(&self, settings: &str) -> Result<()> {
        self.check_string("settings", settings)?;
        let verdict = self.call(|store, exports| match exports {
            Exports::Cache(p) => p.call_validate_settings(store, settings),
            Exports::RateLimit(p) => p.call_validate_settings(store, settings),
        })?;
        verdict.map_err(|message| Error::BadSettings(self.clean(&message)))
    }

    /// Evaluates a cache policy; the output is checked against the input (every class once, TTL bounds, memory
    /// advice) and its reason made safe to print.
    pub fn evaluate_cache(&self, input: &CacheInput) -> Result<CacheOutput> {
        self.expect_world(World::Cache)?;
        check::cache_input(input, &self.template.limits)
            .map_err(|detail| Error::Input { what: "cache input".into(), detail })?;
        let output = self.call(|store, exports| match exports {
            Exports::Cache(p) => p.call_evaluate(store, input),
            Exports::RateLimit(_) => unreachable_world(),
        })?;
        let mut output = output.map_err(|message| Error::PolicyError(self.clean(&message)))?;
        check::cache_output(input, &output, &self.template.limits).map_err(|e| Error::BadOutput(self.clean(&e)))?;
        check::clean_in_place(&mut output.reason, self.template.limits.max_string_bytes);
        Ok(output)
    }

    /// Evaluates a rate-limit policy; the output is checked against the input (every route once, burst >= rate).
    pub fn evaluate_rate_limit(&self, input: &RateLimitInput) -> Result<RateLimitOutput> {
        self.expect_world(World::RateLimit)?;
        check::rate_limit_input(input, &self.template.limits)
            .map_err(|detail| Error::Input { what: "rate-limit input".into(), detail })?;
        let output = self.call(|store, exports| match exports {
            Exports::RateLimit(p) => p.call_evaluate(store, input),
            Exports::Cache(_) => unreachable_world(),
        })?;
        let mut output = output.map_err(|message| Error::PolicyError(self.clean(&message)))?;
        check::rate_limit_output(input, &output, &self.template.limits)
            .map_err(|e| Error::BadOutput(self.clean(&e)))?;
        check::clean_in_place(&mut output.reason, self.template.limits.max_string_bytes);
        Ok(output)
    }

    /// Fuel (CPU budget units) the last successful call used, against `Limits::fuel`.
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used.load(Ordering::Relaxed)
    }

    /// Largest linear memory any of this policy's instances reached, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// Number of idle warm instances (for tests and metrics).
    pub fn warm_instances(&self) -> usize {
        lock(&self.warm).len()
    }

    /// Drops the warm instances if the policy has not been called since an idle check at least `idle` before
    /// `now`, so their memory returns. Returns whether it was idle.
    pub fn release_idle(&self, now: Instant, idle: Duration) -> bool {
        let calls = self.calls.load(Ordering::Relaxed);
        let mut seen = lock(&self.seen);
        if seen.0 != calls {
            *seen = (calls, now);
            return false;
        }
        let is_idle = now.saturating_duration_since(seen.1) >= idle;
        if is_idle {
            self.drop_warm();
        }
        is_idle
    }

    /// Drops every idle instance and gives its memory back to the budget.
    fn drop_warm(&self) {
        let dropped: usize = lock(&self.warm).drain(..).map(|(_, bytes)| bytes).sum();
        self.budget.release(dropped);
    }

    fn expect_world(&self, world: World) -> Result<()> {
        if self.world() == world {
            Ok(())
        } else {
            Err(Error::WrongWorld {
                sha256: self.sha256().to_string(),
                expected: world,
                detail: format!("it was loaded as a {} policy", self.world()),
            })
        }
    }

    fn check_string(&self, what: &str, value: &str) -> Result<()> {
        check::string_len(what, value, self.template.limits.max_string_bytes * 64)
            .map_err(|detail| Error::Input { what: what.into(), detail })
    }

    fn clean(&self, text: &str) -> String {
        check::clean(text, self.template.limits.max_string_bytes)
    }

    /// Runs `f` on one of this tenant's warm instances with a full CPU budget; keeps the instance only if the call
    /// succeeded.
    fn call<T>(&self, f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<T>) -> Result<T> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let popped = lock(&self.warm).pop();
        let mut warm = match popped {
            Some((warm, bytes)) => {
                self.budget.release(bytes);
                warm
            }
            None => self.template.instantiate()?,
        };
        self.template.refuel(&mut warm.store)?;
        let result = f(&mut warm.store, &warm.exports);
        self.peak_memory.fetch_max(warm.store.data().limiter.peak, Ordering::Relaxed);
        match result {
            Ok(value) => {
                let left = warm.store.get_fuel().unwrap_or(0);
                self.last_fuel_used.store(self.template.limits.fuel.saturating_sub(left), Ordering::Relaxed);
                self.keep(warm);
                Ok(value)
            }
            Err(error) => {
                let error = self.template.classify(error, &warm.store);
                tracing::warn!(sha256 = %self.sha256(), world = %self.world(), tenant = %self.tenant,
                    category = error.category(), %error, "policy call failed");
                Err(error)
            }
        }
    }
}

impl Policy {
    /// Keeps an instance warm if this tenant has room for it and the host's budget has room for its memory;
    /// otherwise it is dropped here and its memory returns.
    fn keep(&self, warm: Instance) {
        let bytes = warm.store.data().limiter.peak;
        let mut pool = lock(&self.warm);
        if pool.len() < self.max_warm && self.budget.reserve(bytes) {
            pool.push((warm, bytes));
        }
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        self.drop_warm();
    }
}

/// `expect_world` ran first, so the exports always match the call.
fn unreachable_world<T>() -> wasmtime::Result<T> {
    Err(wasmtime::Error::msg("policy exports do not match the world it was loaded as"))
}
