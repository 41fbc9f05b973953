//! `cargo bench -p perf-policy-host`: the example policies through the host (warm) vs the same algorithm in native
//! Rust, measured side by side in one run; cold load (compile) vs cached load; instantiation; evaluations/s/core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use perf_policy_algorithms::{RateLimitSettings, Slo, TtlSettings, rate_limit, ttl};
use perf_policy_host::{CacheInput, HostConfig, PolicyHost, RateLimitInput, Source, World, source::sha256_hex};

const MEASURE_FOR: Duration = Duration::from_millis(1500);

/// Mean nanoseconds per call of `f`, over as many calls as fit in `MEASURE_FOR` after a warm-up.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < MEASURE_FOR {
        for _ in 0..1_000 {
            f();
        }
        calls += 1_000;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn mean_of(n: u32, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).sum::<Duration>() / n
}

fn native_ttl(input: &CacheInput) -> (Vec<ttl::TtlClass>, ttl::CacheStats, Slo) {
    (input.classes.iter().map(Into::into).collect(), input.stats.into(), input.slo.into())
}

fn native_routes(input: &RateLimitInput) -> Vec<rate_limit::RouteState> {
    input.routes.iter().map(Into::into).collect()
}

/// The target for a warm evaluation of a realistic input: under 1 us, so over 1 M evaluations/s/core.
const TARGET_NS: f64 = 1_000.0;

fn row(name: &str, wasm_ns: f64, native_ns: f64) {
    println!(
        "{name:<22} wasm {wasm_ns:>8.0} ns/eval   native {native_ns:>7.0} ns/eval   ratio {:>5.1}x   wasm {:>10.0} evals/s/core   target (<{TARGET_NS:.0} ns) {}",
        wasm_ns / native_ns,
        1e9 / wasm_ns,
        if wasm_ns < TARGET_NS { "met" } else { "MISSED" }
    );
}

