//! Convergence against the real API server: N profiles, each with its target Deployment, for two sizes in one
//! run (default 500 and 2,000; `PERF_BENCH_SIZES=500,2000`). Prints, per size: time from the first create to all
//! `Ready`, the operator's peak RSS, API requests per profile to converge and writes during two quiet resyncs
//! (both from the audit log), then the large/small ratios (linear = the size ratio). Not a timed test: it
//! prints, and fails only when the operator never converges or writes while quiet.
//!
//! Run by `tests/bench-converge.sh` (it starts the control plane like tests/run.sh).

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use perf_e2e::fixtures::{create_apps, profile, wait_all_ready};
use perf_e2e::{Operator, audit, cluster};
use perf_operator_api::PerformanceProfile;
use serde_json::json;
use std::time::{Duration, Instant};

struct Measure {
    n: usize,
    converge: Duration,
    peak_rss_kib: u64,
    requests_per_profile: f64,
    quiet_writes: usize,
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("PERF_BENCH_SIZES")
        .unwrap_or_else(|_| "500,2000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("PERF_BENCH_SIZES: comma-separated counts"))
        .collect();
    let mut results = Vec::new();
    for n in sizes {
        let m = measure(n).await;
        println!(
            "n={:>6}  converge {:>8.1} s  peak RSS {:>7.1} MiB ({:>6.1} KiB/profile)  requests/profile {:>5.1}  quiet writes {}",
            m.n,
            m.converge.as_secs_f64(),
            m.peak_rss_kib as f64 / 1024.0,
            m.peak_rss_kib as f64 / m.n as f64,
            m.requests_per_profile,
            m.quiet_writes
        );
        assert_eq!(m.quiet_writes, 0, "the operator wrote during quiet resyncs");
        results.push(m);
    }
    if let [small, .., large] = results.as_slice() {
        println!(
            "ratios {}/{} (linear = {:.1}): converge time {:.2}, peak RSS {:.2}, requests/profile {:.2}",
            large.n,
            small.n,
            large.n as f64 / small.n as f64,
            large.converge.as_secs_f64() / small.converge.as_secs_f64(),
            large.peak_rss_kib as f64 / small.peak_rss_kib as f64,
            large.requests_per_profile / small.requests_per_profile
        );
    }
}

async fn measure(n: usize) -> Measure {
    let c = cluster().await;
    create_apps(&c.api(), n).await;
    let op = Operator::start_with(&c.namespace, "bench", &["--resync-seconds", "20"]);
    let window = audit::Window::open().expect("the benchmark needs the audit log of tests/support/control-plane.sh");
    let profiles: Api<PerformanceProfile> = c.profiles();
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let profiles = &profiles;
            let spec = json!({"pools": {"postgres": {"min": 5, "max": 20}}, "slo": {"p99LatencyMs": 150}});
            let mut p = profile(&c.namespace, &format!("app-{i}"), spec);
            p.spec.cache = None;
            async move { profiles.create(&PostParams::default(), &p).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create profiles");
    let mut peak = wait_all_ready(&profiles, n, &op, Duration::from_secs(1800)).await;
    let converge = started.elapsed();
    let requests = window.requests(perf_e2e::OPERATOR_USER).len();
    // Convergence ends with the last write (events trail the Ready status): let one full resync pass, then count
    // the writes of two more (every 20 s here), in which every profile is reconciled twice and nothing changes.
    let wait_reconciles = |count: f64| {
        let op = &op;
        async move {
            let start = op.reconciles().await;
            let mut peak = 0;
            while op.reconciles().await < start + count {
                peak = peak.max(op.peak_rss_kib());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            peak
        }
    };
    peak = peak.max(wait_reconciles(n as f64).await);
    let quiet = audit::Window::open().expect("audit log");
    peak = peak.max(wait_reconciles(2.0 * n as f64).await);
    let quiet_writes = quiet.writes(perf_e2e::OPERATOR_USER, &c.namespace).len();
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    drop(op);
    let _ = namespaces.delete(&c.namespace, &Default::default()).await;
    Measure { n, converge, peak_rss_kib: peak, requests_per_profile: requests as f64 / n as f64, quiet_writes }
}
