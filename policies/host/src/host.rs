//! The engine, the compiled-component cache, remembered load failures, and loading per tenant.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, OptLevel};

use crate::compile::{self, Slots, Turns};
use crate::config::{HostConfig, WarmBudget, lock};
use crate::contract;
use crate::policy::Policy;
use crate::retained::Retained;
use crate::source::Source;
use crate::template::Template;
use crate::{Error, Result, World, preflight};

/// The engine of every host and compile worker: a worker's artifacts load only into an engine configured alike.
pub(crate) fn engine() -> Result<Engine> {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true);
    // CPU budget per call: see `Limits::fuel`.
    wasm.consume_fuel(true);
    // The backtracking register allocator (the default) for every component: the single-pass one compiles the
    // worst allowed function 10-20x faster but made warm calls of the built-ins about 1 us slower (measured);
    // compile cost is bounded by `preflight`, the worker's memory limit and the compile deadline instead.
    wasm.cranelift_opt_level(OptLevel::Speed);
    Engine::new(&wasm).map_err(|e| Error::Internal(format!("creating the wasmtime engine: {e}")))
}

/// Tenant of loads that belong to no profile (the CLI, tests, `plan`).
pub const NO_TENANT: &str = "";
/// Most load failures remembered; past it the memory starts over (a failure then costs one more attempt).
const MAX_REMEMBERED_FAILURES: usize = 1024;

type Key = (String, World);

/// Loads and caches policy components. One per process; share it with `Arc`.
pub struct PolicyHost {
    engine: Engine,
    config: HostConfig,
    components: Mutex<HashMap<String, Component>>,
    templates: Mutex<HashMap<Key, Arc<Template>>>,
    /// Load failures by digest and world: a component that failed once fails again at once, until it is forgotten;
    /// a missed compile deadline only until its instant (then it is compiled again).
    failures: Mutex<HashMap<Key, (Error, Option<Instant>)>>,
    /// Policies by digest, world and tenant: tenants never share instances.
    policies: Mutex<HashMap<(String, World, String), Arc<Policy>>>,
    slots: Arc<Slots>,
    /// One compilation per namespace at a time ([`Turns`]).
    turns: Turns,
    compiles: AtomicU64,
    /// Largest peak resident memory a compile worker reported.
    compile_peak: AtomicU64,
    last_sweep: Mutex<Instant>,
    warm_budget: Arc<WarmBudget>,
    /// Sizes and last uses of the compiled components, against `HostConfig::max_compiled_bytes`.
    retained: Mutex<Retained>,
}

