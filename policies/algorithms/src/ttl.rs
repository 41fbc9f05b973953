//! `adaptive-ttl`: lengthen TTLs while the hit ratio is low and memory allows, shorten them under eviction pressure,
//! always within `[minFactor, maxFactor]` times the spec TTL.

use crate::{MAX_TTL_SECONDS, Slo, TtlSettings, bound, scale_clamped};

/// One TTL class: current (published) and spec TTL. No name, as in the WIT: classes are positional.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TtlClass {
    pub ttl_seconds: u32,
    pub spec_ttl_seconds: u32,
}

/// What [`decide`] reads of a class. The guests implement it for their WIT records, so they hand their input to the
/// algorithm as it is, without copying it into [`TtlClass`] first.
pub trait Class {
    /// TTL currently published.
    fn ttl_seconds(&self) -> u32;
    /// TTL written in the profile.
    fn spec_ttl_seconds(&self) -> u32;
}

impl Class for TtlClass {
    fn ttl_seconds(&self) -> u32 {
        self.ttl_seconds
    }

    fn spec_ttl_seconds(&self) -> u32 {
        self.spec_ttl_seconds
    }
}

/// Redis statistics since the previous evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub used_memory_bytes: u64,
    /// 0 means unlimited.
    pub max_memory_bytes: u64,
    pub keys: u64,
}

/// Decision for the class at the same position in the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassDecision {
    pub ttl_seconds: u32,
    pub admit: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemoryAdvice {
    pub max_memory_bytes: Option<u64>,
    pub eviction_policy: Option<String>,
}

/// The decision; `D` is the caller's per-class decision type (the guests use their WIT record).
#[derive(Clone, Debug, PartialEq)]
pub struct CacheDecision<D = ClassDecision> {
    pub classes: Vec<D>,
    pub memory: Option<MemoryAdvice>,
    pub reason: String,
}

/// What the observations call for, applied to every class alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Lengthen,
    Shorten,
    Keep,
}

/// Chooses the direction from the stats: eviction pressure wins over a low hit ratio.
pub fn direction(stats: &CacheStats, settings: &TtlSettings) -> (Direction, &'static str) {
    let lookups = stats.hits.saturating_add(stats.misses);
    if lookups == 0 {
        return (Direction::Keep, "no lookups observed");
    }
    let lookups = lookups as f64;
    if stats.evictions as f64 / lookups > settings.eviction_pressure {
        return (Direction::Shorten, "eviction pressure");
    }
    let memory_ratio =
        if stats.max_memory_bytes == 0 { 0.0 } else { stats.used_memory_bytes as f64 / stats.max_memory_bytes as f64 };
    let hit_ratio = stats.hits as f64 / lookups;
    if hit_ratio >= settings.target_hit_ratio {
        (Direction::Keep, "hit ratio on target")
    } else if memory_ratio < settings.memory_high_watermark {
        (Direction::Lengthen, "hit ratio below target and memory available")
    } else {
        (Direction::Keep, "hit ratio below target but memory near its limit")
    }
}

/// The decision of `adaptive-ttl`. The SLO is part of the contract but this policy does not use it.
pub fn decide<C: Class, D: From<ClassDecision>>(
    classes: &[C],
    stats: &CacheStats,
    _slo: &Slo,
    settings: &TtlSettings,
) -> CacheDecision<D> {
    let (direction, why) = direction(stats, settings);
    let factor = match direction {
        Direction::Lengthen => settings.grow_factor,
        Direction::Shorten => settings.shrink_factor,
        Direction::Keep => 1.0,
    };
    let classes = classes
        .iter()
        .map(|c| {
            let spec = c.spec_ttl_seconds();
            let low = bound(spec, settings.min_factor, MAX_TTL_SECONDS);
            let high = bound(spec, settings.max_factor, MAX_TTL_SECONDS);
            let ttl_seconds = scale_clamped(c.ttl_seconds(), factor, low, high);
            D::from(ClassDecision { ttl_seconds, admit: ttl_seconds >= settings.min_admit_ttl_seconds })
        })
        .collect();
    CacheDecision { classes, memory: memory_advice(direction, stats), reason: why.to_string() }
}

