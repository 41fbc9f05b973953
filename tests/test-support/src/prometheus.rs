//! The real Prometheus (`PROMETHEUS_BIN`, else Debian's `/usr/bin/prometheus`) on a free 127.0.0.1 port, with its
//! own directory (config, data, log), stopped and removed when dropped. Callers write the configuration (and any
//! file it names, such as a web config for TLS and basic auth) into [`Setup::dir`] before [`Setup::start`], and wait
//! for readiness with their own client.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The binary the suites run.
pub fn bin() -> String {
    std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into())
}

/// A directory and a port for one Prometheus, before it starts.
pub struct Setup {
    pub dir: PathBuf,
    pub port: u16,
}

/// A running Prometheus.
pub struct Process {
    /// `http://127.0.0.1:<port>` (or `https://` when started with a web config serving TLS).
    pub url: String,
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Setup {
    /// A fresh directory named for `purpose` (with `data/`) and a free port.
    pub fn new(purpose: &str) -> Self {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("perf-{purpose}-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).expect("Prometheus directory");
        Self { dir, port }
    }

    /// Writes `config` as `prometheus.yml` and starts Prometheus on it with `extra` flags (e.g.
    /// `--web.config.file=...`); `scheme` is `http` or `https`. Its stderr goes to `prometheus.log` (see
    /// [`Process::log`]). Returns at once: the caller waits until it answers.
    pub fn start(self, config: &str, extra: &[String], scheme: &str) -> Process {
        let bin = bin();
        std::fs::write(self.dir.join("prometheus.yml"), config).expect("Prometheus config");
        let log = std::fs::File::create(self.dir.join("prometheus.log")).expect("Prometheus log");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", self.dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", self.dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (apt-get install prometheus, or set PROMETHEUS_BIN): {e}"));
        Process { url: format!("{scheme}://127.0.0.1:{}", self.port), port: self.port, dir: self.dir, child }
    }
}

impl Process {
    /// Kills Prometheus now (SIGKILL), as an OOM kill or a node loss would; its directory stays until the drop.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What Prometheus wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
