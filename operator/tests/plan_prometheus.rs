//! `plan --prometheus URL` against a real Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN): a canary whose
//! `{{interval}}` is shorter than two scrape intervals is warned about, on stderr and in the plan; a long enough
//! one is not; an unreachable Prometheus is an error that names it.

use perf_test_support::prometheus::{Process, Setup};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Prometheus scraping every 15 s, and a job `slow` every 2 m; waits until it listens.
fn prometheus() -> Process {
    let config = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: slow\n    scrape_interval: 2m\n    \
                  static_configs:\n      - targets: ['127.0.0.1:9']\n";
    let server = Setup::new("plan").start(config, &[], "http");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "Prometheus did not listen within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn plan(step: &str, prometheus: &str) -> Output {
    let yaml = format!(
        "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata:\n  name: web\n  namespace: shop\n\
         spec:\n  targetRef:\n    name: web\n  canary:\n    stepInterval: {step}\n    progressDeadline: 30m\n    \
         analysis:\n      prometheus: http://prometheus.monitoring:9090\n"
    );
    let path = std::env::temp_dir().join(format!("plan-prometheus-{}-{step}.yaml", std::process::id()));
    std::fs::write(&path, yaml).unwrap();
    let args = ["plan", "-f", path.to_str().unwrap(), "-o", "json", "--prometheus", prometheus];
    Command::new(env!("CARGO_BIN_EXE_perf-operator")).args(args).output().unwrap()
}

/// Retries while Prometheus is still starting (its API answers 503 until ready).
fn plan_when_ready(step: &str, url: &str) -> Output {
    let started = Instant::now();
    loop {
        let out = plan(step, url);
        if out.status.success() || started.elapsed() > Duration::from_secs(60) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn warns_when_the_interval_is_shorter_than_two_scrapes() {
    let server = prometheus();
    let cases = [("20s", vec!["global scrape interval", "job \"slow\""]), ("5m", vec![]), ("1m", vec!["job \"slow\""])];
    for (step, expected) in cases {
        let out = plan_when_ready(step, &server.url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{step}: {stderr}");
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let warnings: Vec<String> = serde_json::from_value(plan["canary"]["warnings"].clone()).unwrap_or_default();
        assert_eq!(warnings.len(), expected.len(), "{step}: {warnings:?}");
        for (warning, start) in warnings.iter().zip(&expected) {
            assert!(warning.starts_with(start), "{step}: {warning}");
            assert!(stderr.contains(warning.as_str()), "{step}: not on stderr: {stderr}");
        }
    }
}

#[test]
fn an_unreachable_prometheus_is_an_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = plan("20s", &format!("http://127.0.0.1:{port}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--prometheus") && stderr.contains("connection refused"), "{stderr}");
}
