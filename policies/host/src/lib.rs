//! WASM policy host: loads user cache and rate-limit components with wasmtime and evaluates them sandboxed.
//!
//! - [`PolicyHost`]: one `Engine`; components compiled once per sha256 (in memory, optionally precompiled on disk);
//!   one pre-instantiated handle per component and world; no import is ever linked, so a component that imports
//!   anything is refused at load.
//! - [`Policy`]: a loaded policy; every call runs under a fuel (CPU) budget, a memory cap and an output cap, on a warm
//!   instance that is thrown away after any trap.
//! - [`Evaluator`]: the async wrapper (calls run on `spawn_blocking` under a semaphore).
//! - [`positional`]: outputs named by their input's classes and routes; the spec values as an output.
//! - [`cli`]: `perf-operator policy eval|validate`.

mod abi;
mod bindings;
pub mod check;
pub mod cli;
mod config;
mod error;
mod host;
mod limits;
mod native;
mod policy;
pub mod positional;
mod run;
pub mod source;
pub mod types;

pub use config::HostConfig;
pub use error::{Error, Result};
pub use host::PolicyHost;
pub use limits::Limits;
pub use policy::Policy;
pub use run::Evaluator;
pub use source::{BUILTIN_ADAPTIVE_RATE_LIMIT, BUILTIN_ADAPTIVE_TTL, Source};
pub use types::{
    CacheInput, CacheOutput, CacheStats, ClassDecision, MemoryAdvice, RateLimitInput, RateLimitOutput, RouteLimit,
    RouteState, RouteTraffic, Slo, TtlClass,
};

/// The two worlds of the `perf:policy` WIT package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `perf:policy/cache-policy`: TTL per cache class.
    Cache,
    /// `perf:policy/rate-limit-policy`: token-bucket limits per route.
    RateLimit,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Cache => "cache-policy",
            World::RateLimit => "rate-limit-policy",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