impl PolicyHost {
    pub fn new(config: HostConfig) -> Result<Self> {
        Ok(Self {
            engine: engine()?,
            slots: Slots::new(config.max_concurrent_compiles),
            turns: Turns::default(),
            warm_budget: Arc::new(WarmBudget::new(config.max_warm_memory_bytes)),
            retained: Mutex::new(Retained::new(config.max_compiled_bytes)),
            config,
            components: Mutex::default(),
            templates: Mutex::default(),
            failures: Mutex::default(),
            policies: Mutex::default(),
            compiles: AtomicU64::new(0),
            compile_peak: AtomicU64::new(0),
            last_sweep: Mutex::new(Instant::now()),
        })
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Loads a policy of `world` for no tenant in particular (the CLI, tests); see [`PolicyHost::load_for`].
    pub fn load(&self, world: World, source: Source<'_>) -> Result<Arc<Policy>> {
        self.load_for(NO_TENANT, world, source)
    }

    /// Shortcut for [`Source::Builtin`], for no tenant.
    pub fn load_builtin(&self, world: World, name: &str) -> Result<Arc<Policy>> {
        self.load(world, Source::Builtin(name))
    }

    /// Loads a policy of `world` for `tenant` (a profile's `namespace/name`). The component is checked and compiled
    /// only the first time its sha256 is seen (a failure is remembered as well); each tenant gets its own instances.
    pub fn load_for(&self, tenant: &str, world: World, source: Source<'_>) -> Result<Arc<Policy>> {
        let trusted = matches!(source, Source::Builtin(_));
        let (bytes, sha256) = source.verified()?;
        self.sweep_if_due();
        if let Some(cached) = self.cached(tenant, world, &sha256) {
            return cached;
        }
        let compiles = !trusted && !lock(&self.components).contains_key(&sha256);
        let _turn = if compiles { self.turns.take(tenant)? } else { None };
        let template = match self.template(&sha256, world, bytes, trusted) {
            Ok(template) => template,
            Err(error) => {
                let until = match &error {
                    Error::CompileTimeout { .. } => {
                        Some(Some(Instant::now() + self.config.load_limits.compile_timeout_kept))
                    }
                    e if e.is_load_failure() => Some(None),
                    _ => None,
                };
                if let Some(until) = until {
                    let mut failures = lock(&self.failures);
                    if failures.len() >= MAX_REMEMBERED_FAILURES {
                        failures.clear();
                    }
                    failures.insert((sha256, world), (error.clone(), until));
                }
                return Err(error);
            }
        };
        Ok(self.tenant_policy(tenant, template))
    }

    /// What loading `sha256` as `world` for `tenant` would give without the bytes: the policy if the component was
    /// loaded before, its remembered failure, or `None` (the bytes are needed).
    pub fn cached(&self, tenant: &str, world: World, sha256: &str) -> Option<Result<Arc<Policy>>> {
        let key = (sha256.to_string(), world);
        {
            let mut failures = lock(&self.failures);
            match failures.get(&key) {
                Some((_, Some(until))) if Instant::now() >= *until => {
                    failures.remove(&key);
                }
                Some((error, _)) => return Some(Err(error.clone())),
                None => {}
            }
        }
        let template = lock(&self.templates).get(&key).cloned()?;
        lock(&self.retained).touch(sha256, Instant::now());
        Some(Ok(self.tenant_policy(tenant, template)))
    }

    /// [`PolicyHost::cached`] for a source: answers without any compilation or wasm work (for a pinned source it
    /// hashes the bytes), so callers may use it on an async thread before queueing a real load.
    pub fn cached_source(&self, tenant: &str, world: World, source: Source<'_>) -> Option<Result<Arc<Policy>>> {
        match source.verified() {
            Ok((_, sha256)) => self.cached(tenant, world, &sha256),
            Err(error) => Some(Err(error)),
        }
    }

    /// Number of compilations so far (cache misses that were compiled, not read from the disk cache).
    pub fn compile_count(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// The largest peak resident memory of a compile worker so far (its whole process), when workers compile.
    pub fn compile_peak_rss_bytes(&self) -> u64 {
        self.compile_peak.load(Ordering::Relaxed)
    }

    /// Linear memory held by idle warm instances of every tenant, against `HostConfig::max_warm_memory_bytes`.
    pub fn warm_memory_bytes(&self) -> usize {
        self.warm_budget.held()
    }

    /// Tenants with a loaded policy right now (for tests and metrics).
    pub fn tenant_policies(&self) -> usize {
        lock(&self.policies).len()
    }

    /// Compiled code kept now, against `HostConfig::max_compiled_bytes`.
    pub fn compiled_bytes(&self) -> usize {
        lock(&self.retained).bytes()
    }

    /// Drops everything kept for a digest (a source that is no longer referenced), failures included.
    pub fn forget(&self, sha256: &str) {
        lock(&self.retained).remove(sha256);
        lock(&self.components).remove(sha256);
        lock(&self.templates).retain(|(digest, _), _| digest != sha256);
        lock(&self.failures).retain(|(digest, _), _| digest != sha256);
        lock(&self.policies).retain(|(digest, _, _), _| digest != sha256);
    }

    /// Drops the instances of every tenant idle for `HostConfig::idle_after` at `now`, and forgets those tenants;
    /// then forgets the compiled components no tenant holds any more and none has loaded for as long.
    pub fn release_idle(&self, now: Instant) {
        let idle = self.config.idle_after;
        lock(&self.policies).retain(|_, policy| !policy.release_idle(now, idle));
        let before = now.checked_sub(idle).unwrap_or(now);
        let stale = {
            let policies = lock(&self.policies);
            lock(&self.retained).unused_since(before, |digest| policies.keys().any(|(d, _, _)| d == digest))
        };
        for digest in stale {
            self.forget(&digest);
        }
    }

    /// Releases idle tenants at most every tenth of `idle_after`, from the loads every reconcile makes anyway.
    fn sweep_if_due(&self) {
        let now = Instant::now();
        let mut last = lock(&self.last_sweep);
        if now.saturating_duration_since(*last) >= self.config.idle_after / 10 {
            *last = now;
            drop(last);
            self.release_idle(now);
        }
    }

    fn tenant_policy(&self, tenant: &str, template: Arc<Template>) -> Arc<Policy> {
        let key = (template.sha256.clone(), template.world, tenant.to_string());
        let mut policies = lock(&self.policies);
        let policy = policies.entry(key).or_insert_with(|| {
            Arc::new(Policy::new(template, tenant, self.config.max_warm_instances, Arc::clone(&self.warm_budget)))
        });
        Arc::clone(policy)
    }

    /// `trusted`: a built-in, compiled in place; anything else goes through the shape check and a compile slot.
    fn template(&self, sha256: &str, world: World, bytes: &[u8], trusted: bool) -> Result<Arc<Template>> {
        let key = (sha256.to_string(), world);
        if let Some(template) = lock(&self.templates).get(&key) {
            return Ok(Arc::clone(template));
        }
        let component = self.component(sha256, world, bytes, trusted)?;
        let template = Arc::new(Template::new(&self.engine, &component, world, sha256.to_string(), &self.config)?);
        lock(&self.templates).insert(key, Arc::clone(&template));
        Ok(template)
    }

    fn component(&self, sha256: &str, world: World, bytes: &[u8], trusted: bool) -> Result<Component> {
        if let Some(component) = lock(&self.components).get(sha256) {
            return Ok(component.clone());
        }
        // Checked before the disk cache too, so that tighter limits apply to components compiled earlier.
        let shape = preflight::inspect(bytes, &self.config.load_limits)
            .map_err(|detail| Error::Load { sha256: sha256.to_string(), detail: crate::check::clean(&detail, 2048) })?;
        // What the names alone refuse (capabilities, versions, exports) costs no compilation.
        contract::check_surface(&shape, sha256, world)?;
        let component = match self.load_precompiled(sha256) {
            Some(component) => component,
            None => self.compile(sha256, bytes, trusted)?,
        };
        lock(&self.components).insert(sha256.to_string(), component.clone());
        let range = component.image_range();
        let evicted = lock(&self.retained).insert(
            sha256,
            (range.end as usize).saturating_sub(range.start as usize),
            Instant::now(),
        );
        for digest in evicted {
            tracing::info!(sha256 = digest, "forgetting a compiled policy component: over the memory budget");
            self.forget(&digest);
        }
        Ok(component)
    }

    fn compile(&self, sha256: &str, bytes: &[u8], trusted: bool) -> Result<Component> {
        let deadline = self.config.load_limits.compile_deadline;
        let started = Instant::now();
        let (component, peak) = if trusted {
            let component = Component::new(&self.engine, bytes)
                .map_err(|e| Error::Internal(format!("compiling a built-in: {e:#}")))?;
            (component, None)
        } else {
            let worker = self.config.compile_worker.as_ref();
            compile::compile(&self.engine, &self.slots, worker, sha256, bytes, deadline).inspect_err(|error| {
                tracing::info!(sha256, elapsed = ?started.elapsed(), %error, "policy component not compiled");
            })?
        };
        self.compiles.fetch_add(1, Ordering::Relaxed);
        if let Some(peak) = peak {
            self.compile_peak.fetch_max(peak, Ordering::Relaxed);
        }
        tracing::info!(sha256, elapsed = ?started.elapsed(), peak_rss_bytes = peak, "compiled policy component");
        if let Some(path) = self.disk_path(sha256) {
            // Write then rename so a concurrent reader never sees half a file; a failure only costs a recompile.
            let tmp = path.with_extension("tmp");
            let written = component
                .serialize()
                .map_err(|e| e.to_string())
                .and_then(|code| std::fs::write(&tmp, code).map_err(|e| e.to_string()))
                .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
            if let Err(error) = written {
                tracing::warn!(sha256, %error, "could not write the precompiled policy cache");
            }
        }
        Ok(component)
    }

    fn load_precompiled(&self, sha256: &str) -> Option<Component> {
        let path = self.disk_path(sha256)?;
        if !path.is_file() {
            return None;
        }
        // SAFETY: `cache_dir` is documented as writable only by the operator and holds files this host wrote with
        // `Component::serialize` under the digest of their source; wasmtime refuses files from another version or
        // configuration (handled below by recompiling).
        match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(sha256, %error, "ignoring an unusable precompiled policy");
                None
            }
        }
    }

    fn disk_path(&self, sha256: &str) -> Option<PathBuf> {
        // The digest is 64 hex characters (checked in `Source::verified`), so it is a safe file name.
        self.config.cache_dir.as_ref().map(|dir| dir.join(format!("{sha256}.cwasm")))
    }
}
