//! Shared analysis on the real API server, with the operator as its own process under the chart's ServiceAccount
//! and a real Prometheus: a profile with no Prometheus of its own (the operator's `--default-prometheus`) whose
//! metrics name an AnalysisTemplate of its namespace and the administrator's ClusterAnalysisTemplate, with
//! arguments. While the cluster template is missing, each analysis fails that check by name and reason (it can
//! never pass as written) and the others are judged; once the administrator creates it, the run promotes. Then
//! `kubectl perf canary get` and `kubectl perf canary analyze NAME` (live) through kubectl's plugin mechanism. The
//! run's milestones reach the profile's notification receiver (Slack's format) and the operator's (generic JSON).

#[path = "../../../operator/canary/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use perf_e2e::fixtures::{create_app, profile, replicas_and_image, set_image};
use perf_e2e::{Operator, cluster, kubelet};
use perf_operator_api::status::{AnalysisRecord, CanaryPhase, CanaryStatus, CheckVerdict};
use perf_operator_api::{AnalysisTemplate, ClusterAnalysisTemplate};
use perf_test_support::webhook;
use prometheus::{Behaviour, PrometheusFixture};
use serde_json::json;

const TARGET: &str = "shop";
const NEW: &str = "registry.example/shop:2";

/// `kubectl perf ARGS`, the binary linked as `kubectl-perf` on PATH as users install it: exit code and output.
async fn kubectl_perf(args: &[&str]) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("perf-e2e-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let link = dir.join("kubectl-perf");
    if !link.exists() {
        std::os::unix::fs::symlink(perf_e2e::env_path("PERF_OPERATOR_BIN"), &link).expect("link kubectl-perf");
    }
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = std::process::Command::new("kubectl");
    command.arg("perf").args(args).env("PATH", path);
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run kubectl");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn canary_status(c: &perf_e2e::Cluster) -> Option<CanaryStatus> {
    c.profiles().get(TARGET).await.ok()?.status?.canary
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_run_on_shared_templates_fails_a_missing_one_by_name_and_promotes_once_it_exists() {
    let c = cluster().await;
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, TARGET, Behaviour::healthy()).await;
    create_app(&c.api(), TARGET, "registry.example/shop:1", 3).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    // Notifications: the profile's receiver (Slack's format, its URL in a Secret) and the operator's cluster-wide
    // one (generic JSON, its URL in a file as a mounted Secret would give it).
    let (team, cluster_receiver) = (webhook::receiver(200).await, webhook::receiver(200).await);
    let url_file = std::env::temp_dir().join(format!("perf-e2e-notify-{}", c.namespace));
    std::fs::write(&url_file, &cluster_receiver.url).expect("write the URL file");
    let url_file = url_file.to_str().expect("utf-8 path").to_string();
    let slack: Secret = serde_json::from_value(json!({"metadata": {"name": "slack"},
        "stringData": {"address": team.url}}))
    .expect("secret");
    c.api::<Secret>().create(&PostParams::default(), &slack).await.expect("create the Secret");
    let extra =
        ["--default-prometheus", &prom.url, "--notification-url-file", &url_file, "--notification-format", "generic"];
    let _op = Operator::start_with(&c.namespace, "replica-a", &extra);

    // The team's own template: held to the namespace, asked on the analysis's Prometheus.
    let errors: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "canary-errors"},
        "spec": {"query": "sum(rate(http_requests_total{namespace=\"{{namespace}}\", pod=~\"{{args.workload}}-.*\", code=~\"5..\"}[{{interval}}])) or vector(0)",
                 "args": [{"name": "workload"}], "max": 0.5}}))
    .expect("template");
    c.api::<AnalysisTemplate>().create(&PostParams::default(), &errors).await.expect("create the AnalysisTemplate");
    // The administrator's: reads by workload across namespaces (as a mesh's metrics would), on its own Prometheus.
    let cluster_name = format!("{}-traffic", c.namespace);
    let traffic: ClusterAnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "ClusterAnalysisTemplate", "metadata": {"name": cluster_name},
        "spec": {"query": "sum(increase(http_requests_total{pod=~\"{{args.workload}}-.*\"}[{{interval}}]))",
                 "args": [{"name": "workload"}], "min": 1,
                 "prometheus": prom.url.replace("127.0.0.1", "localhost")}}))
    .expect("cluster template");

    let metrics = json!([
        {"name": "traffic", "templateRef": {"kind": "ClusterAnalysisTemplate", "name": cluster_name},
         "args": {"workload": "shop-canary"}},
        {"name": "errors", "templateRef": {"name": "canary-errors"}, "args": {"workload": "shop-canary"}}
    ]);
    // Quick checks off and a generous failure limit: the missing template fails a few step analyses, no rollback.
    let spec = json!({"canary": {"stages": [10, 25, 50, 100], "stepInterval": "4s", "progressDeadline": "2m",
        "analysis": {"minRequests": 10, "failureLimit": 20, "checkInterval": "0s", "metrics": metrics,
                     "runHistoryLimit": 1},
        "notifications": [{"secretRef": {"name": "slack", "key": "address"}}]}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, spec)).await.expect("create");
    c.eventually(90, "the primary serving (canary phase Idle)", || async {
        canary_status(&c).await.filter(|s| s.phase == CanaryPhase::Idle)
    })
    .await;

    let deployments = c.api::<Deployment>();
    set_image(&deployments, TARGET, NEW).await;
    let failed = c
        .eventually(60, "an analysis failing the check of the missing template", || async {
            let s = canary_status(&c).await?;
            s.analyses.iter().find(|a| a.verdict == CheckVerdict::Fail).cloned()
        })
        .await;
    let check = |name: &str| failed.checks.iter().find(|c| c.name == name).cloned().expect(name);
    let traffic_check = check("traffic");
    assert_eq!(traffic_check.verdict, CheckVerdict::Fail, "{failed:?}");
    let reason = traffic_check.reason.unwrap_or_default();
    assert!(reason.contains(&format!("ClusterAnalysisTemplate {cluster_name} not found")), "{reason}");
    assert!(reason.contains("spec.canary.analysis.metrics[0].templateRef"), "{reason}");
    let errors_check = check("errors");
    assert_eq!((errors_check.verdict, errors_check.value), (CheckVerdict::Pass, Some(0.0)), "{failed:?}");

    let clusters: Api<ClusterAnalysisTemplate> = Api::all(c.client.clone());
    clusters.create(&PostParams::default(), &traffic).await.expect("create the ClusterAnalysisTemplate");
    let done = c
        .eventually(120, "the run promoted once the template exists", || async {
            canary_status(&c).await.filter(|s| matches!(s.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack))
        })
        .await;
    // Day-2 through kubectl's plugin mechanism, before the cluster template goes: the run's view, and one analysis
    // of the live profile with its templates read from the cluster.
    let (code, view) = kubectl_perf(&["canary", "get", TARGET, "-n", &c.namespace]).await;
    let (analyzed, analysis) =
        kubectl_perf(&["canary", "analyze", TARGET, "-n", &c.namespace, "--prometheus", &prom.url]).await;
    let _ = clusters.delete(&cluster_name, &DeleteParams::default()).await;
    assert_eq!(done.phase, CanaryPhase::Succeeded, "{done:?}");
    assert_eq!(code, Some(0), "{view}");
    for expected in ["Status:       Succeeded", "shop-primary", NEW, "ANALYSES (newest first)", "  traffic"] {
        assert!(view.contains(expected), "{expected:?} not in kubectl perf canary get:\n{view}");
    }
    assert_eq!(analyzed, Some(0), "{analysis}");
    assert!(
        analysis.contains(r#"query:  sum(increase(http_requests_total{pod=~"shop-canary-.*"}[4s]))"#),
        "{analysis}"
    );
    assert!(analysis.trim_end().ends_with("(exit 0)"), "{analysis}");
    let last = done.analyses.first().expect("an analysis");
    let traffic_check = last.checks.iter().find(|c| c.name == "traffic").expect("traffic");
    assert_eq!(traffic_check.verdict, CheckVerdict::Pass, "{last:?}");
    assert!(traffic_check.value.is_some_and(|v| v >= 1.0), "{last:?}");
    assert_eq!(traffic_check.threshold, ">= 1", "the template's bound: {last:?}");
    let primary = replicas_and_image(&deployments, "shop-primary").await.expect("primary");
    assert_eq!(primary.1, NEW, "the primary runs the promoted template");

    // The run's history: every analysis (status keeps 5), the failing ones first in time, in a ConfigMap it owns.
    let maps = c.api::<ConfigMap>();
    let run = done.run_id.clone().expect("run id");
    let first_run = format!("shop-run-{}", &run[..10]);
    let history = maps.get(&first_run).await.expect("the run's history ConfigMap");
    let kept: Vec<AnalysisRecord> =
        serde_json::from_str(&history.data.unwrap_or_default()["analyses.json"]).expect("analyses.json");
    assert!(
        kept.len() >= done.analyses.len() && kept.len() >= 5,
        "history {} of status {}",
        kept.len(),
        done.analyses.len()
    );
    assert_eq!(kept.last().map(|a| a.verdict), Some(CheckVerdict::Fail), "the oldest kept is the first, failed one");
    assert_eq!(kept.first(), done.analyses.first(), "newest first");

    // The milestones of the run, in order, at both receivers; the failed check names the missing template.
    let titles: Vec<String> = team.bodies.lock().expect("bodies").iter().map(|b| b["text"].to_string()).collect();
    let events: Vec<String> =
        cluster_receiver.bodies.lock().expect("bodies").iter().map(|b| b["event"].to_string()).collect();
    let first = |list: &[String], wanted: &str| list.iter().position(|t| t.contains(wanted));
    let order = ["canary run started", "check failed", "stage advanced", "promoted"]
        .map(|w| first(&titles, &format!("shop: {w}")));
    assert!(order.iter().all(Option::is_some) && order.is_sorted(), "Slack milestones out of order: {titles:#?}");
    let order = ["started", "checkFailed", "stageAdvanced", "succeeded"].map(|w| first(&events, &format!("\"{w}\"")));
    assert!(order.iter().all(Option::is_some) && order.is_sorted(), "generic milestones out of order: {events:#?}");
    let failed = cluster_receiver.bodies.lock().expect("bodies").iter().find(|b| b["event"] == "checkFailed").cloned();
    let failed = failed.expect("a checkFailed notice");
    let traffic = failed["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "traffic")).cloned();
    assert!(
        traffic.is_some_and(|t| t["reason"].to_string().contains("not found")),
        "the failed check's reason is not in the notice: {failed}"
    );

    // A second run (the cluster template gone, so its check fails): with runHistoryLimit 1 its history replaces the
    // first run's.
    set_image(&deployments, TARGET, "registry.example/shop:3").await;
    let second = c
        .eventually(60, "the second run's history", || async {
            let s = canary_status(&c).await?;
            let id = s.run_id.filter(|id| *id != run)?;
            maps.get_opt(&format!("shop-run-{}", &id[..10])).await.ok()?
        })
        .await;
    assert!(second.data.is_some_and(|d| d["analyses.json"].contains("not found")), "the second run's analyses");
    c.eventually(30, "the first run's history deleted", || async {
        maps.get_opt(&first_run).await.ok().filter(Option::is_none)
    })
    .await;
}
