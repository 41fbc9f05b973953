//! `cargo bench -p perf-policy-host --bench compile_shapes`: for each compile-cost driver, the largest shape the
//! load bounds accept (`tests/fixtures/README.md`, `shape-*`), compiled in the operator's worker process at its
//! default limit, side by side with a built-in policy in the same run: wall time and the worker's peak resident
//! memory, each as a ratio to the built-in's. The stated bound is 128 MiB per compilation (`tests/compile_bounds.rs`).

use std::time::Instant;

use perf_policy_host::isolate::CompileWorker;
use perf_policy_host::{BUILTIN_ADAPTIVE_TTL, HostConfig, PolicyHost, Source, World, source::sha256_hex};

const SHAPES: [(&str, &str); 7] = [
    ("compile-heavy.wasm", "locals: 2 functions of 2 000 locals"),
    ("shape-frames.wasm", "frames: 7 functions of 4 096 blocks"),
    ("shape-typed-blocks.wasm", "typed blocks: 256 of 64 values"),
    ("shape-calls.wasm", "calls: 1 024 of 64 values"),
    ("shape-types.wasm", "types: about 4 000"),
    ("shape-elements.wasm", "element items: about 10 000"),
    ("shape-globals.wasm", "globals: about 1 000"),
];

/// Compiles `bytes` in a fresh host's worker: (seconds, worker peak MiB).
fn compile(bytes: &[u8]) -> (f64, f64) {
    let worker = CompileWorker {
        program: env!("CARGO_BIN_EXE_perf-policy-compile-worker").into(),
        args: Vec::new(),
        memory_bytes: 256 << 20,
    };
    let host = PolicyHost::new(HostConfig { compile_worker: Some(worker), ..HostConfig::default() }).expect("host");
    let started = Instant::now();
    // Pinned, not built-in: a built-in is trusted and compiled in process.
    host.load_for("bench/shape", World::Cache, Source::Pinned { bytes, sha256: &sha256_hex(bytes) }).expect("loads");
    (started.elapsed().as_secs_f64(), host.compile_peak_rss_bytes() as f64 / (1 << 20) as f64)
}

fn main() {
    let (base_s, base_mib) = compile(BUILTIN_ADAPTIVE_TTL);
    println!("{:<26} {:>9} {:>7} {:>10} {:>7}  driver", "component", "compile", "x", "peak MiB", "x");
    println!(
        "{:<26} {:>8.3}s {:>7} {:>10.1} {:>7}  the built-in adaptive-ttl",
        "adaptive-ttl.wasm", base_s, "1.0", base_mib, "1.0"
    );
    for (name, driver) in SHAPES {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (s, mib) = compile(&bytes);
        println!("{name:<26} {s:>8.3}s {:>7.1} {mib:>10.1} {:>7.1}  {driver}", s / base_s, mib / base_mib);
    }
}
