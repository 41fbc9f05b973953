//! WASM policy host: loads user cache and rate-limit components with wasmtime and evaluates them sandboxed.
//!
//! - [`PolicyHost`]: one `Engine`; a component's shape is checked before it is compiled ([`preflight`]), compiled
//!   once per sha256 on a bounded compile thread under a deadline (in memory, optionally precompiled on disk), its
//!   identity checked ([`contract`]: `perf:policy` of a supported version, exactly the world's exports, no
//!   capability imported) and instantiated once at load; failures are remembered by digest too.
//! - [`Policy`]: a loaded policy for one tenant (profile); every call runs under a fuel (CPU) budget, a memory cap
//!   (one memory per instance) and an output check, on a warm instance of that tenant alone, thrown away after any
//!   trap and when idle.
//! - [`Evaluator`]: the async wrapper (calls run on `spawn_blocking` under a semaphore).
//! - [`positional`]: outputs named by their input's classes and routes; the spec values as an output.
//! - [`registry`]: components in OCI registries (pull with media types, digests and cosign signatures checked; push).
//! - [`cli`]: `perf-operator policy eval|validate|push|pull`.

mod abi;
mod bindings;
pub mod check;
pub mod cli;
mod compile;
mod config;
pub mod contract;
mod error;
mod host;
pub mod isolate;
mod limits;
mod native;
mod policy;
pub mod positional;
pub mod preflight;
pub mod registry;
mod retained;
mod run;
pub mod source;
mod template;
pub mod types;

pub use config::HostConfig;
pub use error::{Error, Result};
pub use host::{NO_TENANT, PolicyHost};
pub use limits::{Limits, LoadLimits};
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