/// The contract's range for `memory-advice.max-memory-bytes` (`policy.wit`): 1 MiB to 1 TiB. The host refuses an
/// output outside it.
pub const MIN_ADVISED_MEMORY_BYTES: u64 = 1 << 20;
pub const MAX_ADVISED_MEMORY_BYTES: u64 = 1 << 40;

/// Under eviction pressure with a memory limit, advise 25 % more memory (within the contract's range) and an LFU
/// eviction policy.
fn memory_advice(direction: Direction, stats: &CacheStats) -> Option<MemoryAdvice> {
    let more = stats.max_memory_bytes.saturating_add(stats.max_memory_bytes / 4);
    (direction == Direction::Shorten && stats.max_memory_bytes > 0).then(|| MemoryAdvice {
        max_memory_bytes: Some(more.clamp(MIN_ADVISED_MEMORY_BYTES, MAX_ADVISED_MEMORY_BYTES)),
        eviction_policy: Some("allkeys-lfu".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLO: Slo = Slo { p99_latency_ms: 150, error_rate_percent: 0.1 };

    fn class(ttl: u32, spec: u32) -> Vec<TtlClass> {
        vec![TtlClass { ttl_seconds: ttl, spec_ttl_seconds: spec }]
    }

    fn stats(hits: u64, misses: u64, evictions: u64, used: u64, max: u64) -> CacheStats {
        CacheStats { hits, misses, evictions, used_memory_bytes: used, max_memory_bytes: max, keys: 100 }
    }

    fn decide(classes: &[TtlClass], stats: &CacheStats, settings: &TtlSettings) -> CacheDecision {
        super::decide(classes, stats, &SLO, settings)
    }

    fn ttl_after(ttl: u32, spec: u32, s: CacheStats) -> u32 {
        decide(&class(ttl, spec), &s, &TtlSettings::default()).classes[0].ttl_seconds
    }

    #[test]
    fn low_hit_ratio_with_memory_lengthens() {
        assert_eq!(ttl_after(100, 100, stats(50, 50, 0, 10, 100)), 125);
    }

    #[test]
    fn low_hit_ratio_without_memory_keeps() {
        assert_eq!(ttl_after(100, 100, stats(50, 50, 0, 90, 100)), 100);
    }

    #[test]
    fn eviction_pressure_shortens_and_advises_memory() {
        let d = decide(&class(100, 100), &stats(50, 50, 10, 99, 100), &TtlSettings::default());
        assert_eq!(d.classes[0].ttl_seconds, 80);
        assert_eq!(d.memory.unwrap().max_memory_bytes, Some(MIN_ADVISED_MEMORY_BYTES), "never below the floor");
        let big = decide(&class(100, 100), &stats(50, 50, 10, 99 << 20, 100 << 20), &TtlSettings::default());
        assert_eq!(big.memory.unwrap().max_memory_bytes, Some(125 << 20));
        let huge = decide(&class(100, 100), &stats(50, 50, 10, u64::MAX - 1, u64::MAX), &TtlSettings::default());
        assert_eq!(huge.memory.unwrap().max_memory_bytes, Some(MAX_ADVISED_MEMORY_BYTES), "never above the cap");
    }

    #[test]
    fn ttl_stays_within_factors_of_spec() {
        assert_eq!(ttl_after(390, 100, stats(1, 99, 0, 0, 0)), 400);
        assert_eq!(ttl_after(26, 100, stats(1, 99, 50, 0, 0)), 25);
    }

    #[test]
    fn no_lookups_keeps_current() {
        assert_eq!(ttl_after(130, 100, stats(0, 0, 0, 0, 0)), 130);
    }

    #[test]
    fn short_ttls_are_not_admitted_when_asked() {
        let settings = TtlSettings { min_admit_ttl_seconds: 60, ..TtlSettings::default() };
        let d = decide(&class(40, 40), &stats(90, 10, 0, 0, 0), &settings);
        assert!(!d.classes[0].admit);
    }
}
