//! One tenant's servers misbehave, another tenant's canary goes on: with one operator process watching both, a
//! profile whose Redis streams an endless `INFO` and whose ClickHouse and Prometheus stream endless answers is
//! reconciled at every resync, each read cut at its cap and named in its status, while a canary of the other
//! profile walks every stage and promotes as it does alone; the operator stays within the chart's memory limit.

#[path = "../../../operator/canary/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use perf_e2e::fixtures::{create_app, profile, set_image};
use perf_e2e::{Cluster, cluster, kubelet};
use perf_operator_api::status::{CanaryPhase, CanaryStatus};
use prometheus::{Behaviour, PrometheusFixture};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The chart's memory limit for the operator.
const CHART_MEMORY_LIMIT_KIB: u64 = 512 << 10;

/// A server on 127.0.0.1 answering every connection with `speak`; stops 10 minutes in (a bound on the test).
fn hostile(speak: fn(&mut TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let until = Instant::now() + Duration::from_secs(600);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            if Instant::now() > until {
                return;
            }
            std::thread::spawn(move || speak(&mut stream));
        }
    });
    port
}

/// Writes `chunk` until the peer hangs up.
fn endless(stream: &mut TcpStream, chunk: &[u8]) {
    while stream.write_all(chunk).is_ok() {}
}

/// RESP: `+OK` to each command until `INFO`, then a bulk string without end.
fn endless_info(stream: &mut TcpStream) {
    let mut buf = [0; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
        if text.contains("INFO") {
            let _ = stream.write_all(b"$1000000000000\r\n");
            return endless(stream, &[b'a'; 64 << 10]);
        }
        let commands = text.matches("\r\n*").count() + usize::from(text.starts_with('*'));
        for _ in 0..commands.max(1) {
            let _ = stream.write_all(b"+OK\r\n");
        }
    }
}

/// HTTP: `200` to any request, then a body without end (no length, no chunks: until the connection closes).
fn endless_answer(stream: &mut TcpStream) {
    let mut buf = [0; 8192];
    let _ = stream.read(&mut buf);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(b"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[");
    endless(stream, &[b' '; 64 << 10]);
}

async fn canary_status(c: &Cluster) -> Option<CanaryStatus> {
    c.profiles().get("shop").await.ok()?.status?.canary
}

/// Peak resident memory of process `pid`, in KiB (VmHWM).
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_canary_promotes_while_a_neighbours_servers_stream_without_end() {
    let c = cluster().await;
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, "shop", Behaviour::healthy()).await;
    let (redis, endless_http) = (hostile(endless_info), hostile(endless_answer));
    create_app(&c.api(), "shop", "registry.example/shop:1", 3).await;
    create_app(&c.api(), "noisy", "registry.example/noisy:1", 1).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let op = c.operator("replica-a");

    // The neighbour: every server it names streams without end; its rate-limit policy asks Prometheus 4 queries
    // for each of its routes at every evaluation.
    let routes: Vec<_> =
        (0..10).map(|i| json!({"route": format!("/r{i}"), "requestsPerSecond": 100, "burst": 200})).collect();
    let noisy = json!({
        "cache": {"redis": {"external": {"address": format!("redis://127.0.0.1:{redis}")}},
                  "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]},
        "clickhouse": {"endpoint": format!("http://127.0.0.1:{endless_http}"), "database": "app",
                       "tables": [{"name": "events", "codecs": [{"column": "ts", "codec": "ZSTD(3)"}]}]},
        "rateLimit": {"routes": routes, "prometheus": format!("http://127.0.0.1:{endless_http}"),
                      "policy": {"builtin": "adaptive-rate-limit"}},
    });
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "noisy", noisy)).await.expect("create");
    let canary = json!({"canary": {"stages": [10, 25, 50, 100], "stepInterval": "4s", "progressDeadline": "2m",
        "analysis": {"prometheus": prom.url, "minRequests": 10}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", canary)).await.expect("create");

    c.eventually(90, "the primary serving (canary phase Idle)", || async {
        canary_status(&c).await.filter(|s| s.phase == CanaryPhase::Idle)
    })
    .await;
    set_image(&c.api::<Deployment>(), "shop", "registry.example/shop:2").await;
    // The window the canary tests give a run alone.
    let done = c
        .eventually(150, "the run ended", || async {
            canary_status(&c).await.filter(|s| matches!(s.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack))
        })
        .await;
    assert_eq!(done.phase, CanaryPhase::Succeeded, "{done:?}");

    // The neighbour was reconciled all along, each read cut at its cap and named.
    let (status, reason) = c.condition("noisy", "CacheReady").await.expect("CacheReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "AnswerTooLarge"));
    let noisy = c.profiles().get("noisy").await.expect("noisy");
    let tables = noisy.status.and_then(|s| s.clickhouse).map(|ch| format!("{:?}", ch.tables)).unwrap_or_default();
    assert!(tables.contains("larger than 8388608 bytes"), "ClickHouse tables: {tables}");
    let peak = peak_kib(op.pid()).expect("the operator's /proc status");
    eprintln!("operator peak RSS with an endless neighbour: {} MiB", peak >> 10);
    assert!(peak < CHART_MEMORY_LIMIT_KIB, "the operator peaked at {} MiB, over the chart's limit", peak >> 10);
}
