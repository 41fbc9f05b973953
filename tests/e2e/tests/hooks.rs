//! Canary webhooks with Flagger's contract, on the real API server, against Flagger's own load tester (built from
//! the Go module proxy), Debian's `hey` and PyPI's locust, with a real Prometheus scraping a simulated app that
//! serves real requests: a quiet canary holds on `minRequests` until a rollout hook runs `hey` through the load
//! tester, then promotes (and promotes with `locust --headless` too); a confirm-promotion gate at the load tester's `/gate/check` holds the last stage (checks running, no
//! deadline) until `/gate/open`, with the payloads recorded against Flagger's documented shape; a hook to a closed
//! port rolls the run back at `failureLimit`. All load is bounded in time and aimed at 127.0.0.1.

#[path = "../../../operator/canary/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile, replicas_and_image, set_image};
use perf_e2e::{Cluster, cluster, env_path, kubelet, repo_root};
use perf_operator_api::HookType;
use perf_operator_api::status::{CanaryPhase, CanaryStatus, CheckVerdict};
use perf_test_support::loadtester::Loadtester;
use perf_test_support::webhook;
use prometheus::{Behaviour, PrometheusFixture};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TARGET: &str = "shop";
const OLD: &str = "registry.example/shop:1";
const NEW: &str = "registry.example/shop:2";

fn canary(prometheus: &str, webhooks: Value) -> Value {
    json!({"canary": {"stages": [50, 100], "stepInterval": "4s", "progressDeadline": "1m",
        "analysis": {"prometheus": prometheus, "minRequests": 10, "webhooks": webhooks}}})
}

async fn canary_status(c: &Cluster) -> Option<CanaryStatus> {
    c.profiles().get(TARGET).await.ok()?.status?.canary
}

/// What every run here needs, at Idle.
struct Run {
    prom: PrometheusFixture,
    _kubelet: kubelet::Kubelet,
    _op: perf_e2e::Operator,
}

async fn start(c: &Cluster, canary_pod: Behaviour, webhooks: Value) -> Run {
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, TARGET, canary_pod).await;
    create_app(&c.api(), TARGET, OLD, 2).await;
    let kubelet = kubelet::run(c.api::<Pod>());
    let op = c.operator("replica-a");
    let spec = canary(&prom.url, webhooks);
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, spec)).await.expect("create");
    c.eventually(90, "the primary serving (canary phase Idle)", || async {
        canary_status(c).await.filter(|s| s.phase == CanaryPhase::Idle)
    })
    .await;
    Run { prom, _kubelet: kubelet, _op: op }
}

