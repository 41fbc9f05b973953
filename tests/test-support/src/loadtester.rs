//! Flagger's load tester (`LOADTESTER_BIN`, built by `tests/support/build-loadtester.sh`) on a free 127.0.0.1 port,
//! as Flagger's users run it next to their apps: a webhook that runs `metadata.cmd` (e.g. `hey`) in the background,
//! and the `/gate/*` and `/rollback/*` endpoints. Killed when dropped; its log is kept for failure messages.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary the suites run.
pub fn bin() -> String {
    std::env::var("LOADTESTER_BIN").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/perf-operator/loadtester-v1.36.1/loadtester")
    })
}

/// A running load tester.
pub struct Loadtester {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    child: Child,
}

impl Loadtester {
    /// Starts it (commands it runs time out after `command_timeout`) and waits until `/healthz` answers.
    pub fn start(command_timeout: Duration) -> Self {
        let port = crate::free_port();
        let log = std::env::temp_dir().join(format!("perf-loadtester-{}-{port}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("load tester log");
        let child = Command::new(bin())
            .args([
                format!("-port={port}"),
                format!("-timeout={}s", command_timeout.as_secs()),
                "-log-level=info".into(),
            ])
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the load tester {} (tests/support/build-loadtester.sh): {e}", bin())
            });
        let tester = Self { url: format!("http://127.0.0.1:{port}"), log, child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the load tester did not listen; log:\n{}",
                tester.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        tester
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Loadtester {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
