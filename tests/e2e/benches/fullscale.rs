//! Many full-feature profiles against the real API server (issue "quiet at scale", benchmark 3): N profiles, each
//! with an external Redis, pools capped by the live PostgreSQL and an idle canary (its primary's pods made Ready by
//! the stand-in kubelet), for two sizes in one run (`PERF_FULL_SIZES`, default 500,2000). Per size, once all are
//! Ready and a minute has passed: API requests per profile per resync and reconciles in a window of one resync
//! (the audit log, by the operator's token), peak RSS and RSS per profile; then the large/small ratios (linear or
//! better: requests per profile per resync about 1.0, RSS at most the size ratio).
//!
//! `PERF_FULL_RESYNC_SECONDS` (300, the operator's default: 2,000 profiles at about 6 requests a round then stay
//! inside the default `--kube-api-qps` of 50; a shorter resync measures the rate limit, not the rounds). Run by
//! `tests/bench-scale.sh` (`PERF_BENCHES=fullscale`), which starts the control plane, a Redis and a PostgreSQL.

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::Api;
use perf_e2e::fixtures::{create_apps, create_full_feature, create_postgres_secret, wait_all_ready};
use perf_e2e::{Operator, audit, cluster, kubelet};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

struct Measure {
    n: usize,
    ready_after: Duration,
    peak_rss_kib: u64,
    rounds: f64,
    requests: usize,
    lease_requests: usize,
    by_kind: BTreeMap<String, usize>,
}

impl Measure {
    /// Requests per profile per resync in the window of one resync.
    fn per_profile_resync(&self) -> f64 {
        self.requests as f64 / self.n as f64
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = setting("PERF_FULL_SIZES", "500,2000")
        .split(',')
        .map(|s| s.trim().parse().expect("PERF_FULL_SIZES: comma-separated counts"))
        .collect();
    let resync: u64 = setting("PERF_FULL_RESYNC_SECONDS", "300").parse().expect("PERF_FULL_RESYNC_SECONDS: seconds");
    println!(
        "fullscale: profiles with an external Redis, PostgreSQL pools (live limits) and an idle canary; resync {resync} s"
    );
    let mut results = Vec::new();
    for n in sizes {
        let m = measure(n, resync).await;
        println!(
            "n={:>5}  Ready after {:>6.1} s  peak RSS {:>6.1} MiB ({:>5.1} KiB/profile)  rounds in a resync {:>6.0} ({:.2}/profile)  requests/profile/resync {:>5.2}",
            m.n,
            m.ready_after.as_secs_f64(),
            m.peak_rss_kib as f64 / 1024.0,
            m.peak_rss_kib as f64 / m.n as f64,
            m.rounds,
            m.rounds / m.n as f64,
            m.per_profile_resync()
        );
        let kinds: Vec<String> = m.by_kind.iter().map(|(k, v)| format!("{k} {:.2}", *v as f64 / m.n as f64)).collect();
        println!("        per profile per resync: {}", kinds.join(", "));
        println!("        and the process's own Lease and shard check: {} requests in the window", m.lease_requests);
        results.push(m);
    }
    if let [small, .., large] = results.as_slice() {
        let added = large.peak_rss_kib.saturating_sub(small.peak_rss_kib) as f64 / (large.n - small.n).max(1) as f64;
        println!(
            "ratios {}/{} (linear = {:.1}): peak RSS {:.2}, requests/profile/resync {:.2} (target 1.0 or less); \
             RSS per added profile {added:.1} KiB",
            large.n,
            small.n,
            large.n as f64 / small.n as f64,
            large.peak_rss_kib as f64 / small.peak_rss_kib as f64,
            large.per_profile_resync() / small.per_profile_resync()
        );
    }
}

async fn measure(n: usize, resync: u64) -> Measure {
    let c = cluster().await;
    create_postgres_secret(&c.api::<Secret>()).await;
    create_apps(&c.api(), n).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let op = Operator::start_with(&c.namespace, "fullscale", &["--resync-seconds", &resync.to_string()]);
    let started = Instant::now();
    create_full_feature(&c.profiles(), &c.namespace, n).await;
    let mut peak = wait_all_ready(&c.profiles(), n, &op, Duration::from_secs(3600)).await;
    let ready_after = started.elapsed();
    // A minute to settle (the events trailing Ready, the last pods readied), then the window.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let window = audit::Window::open().expect("the benchmark needs the audit log of tests/support/control-plane.sh");
    let before = op.reconciles().await;
    let end = Instant::now() + Duration::from_secs(resync);
    while Instant::now() < end {
        peak = peak.max(op.peak_rss_kib());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rounds = op.reconciles().await - before;
    // The Lease's renewals and the shard check are the process's, whatever the number of profiles.
    let (leases, requests): (Vec<audit::Event>, Vec<audit::Event>) = window
        .requests_by_credential(&op.credential_id)
        .into_iter()
        .partition(|e| e.object_ref.as_ref().is_some_and(|o| o.resource == "leases"));
    let mut by_kind = BTreeMap::new();
    for e in &requests {
        let o = e.object_ref.clone().unwrap_or_default();
        let sub = if o.subresource.is_empty() { String::new() } else { format!("/{}", o.subresource) };
        *by_kind.entry(format!("{} {}{sub}", e.verb, o.resource)).or_insert(0) += 1;
    }
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    drop(op);
    let _ = namespaces.delete(&c.namespace, &Default::default()).await;
    Measure {
        n,
        ready_after,
        peak_rss_kib: peak,
        rounds,
        requests: requests.len(),
        lease_requests: leases.len(),
        by_kind,
    }
}
