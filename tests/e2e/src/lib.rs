//! Helpers of the end-to-end suite against a real API server (the control plane `tests/run.sh` starts, or the
//! cluster of a user's KUBECONFIG): a random labelled namespace per test, the operator running as its own process
//! with the chart's ServiceAccount identity, the API server's audit log, and a stand-in for the kubelet.
//!
//! Set up by `tests/e2e/setup.sh` (run by `tests/run.sh`), which exports:
//! - `KUBECONFIG`: an admin identity, for the test's own reads and writes;
//! - `PERF_OPERATOR_KUBECONFIG`: the chart's ServiceAccount (a TokenRequest token), for the operator processes;
//! - `PERF_OPERATOR_BIN`: the `perf-operator` binary;
//! - `PERF_AUDIT_LOG` (optional): the API server's audit log, the ground truth of writes.
//!
//! Tests that need Prometheus start their own ([`prometheus::Prometheus`], `PROMETHEUS_BIN`).

pub mod audit;
pub mod fixtures;
pub mod kubelet;
pub mod operator;
pub mod own_redis;
pub mod prometheus;
pub mod proxy;
pub mod redis_traffic;
pub mod sample_app;

pub use operator::Operator;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use perf_operator_api::PerformanceProfile;
use std::path::PathBuf;
use std::time::Duration;

/// The user the chart's ServiceAccount authenticates as.
pub const OPERATOR_USER: &str = "system:serviceaccount:perf-operator:perf-operator";

/// A test namespace; the operator processes a test starts watch only it. Deleted on drop.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

/// A required environment variable, or a panic that says how to get it.
pub fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{name} is not set: run the suite through tests/run.sh (it starts the control plane)"),
    }
}

/// A fresh namespace in the cluster of KUBECONFIG (the admin identity).
pub async fn cluster() -> Cluster {
    env_path("KUBECONFIG");
    // As the operator's binary does (perf_operator::tls): kube needs one process-wide rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.expect("KUBECONFIG set but no cluster reachable");
    let namespace = format!("perf-e2e-{}", random_hex(4));
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {"perf-operator-e2e": "true"}}
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    Cluster { client, namespace }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("randomness");
    hex::encode(bytes)
}

impl Cluster {
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn profiles(&self) -> Api<PerformanceProfile> {
        self.api()
    }

    /// Starts an operator process that watches this namespace only.
    pub fn operator(&self, holder: &str) -> Operator {
        Operator::start(&self.namespace, holder)
    }

    /// Polls `check` every half second until it returns Some, or panics after `secs` with `what`.
    pub async fn eventually<T, F, Fut>(&self, secs: u64, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        eventually(secs, what, check).await
    }

    /// The profile's condition `type_` as (status, reason), if set.
    pub async fn condition(&self, profile: &str, type_: &str) -> Option<(String, String)> {
        let p = self.profiles().get(profile).await.ok()?;
        let c = p.status?.conditions.into_iter().find(|c| c.type_ == type_)?;
        Some((c.status, c.reason))
    }

    /// Waits until condition `type_` of the profile has `status`.
    pub async fn wait_condition(&self, profile: &str, type_: &str, status: &str, secs: u64) {
        let what = format!("{type_}={status} on {profile}");
        self.eventually(secs, &what, || async {
            self.condition(profile, type_).await.filter(|(s, _)| s == status).map(|_| ())
        })
        .await
    }
}

/// Polls `check` every half second until it returns Some, or panics after `secs` with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let namespace = self.namespace.clone();
        // On a thread and runtime of its own with a client of its own: the test's runtime is being torn down, and
        // the test's client runs its connection on that runtime, so waiting on it here would deadlock. Labelled
        // perf-operator-e2e=true for manual clean-up if this fails.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    if let Ok(client) = Client::try_default().await {
                        let _ = Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await;
                    }
                });
            }
        })
        .join();
    }
}

/// Runs `kubectl` with the admin KUBECONFIG; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("kubectl").args(args).output().expect("kubectl is installed");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
