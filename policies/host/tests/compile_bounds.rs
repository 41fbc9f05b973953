//! The compile-cost drivers besides locals (`fixtures/README.md`, the `shape-*` fixtures built by `componentize
//! --shape`): for each, the largest shape the load bounds accept compiles in the worker within the stated memory
//! bound, and the next one is refused before anything is compiled. Compiled in the worker the operator uses, with
//! its default memory limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use perf_policy_host::isolate::CompileWorker;
use perf_policy_host::{
    CacheInput, HostConfig, LoadLimits, Policy, PolicyHost, Result, Source, World, source::sha256_hex,
};

/// What the largest accepted shape of every driver may take, the worker process whole: the stated bound, half the
/// worker's default limit (256 MiB on top of its start).
const BOUND_BYTES: u64 = 128 << 20;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn worker(memory_mib: u64) -> CompileWorker {
    CompileWorker {
        program: env!("CARGO_BIN_EXE_perf-policy-compile-worker").into(),
        args: Vec::new(),
        memory_bytes: memory_mib << 20,
    }
}

fn host(load_limits: LoadLimits) -> PolicyHost {
    let config = HostConfig { compile_worker: Some(worker(256)), load_limits, ..HostConfig::default() };
    PolicyHost::new(config).unwrap()
}

fn load(host: &PolicyHost, tenant: &str, name: &str) -> Result<Arc<Policy>> {
    let bytes = fixture(name);
    host.load_for(tenant, World::Cache, Source::Pinned { bytes: &bytes, sha256: &sha256_hex(&bytes) })
}

fn input() -> CacheInput {
    serde_json::from_str(include_str!("../../examples/cache-input.json")).unwrap()
}

#[test]
fn each_driver_compiles_within_the_bound_at_its_largest_and_is_refused_before_compiling_past_it() {
    let cases = [
        ("shape-frames.wasm", "shape-frames-over.wasm", "4097 blocks, loops and ifs, at most 4096"),
        ("shape-typed-blocks.wasm", "shape-typed-blocks-over.wasm", "257 blocks, loops and ifs that pass values"),
        ("shape-calls.wasm", "shape-calls-over.wasm", "calls pass 65600 values in and out"),
        ("shape-calls.wasm", "shape-type-values-over.wasm", "66 parameters and results, at most 64"),
        ("shape-types.wasm", "shape-types-over.wasm", "types, at most 4096 allowed"),
        ("shape-elements.wasm", "shape-elements-over.wasm", "element items, at most 10000 allowed"),
        ("shape-globals.wasm", "shape-globals-over.wasm", "globals, at most 1000 allowed"),
    ];
    for (largest, over, refusal) in cases {
        let host = host(LoadLimits::default());
        let started = Instant::now();
        let policy = load(&host, "team-a/web", largest).unwrap_or_else(|e| panic!("{largest}: {e}"));
        let took = started.elapsed();
        assert!(policy.evaluate_cache(&input()).is_ok(), "{largest} evaluates");
        let peak = host.compile_peak_rss_bytes();
        println!("{largest}: compiled in {took:?}, worker peak {} MiB", peak >> 20);
        assert!(peak > 0 && peak < BOUND_BYTES, "{largest}: the worker's peak {peak} B is not under {BOUND_BYTES} B");
        let compiles = host.compile_count();
        let err = load(&host, "team-a/web", over).err().map(|e| format!("{}: {e}", e.category())).unwrap_or_default();
        assert!(err.starts_with("load: ") && err.contains(refusal), "{over}: {refusal:?} not in {err:?}");
        assert_eq!(host.compile_count(), compiles, "{over} was refused before compiling");
    }
}

#[test]
fn a_compilation_past_its_deadline_is_stopped_and_frees_its_slot_at_once() {
    let limits = LoadLimits { compile_deadline: Duration::from_millis(300), ..LoadLimits::default() };
    let host = host(limits);
    // The largest block shape takes over a second to compile: stopped at 300 ms.
    let err = load(&host, "team-a/web", "shape-frames.wasm").err().map(|e| e.category()).unwrap_or_default();
    assert_eq!(err, "compile_timeout");
    // With one slot, a compilation still running would leave the next tenant Busy; the killed worker does not.
    let hostile = load(&host, "team-b/web", "hostile.wasm");
    assert!(hostile.is_ok(), "{:?}", hostile.err());
}

#[test]
fn a_worker_that_cannot_start_is_the_hosts_failure_never_the_components() {
    let missing = CompileWorker { program: "/nonexistent/perf-policy-worker".into(), ..worker(256) };
    let host = PolicyHost::new(HostConfig { compile_worker: Some(missing), ..HostConfig::default() }).unwrap();
    for _ in 0..2 {
        let err = load(&host, "team-a/web", "hostile.wasm").err().unwrap_or_else(|| panic!("loaded without a worker"));
        assert_eq!(err.category(), "internal", "{err}");
        assert!(err.refused_digest().is_none() && !err.is_load_failure(), "not held against the component: {err}");
    }
}

#[test]
fn a_worker_too_small_for_a_compilation_refuses_it_as_too_costly() {
    // 8 MiB on top of its start: enough for small components, not for the largest frame shape (about 70 MiB).
    let config = HostConfig { compile_worker: Some(worker(8)), ..HostConfig::default() };
    let host = PolicyHost::new(config).unwrap();
    let err = load(&host, "team-a/web", "shape-frames.wasm").err().map(|e| format!("{}: {e}", e.category()));
    let err = err.unwrap_or_default();
    assert!(err.starts_with("load: ") && err.contains("needs more than the 8 MiB"), "{err}");
    assert!(load(&host, "team-b/web", "hostile.wasm").is_ok(), "a small component still compiles");
}
