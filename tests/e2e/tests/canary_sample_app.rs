//! Canary runs judged on the real sample app (examples/sample-app, perf-operator-client's metrics) instead of a
//! simulated exporter: the primary's and the canary's pods are app processes on 127.0.0.1, each reading the contract
//! the operator published in the cluster, scraped by a real Prometheus that labels them as a PodMonitor would, and
//! loaded by `hey`. A good version is promoted; a version deployed with `SAMPLE_MODE=failing` is rolled back on its
//! error rate.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::PostParams;
use perf_e2e::fixtures::{create_app, profile, set_image};
use perf_e2e::sample_app::{self, Running, load};
use perf_e2e::{Cluster, cluster, kubelet};
use perf_operator_api::status::{CanaryPhase, CanaryStatus, CheckVerdict};
use perf_test_support::prometheus::{Process, Setup};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const TARGET: &str = "shop";

/// The sample app on a free port reading `contract` (the operator's perf.json), in `mode`, once it answers.
async fn sample_app(dir: &Path, contract: &str, mode: &str) -> (Running, u16) {
    let mount = dir.join(format!("perf-{mode}"));
    std::fs::create_dir_all(&mount).expect("contract directory");
    std::fs::write(mount.join("perf.json"), contract).expect("contract");
    let log = dir.join(format!("app-{mode}.log"));
    let (child, port) = sample_app::spawn(&mount, mode, &log);
    let health = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..80 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "the sample app ({mode}) did not answer /healthz in 20 s:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Prometheus scraping each `(pod, port)` every second, labelled as the Prometheus Operator labels a pod.
async fn prometheus(namespace: &str, pods: &[(&str, u16)]) -> Process {
    let setup = Setup::new("sample-app");
    let mut config = String::from("global: {scrape_interval: 1s}\nscrape_configs:\n");
    for (pod, port) in pods {
        config.push_str(&format!(
            "  - job_name: {pod}\n    static_configs: [{{targets: ['127.0.0.1:{port}'], \
             labels: {{namespace: {namespace}, pod: {pod}}}}}]\n"
        ));
    }
    let process = setup.start(&config, &[], "http");
    let ready = format!("{}/-/ready", process.url);
    for _ in 0..120 {
        if reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("Prometheus not ready:\n{}", process.log());
}

async fn canary_status(c: &Cluster) -> Option<CanaryStatus> {
    c.profiles().get(TARGET).await.ok()?.status?.canary
}

/// Runs a new template whose canary pod is the sample app in `mode`; returns the run's last status.
async fn run_with(mode: &str, until: CanaryPhase) -> CanaryStatus {
    let c = cluster().await;
    let dir = std::env::temp_dir().join(format!("perf-sample-canary-{}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work directory");
    create_app(&c.api(), TARGET, "registry.example/shop:1", 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");

    // The apps read the contract the operator publishes, and Prometheus scrapes the apps once they run: the canary
    // section, which names that Prometheus, is added last.
    let routes =
        json!({"rateLimit": {"routes": [{"route": "/api/v1/risk", "requestsPerSecond": 1000, "burst": 1000}]}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, routes)).await.expect("create");
    let contract = c
        .eventually(60, "the contract published", || async {
            let cm = c.api::<ConfigMap>().get_opt(&format!("{TARGET}-perf")).await.ok()??;
            cm.data?.get("perf.json").cloned()
        })
        .await;
    let (_primary, primary_port) = sample_app(&dir, &contract, "ok").await;
    let (_canary, canary_port) = sample_app(&dir, &contract, mode).await;
    let pods =
        [(format!("{TARGET}-primary-7c9d8-a1"), primary_port), (format!("{TARGET}-canary-5f6b7-b2"), canary_port)];
    let prom = prometheus(&c.namespace, &pods.iter().map(|(p, port)| (p.as_str(), *port)).collect::<Vec<_>>()).await;
    let _loads: Vec<Running> =
        pods.iter().map(|(_, port)| load(&format!("http://127.0.0.1:{port}/api/v1/risk/p1"), 40, 150)).collect();

    let canary = json!({"canary": {"stages": [50, 100], "stepInterval": "4s", "progressDeadline": "2m",
        "routing": {"canaryPort": 8080}, "analysis": {"prometheus": prom.url, "minRequests": 20}}});
    let patch = kube::api::Patch::Merge(json!({"spec": canary}));
    c.profiles().patch(TARGET, &kube::api::PatchParams::default(), &patch).await.expect("add the canary");
    c.eventually(90, "the primary serving", || async {
        (canary_status(&c).await?.phase == CanaryPhase::Idle).then_some(())
    })
    .await;
    set_image(&c.api::<Deployment>(), TARGET, "registry.example/shop:2").await;
    let last = c
        .eventually(120, &format!("the run {until:?}"), || async {
            let s = canary_status(&c).await?;
            assert!(
                !matches!(s.phase, CanaryPhase::RolledBack | CanaryPhase::Failed | CanaryPhase::Succeeded)
                    || s.phase == until,
                "the run ended {:?}, not {until:?}: {:?}\nPrometheus's last log lines: {:?}",
                s.phase,
                s.message,
                prom.log().lines().rev().take(5).collect::<Vec<_>>()
            );
            (s.phase == until).then_some(s)
        })
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    last
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_sample_app_as_a_good_canary_is_promoted_on_its_own_metrics() {
    let done = run_with("ok", CanaryPhase::Succeeded).await;
    let analyses: Vec<_> = done.analyses.iter().map(|a| a.verdict).collect();
    assert!(analyses.iter().all(|v| *v == CheckVerdict::Pass) && analyses.len() >= 2, "{:?}", done.analyses);
    let last = &done.analyses[0];
    let requests = last.checks.iter().find(|c| c.name == "requests").and_then(|c| c.value).unwrap_or(0.0);
    assert!(requests >= 20.0, "the app's own request counter fed the gate: {last:?}");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_sample_app_deployed_failing_is_rolled_back_on_its_error_rate() {
    let done = run_with("failing", CanaryPhase::RolledBack).await;
    let last = done.analyses.first().expect("an analysis");
    let error_rate = last.checks.iter().find(|c| c.name == "error-rate").expect("the error-rate check");
    assert_eq!(error_rate.verdict, CheckVerdict::Fail, "{error_rate:?}");
    assert!(error_rate.value.is_some_and(|v| (10.0..=30.0).contains(&v)), "every fifth request fails: {error_rate:?}");
    let latency = last.checks.iter().find(|c| c.name == "p99-latency").expect("the latency check");
    assert_eq!(latency.verdict, CheckVerdict::Pass, "only the error rate fails: {latency:?}");
}
