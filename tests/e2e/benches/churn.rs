//! Churn against the real API server (issue "quiet at scale", benchmark 1): P profiles on one external Redis with
//! a cache policy, a short resync, and two windows side by side in one run: the Redis idle, then the Redis under
//! traffic that began before the profiles existed. Per window: reconciles (the operator's counter), status writes
//! (the audit log), the operator's CPU seconds and the connections Redis accepted; then busy/idle ratios and each
//! window against the resync floor (P x window / resync). Prints; fails only when nothing converges.
//!
//! `PERF_CHURN_PROFILES` (200), `PERF_CHURN_WINDOW_SECONDS` (90), `PERF_CHURN_RESYNC_SECONDS` (20). Run by
//! `tests/bench-scale.sh` (it starts the control plane and a Redis like tests/run.sh).

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::PostParams;
use perf_e2e::fixtures::{create_apps, profile, wait_all_ready};
use perf_e2e::{Operator, audit, cluster, redis_traffic};
use serde_json::json;
use std::time::Duration;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One window's counts.
struct Window {
    reconciles: f64,
    status_writes: usize,
    cpu_seconds: f64,
    redis_connections: u64,
}

/// Connections Redis accepted so far (`INFO stats` total_connections_received).
async fn redis_connections() -> u64 {
    let client = redis::Client::open(redis_traffic::url()).expect("REDIS_URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("Redis reachable");
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await.expect("INFO stats");
    info.lines().find_map(|l| l.strip_prefix("total_connections_received:")?.trim().parse().ok()).unwrap_or(0)
}

async fn measure(op: &Operator, namespace: &str, span: Duration) -> Window {
    let audit = audit::Window::open().expect("the benchmark needs the audit log of tests/support/control-plane.sh");
    let (reconciles, cpu, connections) = (op.reconciles().await, op.cpu_seconds(), redis_connections().await);
    tokio::time::sleep(span).await;
    let writes = audit.writes(perf_e2e::OPERATOR_USER, namespace);
    let status_writes =
        writes.iter().filter(|e| e.object_ref.as_ref().is_some_and(|o| o.subresource == "status")).count();
    Window {
        reconciles: op.reconciles().await - reconciles,
        status_writes,
        cpu_seconds: op.cpu_seconds() - cpu,
        redis_connections: redis_connections().await - connections,
    }
}

#[tokio::main]
async fn main() {
    let n = setting("PERF_CHURN_PROFILES", 200) as usize;
    let span = Duration::from_secs(setting("PERF_CHURN_WINDOW_SECONDS", 90));
    let resync = setting("PERF_CHURN_RESYNC_SECONDS", 20);
    let c = cluster().await;
    create_apps(&c.api(), n).await;
    let op = Operator::start_with(&c.namespace, "churn", &["--resync-seconds", &resync.to_string()]);
    let profiles = c.profiles();
    stream::iter(0..n)
        .map(|i| {
            let profiles = &profiles;
            let cache = json!({"redis": {"external": {"address": redis_traffic::url()}},
                "ttlClasses": [{"name": "pages", "ttlSeconds": 60}], "policy": {"builtin": "adaptive-ttl"}});
            let p = profile(&c.namespace, &format!("app-{i}"), json!({"cache": cache}));
            async move { profiles.create(&PostParams::default(), &p).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create profiles");
    wait_all_ready(&profiles, n, &op, Duration::from_secs(900)).await;
    // One resync to settle, then the idle window; traffic from then on, one resync to settle, the busy window.
    tokio::time::sleep(Duration::from_secs(resync)).await;
    let idle = measure(&op, &c.namespace, span).await;
    let _traffic = redis_traffic::run("perf-churn", span * 3);
    tokio::time::sleep(Duration::from_secs(resync)).await;
    let busy = measure(&op, &c.namespace, span).await;

    let floor = n as f64 * span.as_secs_f64() / resync as f64;
    println!(
        "churn: {n} profiles on one Redis, resync {resync} s, windows of {} s; floor {floor:.0} reconciles",
        span.as_secs()
    );
    for (name, w) in [("idle", &idle), ("busy", &busy)] {
        println!(
            "{name:>5}: reconciles {:>7.0} ({:.2}x floor)  status writes {:>6}  operator CPU {:>6.1} s  Redis connections {:>6}",
            w.reconciles,
            w.reconciles / floor,
            w.status_writes,
            w.cpu_seconds,
            w.redis_connections
        );
    }
    let ratio = |b: f64, i: f64| if i > 0.0 { b / i } else { f64::NAN };
    println!(
        "busy/idle: reconciles {:.2}  status writes {:.2}  CPU {:.2}  Redis connections {:.2}  (target: 1.5 at most)",
        ratio(busy.reconciles, idle.reconciles),
        ratio(busy.status_writes as f64, idle.status_writes as f64),
        ratio(busy.cpu_seconds, idle.cpu_seconds),
        ratio(busy.redis_connections as f64, idle.redis_connections as f64)
    );
}
