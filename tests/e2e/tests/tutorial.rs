//! The tutorial (docs/tutorial.md), run as written: every `sh` block, in order, with bash against the suite's API
//! server, as the admin user, with helm and the `kubectl-perf` plugin on PATH. The suite plays the cluster around
//! the commands: the kubelet (pods marked Ready), the chart's operator (a process watching `demo`, told where the
//! suite's Prometheus is, as the tutorial tells the chart), the app's pods (the sample app as processes, one per
//! serving side, in the mode their Deployment's template says, reading the contract the operator published, with
//! the cluster's Redis the suite's), the PodMonitor (a real Prometheus scraping them with namespace and pod labels)
//! and the traffic (`hey`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Client;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use perf_e2e::sample_app::{self, Running, load};
use perf_e2e::{Operator, env_path, eventually, kubelet, repo_root};
use perf_operator_api::PerformanceProfile;
use perf_operator_api::status::{CanaryPhase, CheckVerdict};
use perf_test_support::prometheus::{Process, Setup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const NS: &str = "demo";

/// The tutorial's `sh` blocks, in order.
fn blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// One serving side of the target, as the suite runs it: the app process and the load on it.
struct Side {
    template: String,
    pod: String,
    port: u16,
    _app: Running,
    _load: Running,
}

/// The app's pods as processes: each second, the primary and the canary that have replicas get a process in the
/// mode of their Deployment's template (a new template is a new pod), and Prometheus scrapes exactly those.
struct Pods {
    client: Client,
    dir: PathBuf,
    prometheus: Process,
    redis: String,
    sides: BTreeMap<&'static str, Side>,
    started: u32,
}

impl Pods {
    async fn sync(&mut self) {
        let contract = match self.contract().await {
            Some(c) => c,
            None => return,
        };
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
        let mut changed = false;
        for role in ["primary", "canary"] {
            let d = deployments.get_opt(&format!("shop-{role}")).await.ok().flatten();
            let replicas = d.as_ref().and_then(|d| d.spec.as_ref()?.replicas).unwrap_or(0);
            let template =
                d.as_ref().map(|d| serde_json::to_string(&d.spec.as_ref().map(|s| &s.template)).unwrap_or_default());
            let wanted = template.filter(|_| replicas > 0);
            let current = self.sides.get(role).map(|s| s.template.clone());
            if wanted == current {
                continue;
            }
            changed = true;
            self.sides.remove(role);
            if let (Some(template), Some(d)) = (wanted, d) {
                let mode = sample_mode(&d);
                self.started += 1;
                let pod = format!("shop-{role}-{}-{}", self.started, if mode == "ok" { "a" } else { "b" });
                let (app, port) = self.start_app(&contract, &mode, &pod);
                let load = load(&format!("http://127.0.0.1:{port}/api/v1/risk/p1"), 40, 600);
                self.sides.insert(role, Side { template, pod, port, _app: app, _load: load });
            }
        }
        if changed {
            self.scrape().await;
        }
    }

    /// The contract the operator published, its Redis address the suite's (the cluster's DNS, played here).
    async fn contract(&self) -> Option<String> {
        let cm = Api::<ConfigMap>::namespaced(self.client.clone(), NS).get_opt("shop-perf").await.ok()??;
        let mut doc: serde_json::Value = serde_json::from_str(cm.data?.get("perf.json")?).ok()?;
        if let Some(redis) = doc.pointer_mut("/cache/redis") {
            redis["address"] = serde_json::json!(self.redis);
            redis["passwordSecret"] = serde_json::Value::Null;
        }
        Some(doc.to_string())
    }

    fn start_app(&self, contract: &str, mode: &str, pod: &str) -> (Running, u16) {
        let mount = self.dir.join(pod);
        std::fs::create_dir_all(&mount).expect("contract directory");
        std::fs::write(mount.join("perf.json"), contract).expect("contract");
        sample_app::spawn(&mount, mode, &self.dir.join(format!("{pod}.log")))
    }

    /// Points Prometheus at the sides that run now, labelled as a PodMonitor labels them, and reloads it.
    async fn scrape(&self) {
        let mut config = String::from("global: {scrape_interval: 1s}\nscrape_configs:\n");
        for side in self.sides.values() {
            config.push_str(&format!(
                "  - job_name: {pod}\n    static_configs: [{{targets: ['127.0.0.1:{port}'], \
                 labels: {{namespace: {NS}, pod: {pod}}}}}]\n",
                pod = side.pod,
                port = side.port
            ));
        }
        std::fs::write(self.prometheus.dir.join("prometheus.yml"), config).expect("Prometheus config");
        let reload = format!("{}/-/reload", self.prometheus.url);
        let _ = reqwest::Client::new().post(reload).send().await;
    }
}

/// `SAMPLE_MODE` of the Deployment's template (`ok` when unset), as the app would read it.
fn sample_mode(d: &Deployment) -> String {
    let containers = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| s.containers.clone());
    let env = containers.into_iter().flatten().flat_map(|c| c.env.unwrap_or_default());
    env.filter(|e| e.name == "SAMPLE_MODE").find_map(|e| e.value).unwrap_or_else(|| "ok".into())
}

