//! A compiled component checked against its world and pre-instantiated: shared by every profile that uses the same
//! component, but never their instances (see [`crate::Policy`]).

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::cache::{CachePolicy, CachePolicyPre};
use crate::bindings::rate_limit::{RateLimitPolicy, RateLimitPolicyPre};
use crate::check;
use crate::config::HostConfig;
use crate::limits::StoreState;
use crate::{Error, Limits, Result, World, contract};

pub(crate) enum Pre {
    Cache(CachePolicyPre<StoreState>),
    RateLimit(RateLimitPolicyPre<StoreState>),
}

pub(crate) enum Exports {
    Cache(CachePolicy),
    RateLimit(RateLimitPolicy),
}

/// One instance: its store (memory, fuel) and its exports.
pub(crate) struct Instance {
    pub(crate) store: Store<StoreState>,
    pub(crate) exports: Exports,
}

pub(crate) struct Template {
    pub(crate) sha256: String,
    pub(crate) world: World,
    engine: Engine,
    pre: Pre,
    pub(crate) limits: Limits,
    tables: usize,
}

impl Template {
    /// Checks the component's identity, links it (no function is ever linked, so no capability can be reached) and
    /// instantiates it once, so that start functions and instantiation limits fail here, as a load failure, and
    /// not later as a failed decision.
    pub(crate) fn new(
        engine: &Engine,
        component: &Component,
        world: World,
        sha256: String,
        config: &HostConfig,
    ) -> Result<Self> {
        let type_only = contract::check(engine, component, &sha256, world)?;
        // wasmtime's messages may quote names from the component: cleaned like any policy-provided text.
        let load =
            |e: wasmtime::Error| Error::Load { sha256: sha256.clone(), detail: check::clean(&format!("{e:#}"), 2048) };
        let mut linker = Linker::<StoreState>::new(engine);
        for name in &type_only {
            linker.instance(name).map_err(load)?;
        }
        let instance_pre = linker.instantiate_pre(component).map_err(load)?;
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld {
            sha256: sha256.clone(),
            expected: world,
            detail: check::clean(&format!("{e:#}"), 2048),
        };
        let pre = match world {
            World::Cache => Pre::Cache(CachePolicyPre::new(instance_pre).map_err(wrong_world)?),
            World::RateLimit => Pre::RateLimit(RateLimitPolicyPre::new(instance_pre).map_err(wrong_world)?),
        };
        let template = Self {
            sha256,
            world,
            engine: engine.clone(),
            pre,
            limits: config.limits.clone(),
            tables: config.load_limits.max_tables,
        };
        template.instantiate()?;
        Ok(template)
    }

    /// A fresh instance. A failure here is a load failure: the same component instantiated fine before, or never.
    pub(crate) fn instantiate(&self) -> Result<Instance> {
        let mut store = Store::new(&self.engine, StoreState::new(self.limits.memory_bytes, self.tables));
        store.limiter(|state| &mut state.limiter);
        self.refuel(&mut store)?;
        let exports = match &self.pre {
            Pre::Cache(pre) => pre.instantiate(&mut store).map(Exports::Cache),
            Pre::RateLimit(pre) => pre.instantiate(&mut store).map(Exports::RateLimit),
        };
        match exports {
            Ok(exports) => Ok(Instance { store, exports }),
            Err(error) => {
                let limiter = &store.data().limiter;
                let component_fault = error.downcast_ref::<Trap>().is_some() || limiter.denied || limiter.table_denied;
                if !component_fault {
                    // No trap, no refused growth: the host could not set the instance up (mapping its memory, say).
                    // Not the component's doing, so not remembered against its digest.
                    return Err(Error::Internal(format!(
                        "instantiating policy component {} failed on the host: {}",
                        self.sha256,
                        check::clean(&format!("{error:#}"), 512)
                    )));
                }
                if limiter.table_denied {
                    return Err(Error::Load {
                        sha256: self.sha256.clone(),
                        detail: "instantiating it needs a table larger than a policy may have".into(),
                    });
                }
                let detail = match self.classify(error, &store) {
                    Error::Timeout(fuel) => format!("its start function exceeded the CPU budget of {fuel} fuel units"),
                    Error::OutOfMemory(cap) => format!("instantiating it needs more than {cap} bytes of memory"),
                    other => format!("instantiating it failed: {other}"),
                };
                Err(Error::Load { sha256: self.sha256.clone(), detail })
            }
        }
    }

    /// A full CPU budget, and a clean slate for the memory-refusal flag (see `MemoryCap`).
    pub(crate) fn refuel(&self, store: &mut Store<StoreState>) -> Result<()> {
        store.data_mut().limiter.denied = false;
        store.data_mut().limiter.table_denied = false;
        store.set_fuel(self.limits.fuel).map_err(|e| Error::Internal(format!("setting fuel: {e}")))
    }

    /// The category of a failed call, from what the store saw during that call.
    pub(crate) fn classify(&self, error: wasmtime::Error, store: &Store<StoreState>) -> Error {
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel | Trap::Interrupt) => Error::Timeout(self.limits.fuel),
            // Rust guests abort (trap) when an allocation fails; a grow refused during this call is the cause.
            Some(_) if store.data().limiter.denied => Error::OutOfMemory(self.limits.memory_bytes),
            Some(trap) => Error::Trap(trap.to_string()),
            // Not a trap: a limit refused at instantiation, or the guest's result could not be lifted (bad pointer,
            // invalid UTF-8, ...).
            None if store.data().limiter.denied => Error::OutOfMemory(self.limits.memory_bytes),
            None => Error::BadOutput(check::clean(&format!("{error:#}"), self.limits.max_string_bytes)),
        }
    }
}
