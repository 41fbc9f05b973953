//! A loaded policy: pre-instantiated once, evaluated on warm instances under per-call limits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::rate_limit::RateLimitPolicyPre;
use crate::bindings::{cache::CachePolicy, cache::CachePolicyPre, rate_limit::RateLimitPolicy};
use crate::check;
use crate::check::type_only_imports;
use crate::config::{HostConfig, lock};
use crate::limits::StoreState;
use crate::types::{CacheInput, CacheOutput, RateLimitInput, RateLimitOutput};
use crate::{Error, Limits, Result, World};

enum Pre {
    Cache(CachePolicyPre<StoreState>),
    RateLimit(RateLimitPolicyPre<StoreState>),
}

enum Exports {
    Cache(CachePolicy),
    RateLimit(RateLimitPolicy),
}

/// An instance kept between calls. Dropped after any failed call into wasm: guest state after a trap is not
/// trustworthy. (A completed call whose output the host refuses keeps its instance.)
struct Warm {
    store: Store<StoreState>,
    exports: Exports,
}

/// A policy component of one world, ready to evaluate. Cheap to share (`Arc`); calls may run concurrently, each on
/// its own instance.
pub struct Policy {
    sha256: String,
    world: World,
    engine: Engine,
    pre: Pre,
    limits: Limits,
    max_warm: usize,
    warm: Mutex<Vec<Warm>>,
    last_fuel_used: AtomicU64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("sha256", &self.sha256).field("world", &self.world).finish_non_exhaustive()
    }
}

impl Policy {
    pub(crate) fn new(
        engine: &Engine,
        component: &Component,
        world: World,
        sha256: String,
        config: &HostConfig,
    ) -> Result<Self> {
        let type_only = type_only_imports(engine, component, &sha256)?;
        let load = |e: wasmtime::Error| Error::Load { sha256: sha256.clone(), detail: format!("{e:#}") };
        // No function is ever linked, so no capability can be reached; type-only instances need no definitions.
        let mut linker = Linker::<StoreState>::new(engine);
        for name in &type_only {
            linker.instance(name).map_err(load)?;
        }
        let instance_pre = linker.instantiate_pre(component).map_err(load)?;
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld {
            sha256: sha256.clone(),
            expected: world,
            detail: format!("{e:#}"),
        };
        let pre = match world {
            World::Cache => Pre::Cache(CachePolicyPre::new(instance_pre).map_err(wrong_world)?),
            World::RateLimit => Pre::RateLimit(RateLimitPolicyPre::new(instance_pre).map_err(wrong_world)?),
        };
        Ok(Self {
            sha256,
            world,
            engine: engine.clone(),
            pre,
            limits: config.limits.clone(),
            max_warm: config.max_warm_instances,
            warm: Mutex::default(),
            last_fuel_used: AtomicU64::new(0),
        })
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn world(&self) -> World {
        self.world
    }

    /// Calls the policy's `validate-settings` with the settings JSON text; a refusal is [`Error::BadSettings`].
    pub fn validate_settings(&self, settings: &str) -> Result<()> {
        self.check_string("settings", settings)?;
        let verdict = self.call(|store, exports| match exports {
            Exports::Cache(p) => p.call_validate_settings(store, settings),
            Exports::RateLimit(p) => p.call_validate_settings(store, settings),
        })?;
        verdict.map_err(|message| Error::BadSettings(check::truncate(message, self.limits.max_string_bytes)))
    }

    /// Evaluates a cache policy; the output is checked against the input (every class once, TTL bounds, sizes).
    pub fn evaluate_cache(&self, input: &CacheInput) -> Result<CacheOutput> {
        self.expect_world(World::Cache)?;
        check::cache_input(input, &self.limits)
            .map_err(|detail| Error::Input { what: "cache input".into(), detail })?;
        let output = self.call(|store, exports| match exports {
            Exports::Cache(p) => p.call_evaluate(store, input),
            Exports::RateLimit(_) => unreachable_world(),
        })?;
        let output =
            output.map_err(|message| Error::PolicyError(check::truncate(message, self.limits.max_string_bytes)))?;
        check::cache_output(input, &output, &self.limits).map_err(Error::BadOutput)?;
        Ok(output)
    }

    /// Evaluates a rate-limit policy; the output is checked against the input (every route once, burst >= rate).
    pub fn evaluate_rate_limit(&self, input: &RateLimitInput) -> Result<RateLimitOutput> {
        self.expect_world(World::RateLimit)?;
        check::rate_limit_input(input, &self.limits)
            .map_err(|detail| Error::Input { what: "rate-limit input".into(), detail })?;
        let output = self.call(|store, exports| match exports {
            Exports::RateLimit(p) => p.call_evaluate(store, input),
            Exports::Cache(_) => unreachable_world(),
        })?;
        let output =
            output.map_err(|message| Error::PolicyError(check::truncate(message, self.limits.max_string_bytes)))?;
        check::rate_limit_output(input, &output, &self.limits).map_err(Error::BadOutput)?;
        Ok(output)
    }

    /// Fuel (CPU budget units) the last successful call used, against `Limits::fuel`.
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used.load(Ordering::Relaxed)
    }

