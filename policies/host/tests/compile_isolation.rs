//! One test alone in its process, so that the process's peak memory is its own: a component far past every
//! compile bound (the shape checks loosened, as for a shape they do not know) takes a worker's memory, never the
//! host's. Compiled in this process, it took 1 GB.

use perf_policy_host::isolate::CompileWorker;
use perf_policy_host::{HostConfig, LoadLimits, PolicyHost, Source, World, source::sha256_hex};

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() << 10
}

#[test]
fn the_worst_component_takes_the_workers_memory_and_not_the_hosts() {
    let path = format!("{}/tests/fixtures/shape-frames-bomb.wasm", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let loose = LoadLimits { max_frames: u32::MAX, max_compile_weight: usize::MAX, ..LoadLimits::default() };
    let worker = CompileWorker {
        program: env!("CARGO_BIN_EXE_perf-policy-compile-worker").into(),
        args: Vec::new(),
        memory_bytes: 256 << 20,
    };
    let config = HostConfig { compile_worker: Some(worker), load_limits: loose, ..HostConfig::default() };
    let host = PolicyHost::new(config).unwrap();
    let before = peak_rss_bytes();
    let loaded =
        host.load_for("team-a/web", World::Cache, Source::Pinned { bytes: &bytes, sha256: &sha256_hex(&bytes) });
    let err = loaded.err().map(|e| format!("{}: {e}", e.category())).unwrap_or_default();
    assert!(err.starts_with("load: ") && err.contains("needs more than the 256 MiB"), "{err}");
    let grown = peak_rss_bytes().saturating_sub(before);
    println!("host peak grew by {} MiB while the worker failed at its limit", grown >> 20);
    assert!(grown < 32 << 20, "the host's peak grew by {grown} B");
}
