//! The records of the `perf:policy/types` WIT interface, as Rust structs the operator fills from its observations.
//! They derive the component-model traits (so calls lower them directly, no intermediate copy) and serde
//! (camelCase) for the CLI's JSON files and the trimmed inputs/outputs in status. Field order must match the WIT.

use serde::{Deserialize, Serialize};
use wasmtime::component::{ComponentType, Lift, Lower};

/// Service-level objective of the service.
#[derive(ComponentType, Lift, Lower, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct Slo {
    #[component(name = "p99-latency-ms")]
    pub p99_latency_ms: u32,
    #[component(name = "error-rate-percent")]
    pub error_rate_percent: f64,
}

/// One TTL class: the value currently published and the value written in the spec.
/// Its component type and lowering are in `abi.rs` (the WIT record has no name).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TtlClass {
    pub name: String,
    pub ttl_seconds: u32,
    pub spec_ttl_seconds: u32,
}

/// Redis statistics since the previous evaluation (counters as deltas).
#[derive(ComponentType, Lift, Lower, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    #[component(name = "used-memory-bytes")]
    pub used_memory_bytes: u64,
    /// 0 means unlimited.
    #[component(name = "max-memory-bytes")]
    pub max_memory_bytes: u64,
    pub keys: u64,
}

/// Input of a cache policy.
#[derive(ComponentType, Lower, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct CacheInput {
    pub classes: Vec<TtlClass>,
    pub stats: CacheStats,
    pub slo: Slo,
    /// The profile's `policy.settings` as JSON text; in JSON files it may be written as an object.
    #[serde(default = "json_text::empty_object", with = "json_text")]
    pub settings: String,
}

/// Decision for the class at the same position in the input.
/// `Lift` is written by hand in `abi.rs`, for speed.
#[derive(ComponentType, Lower, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct ClassDecision {
    #[component(name = "ttl-seconds")]
    pub ttl_seconds: u32,
    pub admit: bool,
}

/// Advice about Redis memory.
#[derive(ComponentType, Lift, Lower, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct MemoryAdvice {
    #[component(name = "max-memory-bytes")]
    pub max_memory_bytes: Option<u64>,
    #[component(name = "eviction-policy")]
    pub eviction_policy: Option<String>,
}

/// Output of a cache policy: `classes[i]` is the decision for `classes[i]` of the input.
#[derive(ComponentType, Lift, Lower, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct CacheOutput {
    pub classes: Vec<ClassDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryAdvice>,
    pub reason: String,
}

/// Traffic observed on one route over the evaluation window.
#[derive(ComponentType, Lift, Lower, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct RouteTraffic {
    #[component(name = "requests-per-second")]
    pub requests_per_second: f64,
    #[component(name = "p99-latency-ms")]
    pub p99_latency_ms: f64,
    #[component(name = "error-percent")]
    pub error_percent: f64,
    #[component(name = "rejected-per-second")]
    pub rejected_per_second: f64,
}

/// One route: current limits, spec limits and what was observed.
/// Its component type and lowering are in `abi.rs` (the WIT record has no name).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteState {
    pub route: String,
    pub requests_per_second: u32,
    pub burst: u32,
    pub spec_requests_per_second: u32,
    pub spec_burst: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<RouteTraffic>,
}

/// Input of a rate-limit policy.
#[derive(ComponentType, Lower, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitInput {
    pub routes: Vec<RouteState>,
    pub slo: Slo,
    /// The profile's `policy.settings` as JSON text; in JSON files it may be written as an object.
    #[serde(default = "json_text::empty_object", with = "json_text")]
    pub settings: String,
}

/// Token bucket for the route at the same position in the input.
/// `Lift` is written by hand in `abi.rs`, for speed.
#[derive(ComponentType, Lower, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct RouteLimit {
    #[component(name = "requests-per-second")]
    pub requests_per_second: u32,
    pub burst: u32,
}

/// Output of a rate-limit policy: `routes[i]` is the limit for `routes[i]` of the input.
#[derive(ComponentType, Lift, Lower, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[component(record)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitOutput {
    pub routes: Vec<RouteLimit>,
    pub reason: String,
}

/// Settings travel as JSON text (the WIT keeps them opaque); in JSON documents they read and print as the object.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn empty_object() -> String {
        "{}".to_string()
    }

    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => value.serialize(s),
            Err(_) => text.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(text) => text,
            other => other.to_string(),
        })
    }
}

/// What `bindgen!` asks of an interface mapped with `with`: its host side. `perf:policy/types` holds only types,
/// so there is nothing to implement and nothing to link (the host never calls this: it links nothing at all).
pub trait Host {}

/// See [`Host`].
pub trait HostWithStore<T>: wasmtime::component::HasData {}

impl<H: ?Sized + wasmtime::component::HasData, T> HostWithStore<T> for H {}

/// See [`Host`]: defines the (empty) `perf:policy/types` instance.
pub fn add_to_linker<T, D>(
    linker: &mut wasmtime::component::Linker<T>,
    _host_getter: fn(&mut T) -> D::Data<'_>,
) -> wasmtime::Result<()>
where
    D: HostWithStore<T>,
    for<'a> D::Data<'a>: Host,
    T: 'static,
{
    linker.instance("perf:policy/types@0.2.0")?;
    Ok(())
}
