//! Failover with many profiles (issue "quiet at scale", benchmark 4): two replicas on one Lease (TTL 6 s, renew
//! deadline 4 s), N full-feature profiles Ready under the first, then the leader killed (SIGKILL). From the audit
//! log: time from the kill to the standby's first write, the standby's API requests in its first minute as leader
//! (and the profiles' own share of them), its peak RSS, and seconds in which both replicas wrote (must be none).
//! The standby's caches are warm before it leads (`perf_operator_caches_ready`), so its first rounds read no lists.
//!
//! `PERF_FAILOVER_PROFILES` (2000), `PERF_FAILOVER_RESYNC_SECONDS` (300). Run by `tests/bench-scale.sh`
//! (`PERF_BENCHES=failover`).

use k8s_openapi::api::core::v1::{Pod, Secret};
use perf_e2e::fixtures::{create_apps, create_full_feature, create_postgres_secret, wait_all_ready};
use perf_e2e::{Operator, audit, cluster, kubelet};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let n = setting("PERF_FAILOVER_PROFILES", 2000) as usize;
    let resync = setting("PERF_FAILOVER_RESYNC_SECONDS", 300).to_string();
    let c = cluster().await;
    create_postgres_secret(&c.api::<Secret>()).await;
    create_apps(&c.api(), n).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let mut a = Operator::start_with(&c.namespace, "replica-a", &["--resync-seconds", &resync]);
    c.eventually(30, "replica-a leading", || async {
        (a.metric("perf_operator_leader").await == Some(1.0)).then_some(())
    })
    .await;
    let b = Operator::start_with(&c.namespace, "replica-b", &["--resync-seconds", &resync]);
    create_full_feature(&c.profiles(), &c.namespace, n).await;
    wait_all_ready(&c.profiles(), n, &a, Duration::from_secs(3600)).await;
    let warm = b.metric("perf_operator_caches_ready").await;
    let standby_rss = b.peak_rss_kib();

    let window = audit::Window::open().expect("the benchmark needs the audit log of tests/support/control-plane.sh");
    let killed = jiff::Timestamp::now();
    a.kill();
    let first_write = c
        .eventually(120, "the standby's first write", || async {
            window.writes_by_credential(&b.credential_id).iter().filter_map(audit::Event::at).min()
        })
        .await;
    // Its first minute as leader, counted from its first write.
    let mut peak = b.peak_rss_kib();
    let minute_end = first_write + jiff::SignedDuration::from_secs(60);
    while jiff::Timestamp::now() < minute_end {
        peak = peak.max(b.peak_rss_kib());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = window.events();
    let by = |id: &str| {
        let events = events.iter().filter(move |e| e.user.credential_id() == Some(id) && e.verb != "watch");
        events.filter(|e| e.at().is_some_and(|t| t >= killed && t < minute_end)).collect::<Vec<_>>()
    };
    let first_minute = by(&b.credential_id);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in &first_minute {
        let o = e.object_ref.clone().unwrap_or_default();
        *kinds.entry(format!("{} {}", e.verb, o.resource)).or_insert(0) += 1;
    }
    // Seconds in which each replica wrote, from the whole window (the killed one wrote nothing after its death).
    let seconds = |id: &str| -> BTreeSet<i64> {
        let writes = events.iter().filter(|e| e.user.credential_id() == Some(id) && e.is_write());
        writes.filter_map(audit::Event::at).map(|t| t.as_second()).collect()
    };
    let both = seconds(&a.credential_id).intersection(&seconds(&b.credential_id)).count();

    let to_first = first_write.duration_since(killed).as_secs_f64();
    println!("failover: {n} profiles, lease TTL 6 s (renew deadline 4 s), leader killed with SIGKILL");
    println!(
        "standby before: caches ready {}, peak RSS {:.1} MiB",
        warm.map_or("unknown".to_string(), |w| w.to_string()),
        standby_rss as f64 / 1024.0
    );
    println!(
        "new leader: first write {to_first:.1} s after the kill ({:.1} s after the lease could expire); \
         {} API requests in its first minute ({:.2} per profile); peak RSS {:.1} MiB",
        to_first - 6.0,
        first_minute.len(),
        first_minute.len() as f64 / n as f64,
        peak as f64 / 1024.0
    );
    let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  by kind: {}", kinds.join(", "));
    println!("seconds with writes by both replicas: {both} (must be 0)");
    assert_eq!(both, 0, "two replicas wrote in the same second");
}
