//! Unrelated objects against the real API server (issue "quiet at scale", benchmark 2): a cluster-wide operator
//! starting on a cluster that also holds `PERF_UNRELATED_OBJECTS` Deployments (no replicas) and as many ConfigMaps
//! that no profile names (default 10,000 each), against the same start without them, in one run: the operator's peak
//! RSS, its CPU seconds and the time until `PERF_UNRELATED_PROFILES` (100) profiles are Ready. Prints the two rows
//! and their ratios. Run by `tests/bench-scale.sh` (PERF_BENCHES=unrelated).

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use perf_e2e::fixtures::{app, create_apps, profile, wait_all_ready};
use perf_e2e::{Cluster, Operator, cluster};
use serde_json::json;
use std::time::{Duration, Instant};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Start {
    ready_after: Duration,
    peak_rss_kib: u64,
    cpu_seconds: f64,
}

/// `n` Deployments with no replicas (no pods to run) and `n` ConfigMaps in the namespace of `c`.
async fn unrelated(c: &Cluster, n: usize) {
    let deployments: Api<Deployment> = c.api();
    let config_maps: Api<ConfigMap> = c.api();
    stream::iter(0..n)
        .map(|i| {
            let (deployments, config_maps) = (&deployments, &config_maps);
            async move {
                deployments
                    .create(&PostParams::default(), &app(&format!("other-{i}"), "registry.example/o:1", 0))
                    .await?;
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("other-{i}")},
                    "data": {"settings": "x".repeat(512)}}))
                .expect("ConfigMap");
                config_maps.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create the unrelated objects");
}

/// A cluster-wide operator started now; `profiles` profiles (with their targets) created; measured until Ready.
async fn start(profiles: usize) -> Start {
    let c = cluster().await;
    create_apps(&c.api(), profiles).await;
    let op = Operator::start_with(&c.namespace, "unrelated", &["--watch-namespace", "", "--resync-seconds", "300"]);
    let started = Instant::now();
    let api = c.profiles();
    stream::iter(0..profiles)
        .map(|i| {
            let api = &api;
            let p = profile(&c.namespace, &format!("app-{i}"), json!({"pools": {"postgres": {"min": 5, "max": 20}}}));
            let mut p = p;
            p.spec.cache = None;
            async move { api.create(&PostParams::default(), &p).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create profiles");
    let peak = wait_all_ready(&api, profiles, &op, Duration::from_secs(900)).await;
    let ready_after = started.elapsed();
    Start { ready_after, peak_rss_kib: peak, cpu_seconds: op.cpu_seconds() }
}

#[tokio::main]
async fn main() {
    let (objects, profiles) = (setting("PERF_UNRELATED_OBJECTS", 10_000), setting("PERF_UNRELATED_PROFILES", 100));
    let without = start(profiles).await;
    let others = cluster().await;
    let created = Instant::now();
    unrelated(&others, objects).await;
    println!(
        "created {objects} Deployments and {objects} ConfigMaps no profile names in {:.0} s",
        created.elapsed().as_secs_f64()
    );
    let with = start(profiles).await;
    for (name, s) in [("without", &without), ("with", &with)] {
        println!(
            "{name:>7}: {profiles} profiles Ready after {:>6.1} s  operator peak RSS {:>6.1} MiB  CPU {:>5.1} s",
            s.ready_after.as_secs_f64(),
            s.peak_rss_kib as f64 / 1024.0,
            s.cpu_seconds
        );
    }
    println!(
        "with/without: time to Ready {:.2}  peak RSS {:.2}  CPU {:.2}",
        with.ready_after.as_secs_f64() / without.ready_after.as_secs_f64(),
        with.peak_rss_kib as f64 / without.peak_rss_kib as f64,
        with.cpu_seconds / without.cpu_seconds
    );
}