fn main() {
    let cache: CacheInput = serde_json::from_str(include_str!("../../examples/cache-input.json")).expect("example");
    let limits: RateLimitInput =
        serde_json::from_str(include_str!("../../examples/rate-limit-input.json")).expect("example");
    let host = PolicyHost::new(HostConfig::default()).expect("host");
    let ttl_policy = host.load_builtin(World::Cache, "adaptive-ttl").expect("adaptive-ttl");
    let rl_policy = host.load_builtin(World::RateLimit, "adaptive-rate-limit").expect("adaptive-rate-limit");

    println!(
        "input: {} TTL classes, {} routes; one thread; wasmtime 48, fuel budget {} per call, memory cap {} MiB",
        cache.classes.len(),
        limits.routes.len(),
        host.config().limits.fuel,
        host.config().limits.memory_bytes >> 20
    );

    let wasm = ns_per_call(|| {
        black_box(ttl_policy.evaluate_cache(black_box(&cache)).expect("evaluate"));
    });
    let (classes, stats, cache_slo) = native_ttl(&cache);
    let native = ns_per_call(|| {
        let settings = TtlSettings::parse_cached(black_box(&cache.settings)).expect("settings");
        let decision: ttl::CacheDecision = ttl::decide(black_box(&classes), &stats, &cache_slo, &settings);
        black_box(decision);
    });
    row("adaptive-ttl", wasm, native);
    println!("  fuel used per call: {}", ttl_policy.last_fuel_used());

    let wasm = ns_per_call(|| {
        black_box(rl_policy.evaluate_rate_limit(black_box(&limits)).expect("evaluate"));
    });
    let routes = native_routes(&limits);
    let rl_slo: Slo = limits.slo.into();
    let native = ns_per_call(|| {
        let settings = RateLimitSettings::parse_cached(black_box(&limits.settings)).expect("settings");
        let decision: rate_limit::RateLimitDecision = rate_limit::decide(black_box(&routes), &rl_slo, &settings);
        black_box(decision);
    });
    row("adaptive-rate-limit", wasm, native);
    println!("  fuel used per call: {}", rl_policy.last_fuel_used());

    // Isolation: every profile evaluates on its own warm instances. Interleaving eight profiles shows the cost of
    // that against one shared instance (the row above), and against a fresh instance per evaluation (below).
    let tenants: Vec<_> = (0..8)
        .map(|i| {
            host.load_for(&format!("ns/profile-{i}"), World::Cache, Source::Builtin("adaptive-ttl")).expect("load")
        })
        .collect();
    let mut next = 0usize;
    let isolated = ns_per_call(|| {
        next = (next + 1) % tenants.len();
        black_box(tenants[next].evaluate_cache(black_box(&cache)).expect("evaluate"));
    });
    println!(
        "adaptive-ttl, isolation on (8 profiles interleaved, one warm instance each): {isolated:.0} ns/eval   target (<{TARGET_NS:.0} ns) {}",
        if isolated < TARGET_NS { "met" } else { "MISSED" }
    );

    let bytes = perf_policy_host::BUILTIN_ADAPTIVE_TTL;
    let sha = sha256_hex(bytes);
    let cold = mean_of(5, || {
        host.forget(&sha);
        let start = Instant::now();
        black_box(host.load(World::Cache, Source::Pinned { bytes, sha256: &sha }).expect("load"));
        start.elapsed()
    });
    let cached_pinned = ns_per_call(|| {
        black_box(host.load(World::Cache, Source::Pinned { bytes, sha256: &sha }).expect("load"));
    });
    let cached_builtin = ns_per_call(|| {
        black_box(host.load_builtin(World::Cache, "adaptive-ttl").expect("load"));
    });
    println!(
        "load adaptive-ttl ({} KiB): cold (compile) {:.2} ms   cached, pinned bytes (sha256 check) {:.1} us   cached builtin {:.0} ns   cold/cached {:.0}x",
        bytes.len() / 1024,
        cold.as_secs_f64() * 1e3,
        cached_pinned / 1e3,
        cached_builtin,
        cold.as_nanos() as f64 / cached_pinned
    );

    // The worst shape the load bounds allow (two functions of 2 000 locals in a dense loop, at the compile weight's
    // bound, `fixtures/compile-heavy.wasm`) against a built-in, and the refused compile bombs (one huge function; 32
    // functions each inside the per-function bounds): what a tenant's component can cost the compile thread.
    let heavy = include_bytes!("../tests/fixtures/compile-heavy.wasm");
    let bomb = include_bytes!("../tests/fixtures/compile-bomb.wasm");
    let wide = include_bytes!("../tests/fixtures/compile-wide.wasm");
    let cold_load = |bytes: &[u8]| {
        let fresh = PolicyHost::new(HostConfig::default()).expect("host");
        let start = Instant::now();
        let result = fresh.load(World::Cache, Source::Pinned { bytes, sha256: &sha256_hex(bytes) });
        (start.elapsed(), result.err().map(|e| e.category()))
    };
    let (heavy_load, heavy_err) = cold_load(heavy);
    let (bomb_load, bomb_err) = cold_load(bomb);
    let (wide_load, wide_err) = cold_load(wide);
    println!(
        "cold load of the heaviest allowed component: {:.0} ms ({:.1}x the built-in's {:.0} ms, deadline {} s){}   compile bombs refused before compiling in {:.2} ms ({}) and {:.2} ms ({})",
        heavy_load.as_secs_f64() * 1e3,
        heavy_load.as_secs_f64() / cold.as_secs_f64(),
        cold.as_secs_f64() * 1e3,
        host.config().load_limits.compile_deadline.as_secs(),
        heavy_err.map(|c| format!(" FAILED: {c}")).unwrap_or_default(),
        bomb_load.as_secs_f64() * 1e3,
        bomb_err.unwrap_or("LOADED"),
        wide_load.as_secs_f64() * 1e3,
        wide_err.unwrap_or("LOADED"),
    );

    let no_reuse = PolicyHost::new(HostConfig { max_warm_instances: 0, ..HostConfig::default() }).expect("host");
    let fresh_policy = no_reuse.load_builtin(World::Cache, "adaptive-ttl").expect("load");
    let fresh = mean_of(200, || {
        let start = Instant::now();
        black_box(fresh_policy.evaluate_cache(&cache).expect("evaluate"));
        start.elapsed()
    });
    println!("adaptive-ttl with a fresh instance per call (no warm reuse): {:.1} us/eval", fresh.as_secs_f64() * 1e6);
}
