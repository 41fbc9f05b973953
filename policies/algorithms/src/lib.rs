//! The algorithms of the two example policies, in plain Rust.
//!
//! The WASM guests (`policies/guests/adaptive-*`) convert their WIT inputs into these types and call these
//! functions; the host benchmark calls the same functions natively, so the WASM/native ratio it prints compares
//! the same code. The functions are pure: all state (current values, spec values, observations) is in the input.

pub mod rate_limit;
mod settings;
pub mod ttl;

pub use settings::{RateLimitSettings, TtlSettings};

/// Service-level objective of the service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slo {
    pub p99_latency_ms: u32,
    pub error_rate_percent: f64,
}

/// Largest TTL a class may get (one year, the API's bound).
pub const MAX_TTL_SECONDS: u32 = 31_536_000;

/// Multiplies `value` by `factor` and clamps the result to `[low, high]` (`low >= 1`), rounding to the nearest.
pub(crate) fn scale_clamped(value: u32, factor: f64, low: u32, high: u32) -> u32 {
    round_to_u32(f64::from(value) * factor).clamp(low, high.max(low))
}

/// `spec * factor`, rounded, at least 1 and at most `max`.
pub(crate) fn bound(spec: u32, factor: f64, max: u32) -> u32 {
    round_to_u32(f64::from(spec) * factor).clamp(1, max)
}

/// Rounds a non-negative value half up. Not `f64::round`: on wasm32 that is a libm call, `floor` is one instruction,
/// and the guests call this a few times per class or route. Float-to-int `as` saturates (NaN and negatives -> 0).
fn round_to_u32(value: f64) -> u32 {
    (value + 0.5).floor() as u32
}
