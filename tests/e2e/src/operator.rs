//! `perf-operator run` as its own process, with the chart's ServiceAccount identity, watching one test namespace,
//! electing its leader on a Lease of its own in the release namespace (where the chart's Role allows leases).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running operator process; killed (SIGKILL) on drop. Its log is printed when the test fails.
pub struct Operator {
    child: Child,
    pub holder: String,
    /// The id of this process's own ServiceAccount token (its `jti`), which the audit log records per request.
    pub credential_id: String,
    pub admin_port: u16,
    log: PathBuf,
}

/// The Lease the operators of `namespace` share.
pub fn lease_name(namespace: &str) -> String {
    format!("{namespace}-leader")
}

/// The namespace the chart is installed in (the ServiceAccount's and the Leases').
pub const RELEASE_NAMESPACE: &str = "perf-operator";

impl Operator {
    /// Starts a replica named `holder` for `namespace` with a 6 s lease.
    pub fn start(namespace: &str, holder: &str) -> Self {
        Self::start_with(namespace, holder, &[])
    }

    /// Starts a replica with extra `run` arguments.
    pub fn start_with(namespace: &str, holder: &str, extra: &[&str]) -> Self {
        Self::start_via(namespace, holder, extra, None)
    }

    /// Starts a replica that reaches the API server at `server` (a [`crate::proxy::Proxy`]) when given.
    pub fn start_via(namespace: &str, holder: &str, extra: &[&str], server: Option<&str>) -> Self {
        Self::start_as(RELEASE_NAMESPACE, namespace, holder, extra, server)
    }

    /// Starts a replica with the identity of the chart installed as `release` (in the namespace of that name,
    /// where it also elects its leader).
    pub fn start_as(release: &str, namespace: &str, holder: &str, extra: &[&str], server: Option<&str>) -> Self {
        Self::start_env(release, namespace, holder, extra, server, &[])
    }

    /// [`Self::start_as`] with extra environment variables (settings the operator reads only from its environment,
    /// such as `PERF_POLICY_CA_FILE`).
    pub fn start_env(
        release: &str,
        namespace: &str,
        holder: &str,
        extra: &[&str],
        server: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let bin = crate::env_path("PERF_OPERATOR_BIN");
        let (kubeconfig, credential_id) = own_token(release, namespace, holder);
        if let Some(server) = server {
            let path = kubeconfig.to_str().expect("utf-8 path");
            let (ok, cluster, err) =
                crate::kubectl(&["--kubeconfig", path, "config", "view", "-o", "jsonpath={.clusters[0].name}"]);
            assert!(ok, "kubectl config view: {err}");
            let set = ["--kubeconfig", path, "config", "set-cluster", cluster.trim(), "--server", server];
            let (ok, _, err) = crate::kubectl(&set);
            assert!(ok, "kubectl config set-cluster: {err}");
        }
        let admin_port = free_port();
        let log = std::env::temp_dir().join(format!("perf-e2e-{namespace}-{holder}.log"));
        let file = std::fs::File::create(&log).expect("operator log file");
        let child = Command::new(bin)
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,perf_operator=debug")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // Every test server listens on loopback, which profiles may not reach by default.
            .env("PERF_EGRESS_ALLOW_RESERVED", "127.0.0.0/8,::1")
            // `--watch-namespace ""` in `extra` watches every namespace (a cluster-wide install).
            .args(if extra.contains(&"--watch-namespace") {
                vec!["run"]
            } else {
                vec!["run", "--watch-namespace", namespace]
            })
            .args(["--lease-namespace", release])
            // A shard elects its leader on a Lease of its own (passed in `extra`).
            .args(if extra.contains(&"--lease-name") {
                vec![]
            } else {
                vec!["--lease-name".into(), lease_name(namespace)]
            })
            .args(["--holder", holder, "--lease-ttl-seconds", "6"])
            .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
            // A settled profile resyncs every 5 s here (300 s by default), so tests see resyncs quickly.
            .args(if extra.contains(&"--resync-seconds") { &[][..] } else { &["--resync-seconds", "5"][..] })
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start perf-operator");
        Self { child, holder: holder.into(), credential_id, admin_port, log }
    }

    /// The operator process's id (for its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP status of an admin endpoint (`/readyz`, `/healthz`, `/metrics`), or None when not answering.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        let response = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// The value of one sample of `/metrics`, e.g. `perf_operator_reconciles_total{component="profile"}`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await?;
        text.lines().find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
    }

    /// Profile reconciles so far (0 before the first).
    pub async fn reconciles(&self) -> f64 {
        self.metric("perf_operator_reconciles_total{component=\"profile\"}").await.unwrap_or(0.0)
    }

    /// The process's peak resident memory (VmHWM) in KiB, 0 when it cannot be read.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU seconds the process has used (user and system), 0 when it cannot be read.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command name in parentheses: fields 14 and 15 of the line (utime, stime), in clock ticks.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // The kernel's USER_HZ is 100 on every Linux this suite runs on.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`: no clean-up, no lease release.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `secs` for a clean exit; returns whether it exited.
    pub fn terminate(&mut self, secs: u64) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..secs * 10 {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of operator {} ({}):", self.holder, self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A kubeconfig for the chart's ServiceAccount with a token of this process's own (TokenRequest API), so the
/// audit log tells the replicas apart; returns its path and the token's id.
fn own_token(release: &str, namespace: &str, holder: &str) -> (PathBuf, String) {
    let base = crate::env_path("PERF_OPERATOR_KUBECONFIG");
    let (ok, token, err) = crate::kubectl(&["create", "token", release, "-n", release, "--duration", "2h"]);
    assert!(ok, "kubectl create token failed: {err}");
    let token = token.trim().to_string();
    let path = std::env::temp_dir().join(format!("perf-e2e-{namespace}-{holder}.kubeconfig"));
    std::fs::copy(&base, &path).expect("copy the operator kubeconfig");
    let path_arg = path.to_str().expect("utf-8 path");
    let (ok, _, err) =
        crate::kubectl(&["--kubeconfig", path_arg, "config", "set-credentials", "perf-operator", "--token", &token]);
    assert!(ok, "kubectl config set-credentials failed: {err}");
    (path, token_id(&token))
}

/// The `jti` claim of a JWT, read without checking the signature (the API server checked it).
fn token_id(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).expect("base64");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("JWT claims");
    claims["jti"].as_str().expect("a TokenRequest token has a jti").to_string()
}

pub use perf_test_support::free_port;
