//! `scrape_intervals` against a real Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN) started with a config
//! of our own, and against servers that are not one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perf_prometheus::{Prometheus, QueryError};

struct Server {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(config: &str) -> Server {
    let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(std::path::Path::new(&bin).exists(), "prometheus not found at {bin}: apt-get install prometheus");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("perf-prometheus-config-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    Server { child, dir, url: format!("http://127.0.0.1:{port}") }
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