    /// Number of idle warm instances (for tests and metrics).
    pub fn warm_instances(&self) -> usize {
        lock(&self.warm).len()
    }

    fn expect_world(&self, world: World) -> Result<()> {
        if self.world == world {
            Ok(())
        } else {
            Err(Error::WrongWorld {
                sha256: self.sha256.clone(),
                expected: world,
                detail: format!("it was loaded as a {} policy", self.world),
            })
        }
    }

    fn check_string(&self, what: &str, value: &str) -> Result<()> {
        check::string_len(what, value, self.limits.max_string_bytes * 64)
            .map_err(|detail| Error::Input { what: what.into(), detail })
    }

    /// Runs `f` on a warm instance with a full CPU budget; keeps the instance only if the call succeeded.
    fn call<T>(&self, f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<T>) -> Result<T> {
        let mut warm = match lock(&self.warm).pop() {
            Some(warm) => warm,
            None => self.instantiate()?,
        };
        self.refuel(&mut warm.store)?;
        match f(&mut warm.store, &warm.exports) {
            Ok(value) => {
                let left = warm.store.get_fuel().unwrap_or(0);
                self.last_fuel_used.store(self.limits.fuel.saturating_sub(left), Ordering::Relaxed);
                let mut pool = lock(&self.warm);
                if pool.len() < self.max_warm {
                    pool.push(warm);
                }
                Ok(value)
            }
            Err(error) => Err(self.classify(error, &warm.store)),
        }
    }

    fn instantiate(&self) -> Result<Warm> {
        let mut store = Store::new(&self.engine, StoreState::new(self.limits.memory_bytes));
        store.limiter(|state| &mut state.limiter);
        self.refuel(&mut store)?;
        let exports = match &self.pre {
            Pre::Cache(pre) => pre.instantiate(&mut store).map(Exports::Cache),
            Pre::RateLimit(pre) => pre.instantiate(&mut store).map(Exports::RateLimit),
        };
        match exports {
            Ok(exports) => Ok(Warm { store, exports }),
            Err(error) => Err(self.classify(error, &store)),
        }
    }

    fn refuel(&self, store: &mut Store<StoreState>) -> Result<()> {
        store.set_fuel(self.limits.fuel).map_err(|e| Error::Internal(format!("setting fuel: {e}")))
    }

    fn classify(&self, error: wasmtime::Error, store: &Store<StoreState>) -> Error {
        let error = if store.data().limiter.denied {
            Error::OutOfMemory(self.limits.memory_bytes)
        } else {
            match error.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel | Trap::Interrupt) => Error::Timeout(self.limits.fuel),
                Some(trap) => Error::Trap(trap.to_string()),
                // Not a trap: the guest's result could not be lifted (bad pointer, invalid UTF-8, ...).
                None => Error::BadOutput(check::truncate(format!("{error:#}"), self.limits.max_string_bytes)),
            }
        };
        tracing::warn!(sha256 = %self.sha256, world = %self.world, category = error.category(), %error, "policy call failed");
        error
    }
}

/// `expect_world` ran first, so the exports always match the call.
fn unreachable_world<T>() -> wasmtime::Result<T> {
    Err(wasmtime::Error::msg("policy exports do not match the world it was loaded as"))
}
