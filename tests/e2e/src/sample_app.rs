//! The sample app (examples/sample-app) as a local process standing for a pod, and `hey` as its traffic: for the
//! end-to-end tests that judge the operator on a real app rather than a simulated exporter.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process killed, and waited for, when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sample app on a free 127.0.0.1 port, reading the contract in `mount` (`PERF_CONFIG_DIR`), in `mode`
/// (`SAMPLE_MODE`), its log in `log`; backends simulated (the suite's ClickHouse and PostgreSQL are for other tests).
/// Returns at once: the caller waits for `/healthz`.
pub fn spawn(mount: &Path, mode: &str, log: &Path) -> (Running, u16) {
    let port = perf_test_support::free_port();
    let log = std::fs::File::create(log).expect("the app's log");
    let child = Command::new("python3")
        .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", &port.to_string(), "--no-access-log"])
        .current_dir(crate::repo_root().join("examples/sample-app"))
        .env("PERF_CONFIG_DIR", mount)
        .env_remove("CLICKHOUSE_URL")
        .env_remove("POSTGRES_DSN")
        .env("SAMPLE_MODE", mode)
        .env("SAMPLE_BACKEND_MS", "5")
        .env("SAMPLE_FAIL_PERCENT", "20")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("python3 -m uvicorn (tests/support/install.sh installs the client and the app's packages)");
    (Running(child), port)
}

/// `hey` sending `rate` requests/s (two connections) to `url` for `seconds`.
pub fn load(url: &str, rate: u32, seconds: u32) -> Running {
    let child = Command::new("hey")
        .args(["-z", &format!("{seconds}s"), "-c", "2", "-q", &(rate / 2).max(1).to_string(), url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hey (Debian's hey; tests/support/install.sh installs it)");
    Running(child)
}