async fn primary_image(c: &Cluster) -> String {
    replicas_and_image(&c.api(), &format!("{TARGET}-primary")).await.expect("the primary exists").1
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_quiet_canary_holds_on_min_requests_until_a_rollout_hook_runs_hey_through_the_load_tester() {
    let c = cluster().await;
    let tester = Loadtester::start(Duration::from_secs(30));
    // The canary's pod serves only the requests it is sent: without load it sees none.
    let Run { prom, _kubelet, _op } = start(&c, Behaviour::thin(0), json!([])).await;
    set_image(&c.api::<Deployment>(), TARGET, NEW).await;

    let held = c
        .eventually(60, "two analyses holding on too few requests", || async {
            let s = canary_status(&c).await?;
            (s.analyses.len() >= 2).then_some(s)
        })
        .await;
    assert_eq!((held.phase, held.stage_index), (CanaryPhase::Progressing, Some(0)), "{held:?}");
    for analysis in &held.analyses {
        assert_eq!(analysis.verdict, CheckVerdict::NoData, "{analysis:?}");
        let requests = analysis.checks.iter().find(|c| c.name == "requests").expect("a requests check");
        assert!(requests.reason.as_deref().unwrap_or_default().contains("too few requests"), "{requests:?}");
    }

    // The load tester's `cmd` task, as Flagger's docs write it: hey in the background, at most 20 requests a second
    // for 10 s, aimed at the canary's pod alone; called again at each analysis (a running one is not doubled).
    let load = format!("hey -z 10s -q 10 -c 2 {}{}", prom.app_url, PrometheusFixture::canary_path(TARGET));
    let hooks = json!([{"name": "load", "type": "rollout", "url": format!("{}/", tester.url), "timeout": "2s",
        "metadata": {"type": "cmd", "cmd": load}}]);
    let patch = json!({"spec": {"canary": {"analysis": {"webhooks": hooks}}}});
    c.profiles().patch(TARGET, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("add the hook");

    let done = c
        .eventually(120, "the run promoted with load from the hook", || async {
            let s = canary_status(&c).await?;
            matches!(s.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack | CanaryPhase::Failed).then_some(s)
        })
        .await;
    assert_eq!(done.phase, CanaryPhase::Succeeded, "{done:?}\nload tester:\n{}", tester.log());
    assert_eq!(primary_image(&c).await, NEW);
    let hook = done.hooks.iter().find(|h| h.name == "load").expect("the hook's result in status");
    assert!(hook.succeeded && hook.status_code == Some(202), "the load tester accepts a task with 202: {hook:?}");
    let passed = done.analyses.iter().find(|a| a.verdict == CheckVerdict::Pass).expect("a passed analysis");
    let check = passed.checks.iter().find(|c| c.name == "webhook/load").expect("the hook is a check");
    assert_eq!(check.verdict, CheckVerdict::Pass);
    let requests = passed.checks.iter().find(|c| c.name == "requests").and_then(|c| c.value).unwrap_or(0.0);
    assert!(requests >= 10.0, "the load reached the canary: {passed:?}");
    assert!(tester.log().contains("hey -z 10s"), "the load tester ran hey:\n{}", tester.log());
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_rollout_hook_running_locust_headless_brings_a_quiet_canary_to_promotion() {
    let c = cluster().await;
    let tester = Loadtester::start(Duration::from_secs(30));
    let Run { prom, _kubelet, _op } = start(&c, Behaviour::thin(0), json!([])).await;
    // Locust as its users run it from the load tester: headless, 4 users at 5 requests a second each, 15 s.
    let locustfile = repo_root().join("tests/e2e/locustfile.py");
    let load = format!(
        "CANARY_PATH={} python3 -m locust --headless --only-summary -f {} -u 4 -r 4 -t 15s --host {}",
        PrometheusFixture::canary_path(TARGET),
        locustfile.display(),
        prom.app_url
    );
    let hooks = json!([{"name": "locust", "type": "rollout", "url": format!("{}/", tester.url), "timeout": "2s",
        "metadata": {"type": "cmd", "cmd": load}}]);
    let patch = json!({"spec": {"canary": {"analysis": {"webhooks": hooks}}}});
    c.profiles().patch(TARGET, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("add the hook");
    set_image(&c.api::<Deployment>(), TARGET, NEW).await;
    let done = c
        .eventually(120, "the run ended", || async {
            let s = canary_status(&c).await?;
            matches!(s.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack | CanaryPhase::Failed).then_some(s)
        })
        .await;
    assert_eq!(done.phase, CanaryPhase::Succeeded, "{done:?}\nload tester:\n{}", tester.log());
    let passed = done.analyses.iter().find(|a| a.verdict == CheckVerdict::Pass).expect("a passed analysis");
    let requests = passed.checks.iter().find(|c| c.name == "requests").and_then(|c| c.value).unwrap_or(0.0);
    assert!(requests >= 10.0, "locust's load reached the canary: {passed:?}");
    assert!(tester.log().contains("locust"), "the load tester ran locust:\n{}", tester.log());
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_confirm_promotion_gate_holds_the_run_until_the_load_tester_opens_it() {
    let c = cluster().await;
    let tester = Loadtester::start(Duration::from_secs(30));
    let recorder = webhook::receiver(200).await;
    let events = webhook::receiver(202).await;
    let hooks = json!([
        {"name": "smoke", "type": "pre-rollout", "url": recorder.url},
        {"name": "approve", "type": "confirm-promotion", "url": format!("{}/gate/check", tester.url)},
        {"name": "done", "type": "post-rollout", "url": recorder.url, "metadata": {"team": "{{namespace}}"}},
        {"name": "audit", "type": "event", "url": events.url},
    ]);
    let Run { prom: _prom, _kubelet, _op } = start(&c, Behaviour::healthy(), hooks).await;
    set_image(&c.api::<Deployment>(), TARGET, NEW).await;

    let gated = c
        .eventually(60, "the last stage held by its confirm-promotion gate", || async {
            let s = canary_status(&c).await?;
            (s.gate == Some(HookType::ConfirmPromotion)).then_some(s)
        })
        .await;
    assert_eq!((gated.phase, gated.stage_index), (CanaryPhase::Progressing, Some(1)), "{gated:?}");
    // Held past several steps with its checks running, and past no deadline of its own.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let still = canary_status(&c).await.expect("status");
    assert_eq!((still.phase, still.gate), (CanaryPhase::Progressing, Some(HookType::ConfirmPromotion)), "{still:?}");
    assert!(still.analyses.first().map(|a| &a.at) > gated.analyses.first().map(|a| &a.at), "the checks stopped");
    assert_eq!(primary_image(&c).await, OLD, "promoted through a closed gate");
    let approve = still.hooks.iter().find(|h| h.name == "approve").expect("the gate's result in status");
    assert_eq!((approve.succeeded, approve.status_code), (false, Some(403)), "{approve:?}");
    let shown = canary_get(&c.namespace).await;
    assert!(shown.contains("Gate:") && shown.contains("confirm-promotion"), "canary get:\n{shown}");
    assert!(shown.contains("approve") && shown.contains("failed: HTTP 403"), "canary get:\n{shown}");

    // A person approves at the load tester, which keys its gates by the payload's name and namespace.
    let open = json!({"name": TARGET, "namespace": c.namespace});
    let request = reqwest::Client::new().post(format!("{}/gate/open", tester.url)).body(open.to_string());
    let answer = request.send().await.expect("open the gate");
    assert_eq!(answer.status().as_u16(), 202);
    let done = c
        .eventually(60, "the run promoted once the gate opened", || async {
            canary_status(&c).await.filter(|s| s.phase == CanaryPhase::Succeeded)
        })
        .await;
    assert_eq!((done.gate, primary_image(&c).await), (None, NEW.to_string()));

    // Flagger's payload, field for field: pre-rollout before the first hold, post-rollout once promoted.
    let run = done.run_id.clone().expect("run id");
    let bodies = recorder.bodies.lock().unwrap().clone();
    let golden_pre = json!({"name": TARGET, "namespace": c.namespace, "phase": "Progressing", "checksum": run});
    assert_eq!(bodies.first(), Some(&golden_pre), "{bodies:?}");
    let golden_post = json!({"name": TARGET, "namespace": c.namespace, "phase": "Succeeded", "checksum": run,
        "metadata": {"team": c.namespace}});
    assert_eq!(bodies.last(), Some(&golden_post), "{bodies:?}");
    let pre = bodies.iter().filter(|b| b["phase"] == "Progressing").count();
    assert_eq!(pre, 1, "pre-rollout once per run: {bodies:?}");
    let told: Vec<String> = events
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["metadata"]["eventMessage"].as_str().unwrap_or("").to_string())
        .collect();
    for reason in ["RunStarted", "GateHeld", "GateOpened", "Promoted"] {
        assert!(told.iter().any(|m| m.starts_with(reason)), "{reason} not sent to the event hook: {told:?}");
    }
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_rollout_hook_to_a_closed_port_rolls_the_run_back_at_the_failure_limit() {
    let c = cluster().await;
    let closed = perf_test_support::free_port();
    let hooks = json!([{"name": "load", "url": format!("http://127.0.0.1:{closed}/"), "timeout": "2s"}]);
    let started = Instant::now();
    let Run { prom: _prom, _kubelet, _op } = start(&c, Behaviour::healthy(), hooks).await;
    set_image(&c.api::<Deployment>(), TARGET, NEW).await;
    let done = c
        .eventually(60, "the run rolled back", || async {
            canary_status(&c).await.filter(|s| matches!(s.phase, CanaryPhase::RolledBack | CanaryPhase::Succeeded))
        })
        .await;
    assert_eq!((done.phase, done.failed_checks), (CanaryPhase::RolledBack, 2), "{done:?}");
    let message = done.message.clone().unwrap_or_default();
    assert!(message.contains("webhook/load"), "the status names the hook: {message}");
    let hook = done.hooks.iter().find(|h| h.name == "load").expect("its result");
    assert!(!hook.succeeded && hook.message.as_deref().unwrap_or_default().contains("connect"), "{hook:?}");
    assert_eq!(primary_image(&c).await, OLD);
    eprintln!("rolled back {:?} after the start", started.elapsed());
}

/// `perf-operator canary get TARGET -n NAMESPACE`, as a user runs it.
async fn canary_get(namespace: &str) -> String {
    let mut command = std::process::Command::new(env_path("PERF_OPERATOR_BIN"));
    command.args(["canary", "get", TARGET, "-n", namespace]);
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run perf-operator");
    assert!(out.status.success(), "canary get failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
