//! `scrape_intervals` against a real Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN) started with a config
//! of our own, and against servers that are not one.

use std::time::{Duration, Instant};

use perf_prometheus::{Prometheus, QueryError};
use perf_test_support::prometheus::{Process, Setup};

fn start(config: &str) -> Process {
    Setup::new("config").start(config, &[], "http")
}

async fn read(url: &str) -> Result<perf_prometheus::ScrapeIntervals, QueryError> {
    Prometheus::new(url, Duration::from_secs(5)).unwrap().scrape_intervals().await
}

#[tokio::test]
async fn reads_the_global_and_per_job_scrape_intervals() {
    let config = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: app\n    scrape_interval: 5s\n    \
                  static_configs:\n      - targets: ['127.0.0.1:9']\n  - job_name: slow\n    scrape_interval: 2m\n    \
                  static_configs:\n      - targets: ['127.0.0.1:9']\n  - job_name: plain\n    static_configs:\n      \
                  - targets: ['127.0.0.1:9']\n";
    let server = start(config);
    let started = Instant::now();
    let got = loop {
        match read(&server.url).await {
            Ok(got) => break got,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(60), "Prometheus never answered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got.global, Duration::from_secs(15));
    // Prometheus writes the global interval into every job that does not set its own.
    let job = |name: &str| got.jobs.iter().find(|(j, _)| j == name).map(|(_, d)| *d);
    assert_eq!(job("app"), Some(Duration::from_secs(5)));
    assert_eq!(job("slow"), Some(Duration::from_secs(120)));
    assert!(job("plain").is_none_or(|d| d == Duration::from_secs(15)), "{got:?}");
}

#[tokio::test]
async fn a_server_that_is_not_prometheus_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = read(&format!("http://127.0.0.1:{port}")).await.unwrap_err();
    assert!(matches!(err, QueryError::Refused { .. }), "{err}");
}
