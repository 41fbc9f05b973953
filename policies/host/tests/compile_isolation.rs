//! One test alone in its process, so that the process's memory is its own: a component far past every compile
//! bound (the shape checks loosened, as for a shape they do not know; 1 GB to compile in process) takes a worker's
//! memory, never the host's. Where the machine lets a test make a memory cgroup (v1), the process runs under a
//! 384 MiB limit as an operator pod would (its own use plus a worker's 256 MiB), and lives.

use perf_policy_host::isolate::CompileWorker;
use perf_policy_host::{HostConfig, LoadLimits, PolicyHost, Source, World, source::sha256_hex};
use std::path::PathBuf;

const POD_LIMIT: u64 = 384 << 20;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() << 10
}

/// A memory cgroup (v1) holding this process under `limit`, left (and removed) on drop.
struct Pod {
    own: PathBuf,
    parent: PathBuf,
}

impl Pod {
    fn enter(limit: u64) -> Option<Self> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path = cgroups.lines().find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))?;
        let parent = PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
        let own = parent.join(format!("perf-compile-isolation-{}", std::process::id()));
        std::fs::create_dir(&own).ok()?;
        let pod = Self { own, parent };
        let pid = std::process::id().to_string();
        let entered = std::fs::write(pod.own.join("memory.limit_in_bytes"), limit.to_string())
            .and_then(|()| std::fs::write(pod.own.join("cgroup.procs"), &pid));
        entered.ok().map(|()| pod)
    }

    fn read(&self, file: &str) -> u64 {
        std::fs::read_to_string(self.own.join(file)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = std::fs::write(self.parent.join("cgroup.procs"), std::process::id().to_string());
        let _ = std::fs::remove_dir(&self.own);
    }
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
    let pod = Pod::enter(POD_LIMIT);
    println!("under a {} MiB memory cgroup: {}", POD_LIMIT >> 20, pod.is_some());
    let before = peak_rss_bytes();
    let loaded =
        host.load_for("team-a/web", World::Cache, Source::Pinned { bytes: &bytes, sha256: &sha256_hex(&bytes) });
    let err = loaded.err().map(|e| format!("{}: {e}", e.category())).unwrap_or_default();
    assert!(err.starts_with("load: ") && err.contains("needs more than the 256 MiB"), "{err}");
    let grown = peak_rss_bytes().saturating_sub(before);
    println!("host peak grew by {} MiB while the worker failed at its limit", grown >> 20);
    assert!(grown < 32 << 20, "the host's peak grew by {grown} B");
    if let Some(pod) = &pod {
        // The host and its worker together stayed inside the pod's limit: never at it, so nothing was reclaimed or
        // killed to keep them there.
        let (peak, failures) = (pod.read("memory.max_usage_in_bytes"), pod.read("memory.failcnt"));
        println!("cgroup peak {} MiB, limit hits {failures}", peak >> 20);
        assert!(peak < POD_LIMIT && failures == 0, "peak {peak} B, {failures} hits of the {POD_LIMIT} B limit");
    }
}