/// A directory on PATH with `kubectl-perf` (the operator's binary) and helm.
fn tools(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin directory");
    std::os::unix::fs::symlink(env_path("PERF_OPERATOR_BIN"), bin.join("kubectl-perf")).expect("kubectl-perf link");
    std::os::unix::fs::symlink(env_path("PERF_HELM_BIN"), bin.join("helm")).expect("helm link");
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// Runs one block as a user would paste it (bash, `-euo pipefail`, at most 12 minutes); panics with what it printed
/// when a command fails.
async fn run(block: &str, path: &str) -> String {
    let (block, path) = (block.to_string(), path.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["720", "bash", "-euo", "pipefail", "-c", &block])
            .current_dir(repo_root())
            .env("PATH", &path)
            .output()
            .map(|out| (block, out))
    })
    .await
    .expect("the block's thread")
    .expect("bash runs");
    let (block, out) = out;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the tutorial's block failed ({}):\n{block}\n--- output:\n{text}", out.status);
    text
}

/// Deletes `demo` left by an earlier run (whose operator is gone: its profiles' finalizers are dropped), and waits
/// until it is gone.
async fn no_demo_namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(NS).await.ok().flatten().is_none() {
        return;
    }
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
    let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), NS);
    eventually(180, "no namespace demo left from an earlier run", || async {
        for p in profiles.list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
            let unfinalized = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
            let _ = profiles.patch(&p.name_any(), &PatchParams::default(), &unfinalized).await;
        }
        namespaces.get_opt(NS).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// What the cluster has with the Prometheus Operator installed: the PodMonitor kind the sample's manifests use.
fn pod_monitor_crd() {
    let crd = env_path("PERF_PROMETHEUS_OPERATOR_CRDS").join("monitoring.coreos.com_podmonitors.yaml");
    let (ok, out, err) = perf_e2e::kubectl(&["apply", "--server-side", "-f", crd.to_str().expect("path")]);
    assert!(ok, "the PodMonitor CRD was refused: {out}{err}");
    let (ok, out, err) = perf_e2e::kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/podmonitors.monitoring.coreos.com",
    ]);
    assert!(ok, "the PodMonitor CRD is not served: {out}{err}");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_tutorial_runs_as_written() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.expect("KUBECONFIG set but no cluster reachable");
    let markdown = std::fs::read_to_string(repo_root().join("docs/tutorial.md")).expect("docs/tutorial.md");
    let blocks = blocks(&markdown);
    assert!(blocks.len() >= 7, "the tutorial has {} sh blocks: the parser or the tutorial broke", blocks.len());
    no_demo_namespace(&client).await;
    pod_monitor_crd();
    let dir = std::env::temp_dir().join(format!("perf-tutorial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work directory");
    let path = tools(&dir);

    // The cluster around the commands.
    let prometheus =
        Setup::new("tutorial").start("global: {scrape_interval: 1s}\n", &["--web.enable-lifecycle".into()], "http");
    let operator = Operator::start_with(NS, "tutorial", &["--default-prometheus", &prometheus.url]);
    let _kubelet = kubelet::run(Api::<Pod>::namespaced(client.clone(), NS));
    let redis = std::env::var("REDIS_URL").unwrap_or_default().trim_start_matches("redis://").to_string();
    let pods = Arc::new(Mutex::new(Pods {
        client: client.clone(),
        dir: dir.clone(),
        prometheus,
        redis,
        sides: BTreeMap::new(),
        started: 0,
    }));
    let syncing = {
        let pods = pods.clone();
        tokio::spawn(async move {
            loop {
                pods.lock().await.sync().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), NS);
    let mut rolled_back = None;
    for block in &blocks {
        if block.contains("kubectl delete namespace") {
            // Before the clean-up: what the last run left.
            rolled_back = profiles.get("shop").await.ok().and_then(|p| p.status?.canary);
        }
        let output = run(block, &path).await;
        eprintln!("--- ran:\n{block}--- output:\n{output}");
    }
    // The clean-up needs the operator: the profile's finalizer gives the target its pods back.
    eventually(180, "the namespace demo deleted", || async {
        Api::<Namespace>::all(client.clone()).get_opt(NS).await.ok()?.is_none().then_some(())
    })
    .await;
    syncing.abort();
    drop(operator);

    let canary = rolled_back.expect("the profile's canary status before the clean-up");
    assert_eq!(canary.phase, CanaryPhase::RolledBack, "{canary:?}");
    let last = canary.analyses.first().expect("the failed analysis is recorded");
    let error_rate = last.checks.iter().find(|c| c.name == "error-rate").expect("an error-rate check");
    assert_eq!(error_rate.verdict, CheckVerdict::Fail, "the failing version failed on its errors: {error_rate:?}");
    assert!(
        canary.stable_id.is_some() && canary.stable_id != canary.run_id,
        "the promoted version stays the stable one"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
