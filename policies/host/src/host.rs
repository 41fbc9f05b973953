//! The engine, the compiled-component cache and loading.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::Component;
use wasmtime::{Config, Engine, OptLevel};

use crate::config::{HostConfig, lock};
use crate::policy::Policy;
use crate::source::Source;
use crate::{Error, Result, World};

/// Loads and caches policy components. One per process; share it with `Arc`.
pub struct PolicyHost {
    engine: Engine,
    config: HostConfig,
    components: Mutex<HashMap<String, Component>>,
    policies: Mutex<HashMap<(String, World), Arc<Policy>>>,
    compiles: AtomicU64,
}

impl PolicyHost {
    pub fn new(config: HostConfig) -> Result<Self> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        // CPU budget per call: see `Limits::fuel`.
        wasm.consume_fuel(true);
        wasm.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&wasm).map_err(|e| Error::Internal(format!("creating the wasmtime engine: {e}")))?;
        Ok(Self {
            engine,
            config,
            components: Mutex::default(),
            policies: Mutex::default(),
            compiles: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Loads a policy of `world`. Compiles the component only the first time its sha256 is seen; later loads of the
    /// same digest return the same [`Policy`].
    pub fn load(&self, world: World, source: Source<'_>) -> Result<Arc<Policy>> {
        let (bytes, sha256) = source.verified()?;
        if let Some(policy) = lock(&self.policies).get(&(sha256.clone(), world)) {
            return Ok(Arc::clone(policy));
        }
        let component = self.component(&sha256, bytes)?;
        let policy = Arc::new(Policy::new(&self.engine, &component, world, sha256.clone(), &self.config)?);
        lock(&self.policies).insert((sha256, world), Arc::clone(&policy));
        Ok(policy)
    }

    /// Shortcut for [`Source::Builtin`].
    pub fn load_builtin(&self, world: World, name: &str) -> Result<Arc<Policy>> {
        self.load(world, Source::Builtin(name))
    }

    /// Number of compilations so far (cache misses that were compiled, not read from the disk cache).
    pub fn compile_count(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Drops the in-memory cache entries of a digest (a source that is no longer referenced).
    pub fn forget(&self, sha256: &str) {
        lock(&self.components).remove(sha256);
        lock(&self.policies).retain(|(digest, _), _| digest != sha256);
    }

    fn component(&self, sha256: &str, bytes: &[u8]) -> Result<Component> {
        if let Some(component) = lock(&self.components).get(sha256) {
            return Ok(component.clone());
        }
        let component = match self.load_precompiled(sha256) {
            Some(component) => component,
            None => self.compile(sha256, bytes)?,
        };
        lock(&self.components).insert(sha256.to_string(), component.clone());
        Ok(component)
    }

    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<Component> {
        let load = |detail: String| Error::Load { sha256: sha256.to_string(), detail };
        let component = Component::new(&self.engine, bytes).map_err(|e| load(format!("{e:#}")))?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        tracing::info!(sha256, "compiled policy component");
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
