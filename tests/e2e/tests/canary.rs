//! Canary runs on the real API server, with the operator as its own process under the chart's ServiceAccount and
//! a real Prometheus scraping a simulated app: a run walked stage by stage on replica ratio, a run rolled back on
//! bad metrics, `perf-operator canary pause|resume|abort` on a live run, and HTTPRoute weights. Every assertion
//! reads what the API server holds (status, Deployments, Services, the route, Events, its audit log), never the
//! operator's log.

#[path = "../../../operator/canary/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use perf_canary::objects::ROLE_LABEL;
use perf_e2e::fixtures::{create_app, http_route, http_routes, profile, replicas_and_image, route_weights, set_image};
use perf_e2e::{Cluster, OPERATOR_USER, audit, cluster, env_path, kubelet};
use perf_operator_api::CONFIG_CHECKSUM_ANNOTATION;
use perf_operator_api::status::{CanaryPhase, CanaryStatus, CheckVerdict};
use prometheus::{Behaviour, PrometheusFixture};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TARGET: &str = "shop";
const PRIMARY: &str = "shop-primary";
const CANARY: &str = "shop-canary";
const OLD: &str = "registry.example/shop:1";
const NEW: &str = "registry.example/shop:2";
const STAGES: [u32; 4] = [10, 25, 50, 100];
/// The step interval of every profile here, in seconds.
const STEP: u64 = 4;

/// The canary section of the profiles: 4 s steps judged on the fixture's Prometheus, plus `extra`.
fn canary_spec(prometheus: &str, extra: Value) -> Value {
    let mut canary = json!({"stages": STAGES, "stepInterval": format!("{STEP}s"), "progressDeadline": "2m",
        "analysis": {"prometheus": prometheus, "minRequests": 10}});
    if let (Some(canary), Some(extra)) = (canary.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            canary.insert(k.clone(), v.clone());
        }
    }
    json!({ "canary": canary })
}

/// The profile's canary status, if written.
async fn canary_status(c: &Cluster) -> Option<CanaryStatus> {
    c.profiles().get(TARGET).await.ok()?.status?.canary
}

/// One look at a run: the canary status, then the Deployments and route it drives, read right after.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    status: CanaryStatus,
    /// `spec.replicas` of `<target>-primary` and `<target>-canary`.
    primary: Option<i32>,
    canary: Option<i32>,
    /// (primary, canary) weights on the live HTTPRoute, when the run routes through one.
    route: Option<(u64, u64)>,
}

impl Sample {
    fn active(&self) -> bool {
        matches!(self.status.phase, CanaryPhase::WaitingForPods | CanaryPhase::Progressing | CanaryPhase::Promoting)
    }
    fn stage(&self) -> Option<usize> {
        self.status.stage_index.map(|i| i as usize)
    }
    /// `phase stage weight achieved pods(status) pods(Deployments) route`, for failure messages.
    fn line(&self, start: Instant) -> String {
        let s = &self.status;
        format!(
            "{:>5.1}s {:?}{} stage {:?} weight {} achieved {:?} status pods {}/{} Deployments {:?}/{:?} route {:?}",
            self.at.duration_since(start).as_secs_f64(),
            s.phase,
            if s.paused { " (paused)" } else { "" },
            s.stage_index,
            s.weight,
            s.achieved_weight,
            s.primary_replicas,
            s.canary_replicas,
            self.primary,
            self.canary,
            self.route
        )
    }
}

async fn sample(c: &Cluster, route: Option<&Api<DynamicObject>>) -> Option<Sample> {
    let status = canary_status(c).await?;
    let deployments = c.api::<Deployment>();
    let primary = replicas_and_image(&deployments, PRIMARY).await.map(|(n, _)| n);
    let canary = replicas_and_image(&deployments, CANARY).await.map(|(n, _)| n);
    let route = match route {
        Some(api) => Some(weights(&api.get(TARGET).await.ok()?)),
        None => None,
    };
    Some(Sample { at: Instant::now(), status, primary, canary, route })
}

/// (primary, canary) weights of the route.
fn weights(route: &DynamicObject) -> (u64, u64) {
    let w = route_weights(route);
    (w.get(PRIMARY).copied().unwrap_or(0), w.get(CANARY).copied().unwrap_or(0))
}

/// Samples every 250 ms until `done` holds for a sample; panics after `secs`, or at once if the run ends in a
/// phase `done` did not ask for, printing what was seen.
async fn record(
    c: &Cluster,
    route: Option<&Api<DynamicObject>>,
    secs: u64,
    done: impl Fn(&Sample) -> bool,
) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    loop {
        if let Some(s) = sample(c, route).await {
            let finished = done(&s);
            let ended =
                matches!(s.status.phase, CanaryPhase::RolledBack | CanaryPhase::Failed | CanaryPhase::Succeeded);
            samples.push(s);
            if finished {
                return samples;
            }
            if ended && samples.iter().any(Sample::active) {
                panic!("the run ended unexpectedly:\n{}", history(&samples, start));
            }
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s:\n{}", history(&samples, start));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Samples every 250 ms for `span`, whatever happens.
async fn observe_for(c: &Cluster, route: Option<&Api<DynamicObject>>, span: Duration) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < span {
        samples.extend(sample(c, route).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    samples
}

/// The samples where something changed, one per line.
fn history(samples: &[Sample], start: Instant) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut last = String::new();
    for s in samples {
        let line = s.line(start);
        let key = line.trim_start().split_once(' ').map_or("", |(_, rest)| rest).to_string();
        if key != last {
            lines.push(line);
            last = key;
        }
    }
    lines.join("\n")
}

/// Stage indexes in the order the run entered them, with when each was first seen.
fn stage_entries(samples: &[Sample]) -> Vec<(usize, Instant)> {
    let mut entries: Vec<(usize, Instant)> = Vec::new();
    for s in samples.iter().filter(|s| s.active()) {
        if let Some(stage) = s.stage()
            && entries.last().map(|(last, _)| *last) != Some(stage)
        {
            entries.push((stage, s.at));
        }
    }
    entries
}

/// Each stage entered once, in order, from the first (at least `min_stages` of them), one step interval apart at
/// least (no skip, no double step), each at its weight.
fn assert_walked_in_order(samples: &[Sample], min_stages: usize, start: Instant) {
    let entries = stage_entries(samples);
    let order: Vec<usize> = entries.iter().map(|(s, _)| *s).collect();
    assert!(
        order.len() >= min_stages && order == (0..order.len()).collect::<Vec<_>>(),
        "stages not walked in order (want at least {min_stages}):\n{}",
        history(samples, start)
    );
    for pair in entries.windows(2) {
        let held = pair[1].1.duration_since(pair[0].1);
        assert!(
            held >= Duration::from_secs(STEP - 1),
            "stage {} held {held:?}, less than the step interval:\n{}",
            pair[0].0,
            history(samples, start)
        );
    }
    for s in samples.iter().filter(|s| s.active() && s.status.phase != CanaryPhase::Promoting) {
        let stage = s.stage().expect("an active run has a stage");
        assert_eq!(s.status.weight, STAGES[stage], "weight of stage {stage}:\n{}", history(samples, start));
        assert_eq!(s.status.stage.as_deref(), Some(format!("{}/{}", stage + 1, STAGES.len()).as_str()));
    }
}

/// Waits until the primary serves and no run is going (phase Idle).
async fn wait_idle(c: &Cluster) -> CanaryStatus {
    c.eventually(90, "the primary serving (canary phase Idle)", || async {
        canary_status(c).await.filter(|s| s.phase == CanaryPhase::Idle)
    })
    .await
}

/// Waits until `<target>-canary` runs no pod (after a run ends).
async fn wait_canary_scaled_to_zero(c: &Cluster) {
    c.eventually(30, "the canary scaled to zero", || async {
        (replicas_and_image(&c.api(), CANARY).await?.0 == 0).then_some(())
    })
    .await
}

/// The image `<target>-primary` runs.
async fn primary_image(c: &Cluster) -> String {
    replicas_and_image(&c.api(), PRIMARY).await.expect("the primary exists").1
}

/// The CanaryReady condition as (status, reason).
async fn canary_ready(c: &Cluster) -> (String, String) {
    c.condition(TARGET, "CanaryReady").await.expect("CanaryReady is set")
}

/// How many times the operator told each event reason about the profile (events.k8s.io Events with their series).
async fn event_counts(c: &Cluster) -> BTreeMap<String, i32> {
    let events = c.api::<Event>().list(&ListParams::default()).await.expect("list Events");
    let mut counts = BTreeMap::new();
    for e in events.items {
        let regarding = e.regarding.unwrap_or_default();
        if regarding.kind.as_deref() == Some("PerformanceProfile") && regarding.name.as_deref() == Some(TARGET) {
            *counts.entry(e.reason.unwrap_or_default()).or_default() += e.series.map_or(1, |s| s.count);
        }
    }
    counts
}

/// The number of `reason` events about the profile.
fn told(counts: &BTreeMap<String, i32>, reason: &str) -> i32 {
    counts.get(reason).copied().unwrap_or(0)
}

/// Every write the operator made in the namespace since `writes` opened was accepted (no RBAC refusal, no
/// conflict, no 422 from acting on a stale cached profile), listing the refused ones otherwise.
fn assert_writes_accepted(writes: Option<&audit::Window>, namespace: &str) {
    let Some(audit) = writes else { return };
    let writes = audit.writes(OPERATOR_USER, namespace);
    assert!(!writes.is_empty(), "the audit log saw no write of the operator in {namespace}");
    let refused: Vec<String> = writes
        .iter()
        .filter(|e| e.response_status.as_ref().is_none_or(|s| s.code >= 300))
        .map(|e| e.describe())
        .collect();
    assert!(refused.is_empty(), "the API server refused writes of the operator: {refused:?}");
}

/// `perf-operator canary ARGS -n NAMESPACE` with the admin KUBECONFIG, as a user runs it; returns its stdout.
async fn canary_cli(args: &[&str], namespace: &str) -> String {
    let bin = env_path("PERF_OPERATOR_BIN");
    let mut command = std::process::Command::new(bin);
    command.arg("canary").args(args).args(["-n", namespace]);
    let shown = format!("perf-operator canary {} -n {namespace}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run perf-operator");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{shown} failed ({}): {stdout}{stderr}", out.status);
    stdout.into_owned()
}

/// `round(100 * canary / (primary + canary))`: the share of pods behind the target's Service that are canaries.
fn ratio(primary: i32, canary: i32) -> u32 {
    let (p, c) = (primary.max(0) as u32, canary.max(0) as u32);
    if p + c == 0 { 0 } else { (200 * c + (p + c)) / (2 * (p + c)) }
}

/// What every run needs, at Idle: Prometheus scraping the simulated app (the new version behaving as `canary`),
/// the target with `replicas` pods, the kubelet stand-in, the operator, an audit window, and the profile with
/// `extra` canary settings.
struct Run {
    prom: PrometheusFixture,
    idle: CanaryStatus,
    writes: Option<audit::Window>,
    _kubelet: kubelet::Kubelet,
    _op: perf_e2e::Operator,
}

async fn start(c: &Cluster, canary: Behaviour, replicas: i32, extra: Value) -> Run {
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, TARGET, canary).await;
    create_app(&c.api(), TARGET, OLD, replicas).await;
    let kubelet = kubelet::run(c.api::<Pod>());
    let op = c.operator("replica-a");
    let writes = audit::Window::open();
    let spec = canary_spec(&prom.url, extra);
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, spec)).await.expect("create");
    let idle = wait_idle(c).await;
    Run { prom, idle, writes, _kubelet: kubelet, _op: op }
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_run_walks_every_stage_by_replica_ratio_and_promotes() {
    let c = cluster().await;
    // Bound by name, not `..`: what is not bound would be dropped (and stopped) at once.
    let routing = json!({"routing": {"canaryPort": 8080}});
    let Run { prom: _prom, idle, writes, _kubelet, _op } = start(&c, Behaviour::healthy(), 9, routing).await;
    let deployments = c.api::<Deployment>();
    assert_eq!(replicas_and_image(&deployments, PRIMARY).await, Some((9, OLD.into())), "primary at Idle");
    // The canary-only address (routing.canaryPort): a Service selecting the canary's pods alone.
    let service = c.api::<Service>().get(CANARY).await.expect("the canary-only Service");
    let spec = service.spec.expect("spec");
    let selector = spec.selector.unwrap_or_default();
    assert_eq!(selector.get(ROLE_LABEL).map(String::as_str), Some("canary"), "{selector:?}");
    assert_eq!(spec.ports.unwrap_or_default().first().map(|p| p.port), Some(8080));
    assert_eq!(replicas_and_image(&deployments, CANARY).await.map(|(n, _)| n), Some(0), "canary at Idle");
    c.eventually(30, "the target scaled to zero", || async {
        (replicas_and_image(&deployments, TARGET).await?.0 == 0).then_some(())
    })
    .await;
    assert_eq!(canary_ready(&c).await, ("True".into(), "Stable".into()));

    // A new template: the run walks 10 -> 25 -> 50 -> 100 -> Succeeded.
    set_image(&deployments, TARGET, NEW).await;
    let start = Instant::now();
    let samples = record(&c, None, 150, |s| s.status.phase == CanaryPhase::Succeeded).await;
    eprintln!("replica-ratio run:\n{}", history(&samples, start));
    assert_walked_in_order(&samples, STAGES.len(), start);

    // Pods per stage with a primary of 9: the closest weight with at least 9 serving; the primary gives pods up.
    let expected: [(i32, i32); 4] = [(9, 1), (9, 3), (5, 5), (0, 9)];
    for (stage, &(primary, canary)) in expected.iter().enumerate() {
        let holding: Vec<&Sample> =
            samples.iter().filter(|s| s.status.phase == CanaryPhase::Progressing && s.stage() == Some(stage)).collect();
        assert!(!holding.is_empty(), "stage {stage} never held:\n{}", history(&samples, start));
        for s in &holding {
            let st = &s.status;
            let want = (primary as u32, canary as u32);
            assert_eq!((st.primary_replicas, st.canary_replicas), want, "status pods at stage {stage}");
            assert_eq!(st.achieved_weight, Some(ratio(primary, canary)), "achievedWeight at stage {stage}");
            assert!(primary + canary >= 9, "fewer than 9 pods serving at stage {stage}");
            // The Deployments hold the stage's counts (or already the next stage's canary: its step applies it just
            // before it writes its status; the primary gives pods up only once that canary is ready, and the
            // promotion gives it all 9 back).
            let (next_primary, next_canary) = expected.get(stage + 1).copied().unwrap_or((9, canary));
            assert!(
                (s.primary == Some(primary) || s.primary == Some(next_primary).filter(|_| stage == 3))
                    && (s.canary == Some(canary) || s.canary == Some(next_canary)),
                "Deployments at stage {stage}: {}",
                s.line(start)
            );
        }
        assert!(
            holding.iter().any(|s| s.canary == Some(canary)),
            "the canary Deployment never had {canary} replicas at stage {stage}"
        );
    }

    let done = canary_status(&c).await.expect("status");
    assert_eq!(done.run_id, done.stable_id, "the promoted run is not the stable one");
    assert_ne!(done.stable_id, idle.stable_id, "the stable template did not change");
    assert_eq!((done.weight, done.achieved_weight), (0, None));
    let verdicts: Vec<(u32, CheckVerdict)> = done.analyses.iter().rev().map(|a| (a.stage_index, a.verdict)).collect();
    assert_eq!(verdicts, (0..4).map(|i| (i, CheckVerdict::Pass)).collect::<Vec<_>>(), "one passing analysis a stage");
    wait_canary_scaled_to_zero(&c).await;
    let primary = deployments.get(PRIMARY).await.expect("primary");
    assert_eq!(primary_image(&c).await, NEW, "the primary was not promoted");
    assert_eq!(primary.spec.and_then(|s| s.replicas), Some(9), "the primary did not get its full size back");
    let annotations = primary.metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("perf.operator.dev/full-replicas"), "still marked as shrunk: {annotations:?}");
    let hash = annotations.get("perf.operator.dev/template-hash").cloned();
    assert_eq!(hash, done.stable_id, "the primary's template hash is not the stable id");
    assert_eq!(replicas_and_image(&deployments, TARGET).await, Some((0, NEW.into())), "the target");
    assert_eq!(canary_ready(&c).await, ("True".into(), "Promoted".into()));
    // One decision per transition: each stage analysed and advanced once (no double step from a stale cache).
    let events = event_counts(&c).await;
    let once = ["RunStarted", "Promoting", "Promoted"].map(|r| (r, told(&events, r)));
    assert_eq!(once, ["RunStarted", "Promoting", "Promoted"].map(|r| (r, 1)), "events: {events:?}");
    assert_eq!(told(&events, "StageAdvanced"), 3, "events: {events:?}");
    assert_writes_accepted(writes.as_ref(), &c.namespace);
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_run_with_failing_checks_rolls_back_and_stays_rolled_back() {
    let c = cluster().await;
    // Every fifth request of the new version fails.
    let Run { prom, idle: _, writes, _kubelet, _op } = start(&c, Behaviour::erroring(0.2), 4, json!({})).await;

    let deployments = c.api::<Deployment>();
    set_image(&deployments, TARGET, NEW).await;
    let start = Instant::now();
    let samples = record(&c, None, 120, |s| s.status.phase == CanaryPhase::RolledBack).await;
    eprintln!("failing run:\n{}", history(&samples, start));
    assert_eq!(stage_entries(&samples).iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0], "a failing stage advanced");
    let rolled_back = canary_status(&c).await.expect("status");
    assert_eq!((rolled_back.failed_checks, rolled_back.weight, rolled_back.achieved_weight), (2, 0, None));
    // The first failed check (of failureLimit 2) held the run: two failed analyses are kept, the rollback came at
    // the second. Read from the record, not from samples that may miss a state lasting one check interval.
    let failed: Vec<_> = rolled_back.analyses.iter().filter(|a| a.verdict == CheckVerdict::Fail).collect();
    assert_eq!(failed.len(), 2, "failed analyses before the rollback:\n{}", history(&samples, start));
    assert!(failed[1].at <= failed[0].at, "the failed analyses are not newest first: {failed:?}");
    let message = rolled_back.message.clone().unwrap_or_default();
    assert!(message.contains("error-rate"), "the status does not say which check failed: {message}");
    let last = rolled_back.analyses.first().expect("the failed analysis is recorded");
    assert_eq!(last.verdict, CheckVerdict::Fail);
    let error_rate = last.checks.iter().find(|c| c.name == "error-rate").expect("an error-rate check");
    assert_eq!(error_rate.verdict, CheckVerdict::Fail, "{error_rate:?}");
    assert!(error_rate.value.is_some_and(|v| (10.0..=30.0).contains(&v)), "error rate of 20 %: {error_rate:?}");
    let passed: Vec<&str> =
        last.checks.iter().filter(|c| c.verdict == CheckVerdict::Pass).map(|c| c.name.as_str()).collect();
    assert!(passed.contains(&"requests") && passed.contains(&"p99-latency"), "only the error rate fails: {last:?}");
    assert_eq!(canary_ready(&c).await, ("False".into(), "RolledBack".into()));
    wait_canary_scaled_to_zero(&c).await;
    assert_eq!(replicas_and_image(&deployments, PRIMARY).await, Some((4, OLD.into())), "the primary changed");
    assert_eq!(replicas_and_image(&deployments, TARGET).await, Some((0, NEW.into())), "the target was touched");
    let events = event_counts(&c).await;
    let told_about = ["StageAdvanced", "CheckFailed", "RolledBack"].map(|r| (r, told(&events, r)));
    assert_eq!(told_about, [("StageAdvanced", 0), ("CheckFailed", 1), ("RolledBack", 1)], "events: {events:?}");

    // Final for this template: resyncs (every 5 s here) start no new run.
    let after = observe_for(&c, None, Duration::from_secs(12)).await;
    assert!(
        after.iter().all(|s| s.status.phase == CanaryPhase::RolledBack
            && s.status.run_id == rolled_back.run_id
            && s.canary == Some(0)),
        "the rolled-back template ran again:\n{}",
        history(&after, start)
    );
    assert_writes_accepted(writes.as_ref(), &c.namespace);

    // A fixed version is a new template: a new run starts.
    prom.set_canary(TARGET, Behaviour::healthy());
    set_image(&deployments, TARGET, "registry.example/shop:3").await;
    c.eventually(30, "a new run for the fixed template", || async {
        let s = canary_status(&c).await?;
        (s.run_id != rolled_back.run_id && s.phase != CanaryPhase::RolledBack && s.failed_checks == 0).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_cli_pauses_a_live_run_resumes_it_and_aborts_it() {
    let c = cluster().await;
    // The new version serves nothing yet: its first stage holds on missing data (onNoData: wait) until the test
    // says otherwise, so the pause lands on a live stage whatever the machine's load.
    let Run { prom, idle: _, writes, _kubelet, _op } = start(&c, Behaviour::thin(0), 4, json!({})).await;
    // Of the new version's pods only the first ever becomes ready: stage 2 (two canary pods) waits for its pods,
    // so the abort below lands on a live run, not on one that already promoted.
    drop(_kubelet);
    let first = std::sync::Mutex::new(None::<String>);
    let _holding = kubelet::run_except(c.api::<Pod>(), move |pod| {
        if !kubelet::runs(pod, ROLE_LABEL, "canary", NEW) {
            return false;
        }
        let name = pod.metadata.name.clone();
        let mut first = first.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        first.get_or_insert_with(|| name.clone().unwrap_or_default()).as_str() != name.as_deref().unwrap_or_default()
    });

    let deployments = c.api::<Deployment>();
    set_image(&deployments, TARGET, NEW).await;
    let start = Instant::now();
    let mut samples =
        record(&c, None, 90, |s| s.status.phase == CanaryPhase::Progressing && s.stage() == Some(0)).await;

    // Pause: the stage holds for three step intervals, with no analysis, no step and no deadline.
    let out = canary_cli(&["pause", TARGET], &c.namespace).await;
    assert!(out.contains("pause sent"), "{out}");
    let paused =
        c.eventually(15, "status.canary.paused", || async { canary_status(&c).await.filter(|s| s.paused) }).await;
    assert!(paused.last_command.as_deref().is_some_and(|v| v.starts_with("pause@")), "{:?}", paused.last_command);
    assert_eq!(paused.deadline, None, "a paused run keeps a deadline");
    assert_eq!(paused.stage_index, Some(0), "paused elsewhere than the held stage");
    assert_eq!(canary_ready(&c).await, ("False".into(), "Paused".into()));
    // Traffic from here: only the pause holds the run now.
    prom.set_canary(TARGET, Behaviour::healthy());
    let held = observe_for(&c, None, Duration::from_secs(3 * STEP + 1)).await;
    let still = |s: &Sample| {
        s.status.paused
            && s.status.phase == paused.phase
            && s.status.stage_index == paused.stage_index
            && s.status.analyses.len() == paused.analyses.len()
            && s.canary == held[0].canary
    };
    assert!(held.iter().all(still), "the paused run moved:\n{}", history(&held, start));
    let shown = canary_cli(&["status", TARGET], &c.namespace).await;
    assert!(shown.contains("(paused)"), "canary status does not show the pause: {shown}");
    samples.extend(held);

    // Resume: the run goes on, through stage 1, to stage 2, where it waits for the pods held back above.
    canary_cli(&["resume", TARGET], &c.namespace).await;
    samples.extend(record(&c, None, 30, |s| !s.status.paused && s.stage() == Some(2)).await);
    let resumed = canary_status(&c).await.expect("status");
    assert!(resumed.deadline.is_some(), "a resumed run has no deadline");

    // Abort: rolled back at once, the primary keeps the old version.
    canary_cli(&["abort", TARGET], &c.namespace).await;
    samples.extend(record(&c, None, 30, |s| s.status.phase == CanaryPhase::RolledBack).await);
    eprintln!("paused, resumed and aborted run:\n{}", history(&samples, start));
    assert_walked_in_order(&samples, 3, start);
    let aborted = canary_status(&c).await.expect("status");
    assert!(!aborted.paused, "an aborted run is still paused");
    assert_eq!(aborted.message.as_deref(), Some("aborted by command"));
    assert_eq!(aborted.failed_checks, 0, "an abort is not a failed check");
    assert_eq!(canary_ready(&c).await, ("False".into(), "RolledBack".into()));
    wait_canary_scaled_to_zero(&c).await;
    assert_eq!(replicas_and_image(&deployments, PRIMARY).await, Some((4, OLD.into())), "the primary changed");
    let shown = canary_cli(&["status", TARGET], &c.namespace).await;
    assert!(shown.starts_with("RolledBack"), "canary status: {shown}");
    let events = event_counts(&c).await;
    let commands = ["Paused", "Resumed", "Aborted"].map(|r| (r, told(&events, r)));
    assert_eq!(commands, ["Paused", "Resumed", "Aborted"].map(|r| (r, 1)), "events: {events:?}");
    assert_writes_accepted(writes.as_ref(), &c.namespace);
}

/// The route's rules with the weights left out (what must not change).
fn rules_without_weights(route: &DynamicObject) -> Value {
    let mut rules = route.data["spec"]["rules"].clone();
    for rule in rules.as_array_mut().into_iter().flatten() {
        for backend in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            if let Some(b) = backend.as_object_mut() {
                b.remove("weight");
            }
        }
    }
    rules
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn an_httproute_gets_each_stage_weight_and_goes_back_to_the_primary() {
    let c = cluster().await;
    let routes = http_routes(c.client.clone(), &c.namespace);
    // As Git holds it: both backends, no weights (Gateway API weighs them 1:1).
    let created = routes
        .create(&PostParams::default(), &http_route(TARGET, &[PRIMARY, CANARY], 80))
        .await
        .expect("create HTTPRoute (are the Gateway API CRDs installed?)");
    assert_eq!(weights(&created), (1, 1));
    let routing = json!({"routing": {"httpRoute": {"name": TARGET, "port": 80}}});
    let Run { prom: _prom, idle: _, writes, _kubelet, _op } = start(&c, Behaviour::healthy(), 4, routing).await;
    c.eventually(30, "all traffic on the primary at Idle", || async {
        (weights(&routes.get(TARGET).await.ok()?) == (100, 0)).then_some(())
    })
    .await;
    let services = c.api::<Service>();
    for (name, role) in [(PRIMARY, "primary"), (CANARY, "canary")] {
        let spec = services.get(name).await.unwrap_or_else(|e| panic!("Service {name}: {e}")).spec.expect("spec");
        let selector = spec.selector.unwrap_or_default();
        assert_eq!(
            (selector.get("app").map(String::as_str), selector.get("perf.operator.dev/role").map(String::as_str)),
            (Some(TARGET), Some(role)),
            "selector of {name}"
        );
        assert_eq!(spec.ports.unwrap_or_default().iter().map(|p| p.port).collect::<Vec<_>>(), [80], "ports of {name}");
    }

    let deployments = c.api::<Deployment>();
    set_image(&deployments, TARGET, NEW).await;
    let start = Instant::now();
    let samples =
        record(&c, Some(&routes), 150, |s| s.status.phase == CanaryPhase::Succeeded && s.route == Some((100, 0))).await;
    eprintln!("routed run:\n{}", history(&samples, start));
    assert_walked_in_order(&samples, STAGES.len(), start);

    // Route: the stage's weight once its canary pods are ready, the previous stage's while they start.
    let mut seen: Vec<u64> = Vec::new();
    for s in &samples {
        let (primary, canary) = s.route.expect("route read");
        assert_eq!(primary + canary, 100, "weights do not add up: {}", s.line(start));
        if seen.last() != Some(&canary) {
            seen.push(canary);
        }
        let Some(stage) = s.stage().filter(|_| s.active()) else { continue };
        let weight = u64::from(STAGES[stage]);
        let previous = stage.checked_sub(1).map_or(0, |i| u64::from(STAGES[i]));
        // The status is written after the objects: a sample may see the objects of the step after its status.
        match s.status.phase {
            CanaryPhase::Progressing => assert_eq!(canary, weight, "route at stage {stage}: {}", s.line(start)),
            CanaryPhase::Promoting => assert!(
                canary == 100 || (canary == 0 && s.canary == Some(0)),
                "route while promoting: {}",
                s.line(start)
            ),
            _ => {
                assert!(canary == previous || canary == weight, "route while stage {stage} starts: {}", s.line(start));
                // The traffic in effect is the route's: the previous stage's until this one's pods are ready.
                assert_eq!(s.status.achieved_weight, Some(previous as u32), "achievedWeight: {}", s.line(start));
            }
        }
    }
    assert_eq!(seen, [0, 10, 25, 50, 100, 0], "route canary weights, in order:\n{}", history(&samples, start));

    // Pods: with a route the canary gets ceil(4 w / 100) pods and the achieved weight is the stage's.
    let expected: [i32; 4] = [1, 1, 2, 4];
    for (stage, &canary) in expected.iter().enumerate() {
        let next = expected.get(stage + 1).copied().unwrap_or(canary);
        let holding: Vec<&Sample> =
            samples.iter().filter(|s| s.status.phase == CanaryPhase::Progressing && s.stage() == Some(stage)).collect();
        assert!(!holding.is_empty(), "stage {stage} never held");
        for s in holding {
            assert_eq!(s.status.achieved_weight, Some(STAGES[stage]), "achievedWeight: {}", s.line(start));
            assert_eq!((s.status.primary_replicas, s.status.canary_replicas), (4, canary as u32), "{}", s.line(start));
            assert!(
                s.primary == Some(4) && (s.canary == Some(canary) || s.canary == Some(next)),
                "Deployments at stage {stage}: {}",
                s.line(start)
            );
        }
    }

    let route = routes.get(TARGET).await.expect("route");
    assert_eq!(weights(&route), (100, 0), "the route after promotion");
    assert_eq!(rules_without_weights(&route), rules_without_weights(&created), "the route's rules changed");
    assert_eq!(route.data["spec"]["parentRefs"], created.data["spec"]["parentRefs"], "parentRefs changed");
    assert_eq!(route.data["spec"]["hostnames"], created.data["spec"]["hostnames"], "hostnames changed");
    assert_eq!(primary_image(&c).await, NEW, "the primary was not promoted");
    wait_canary_scaled_to_zero(&c).await;
    assert_eq!(told(&event_counts(&c).await, "StageAdvanced"), 3, "a stage advanced twice");
    assert_writes_accepted(writes.as_ref(), &c.namespace);
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn an_abort_during_the_promotion_gives_the_primary_its_previous_template_back() {
    let c = cluster().await;
    let Run { prom: _prom, idle: _, writes, _kubelet, _op } = start(&c, Behaviour::healthy(), 4, json!({})).await;
    // From Idle on, the primary's pods of the new template never become ready (every other pod does), so the
    // promotion stays under way however fast the stages pass: no timing decides where the abort lands.
    drop(_kubelet);
    let _holding = kubelet::run_except(c.api::<Pod>(), |pod| kubelet::runs(pod, ROLE_LABEL, "primary", NEW));
    let deployments = c.api::<Deployment>();
    set_image(&deployments, TARGET, NEW).await;
    let start = Instant::now();
    let mut samples = record(&c, None, 120, |s| s.status.phase == CanaryPhase::Promoting).await;
    c.eventually(30, "the primary given the new template", || async {
        (replicas_and_image(&deployments, PRIMARY).await?.1 == NEW).then_some(())
    })
    .await;
    // Held: two step intervals later the promotion is still under way.
    let held = observe_for(&c, None, Duration::from_secs(2 * STEP)).await;
    assert!(held.iter().all(|s| s.status.phase == CanaryPhase::Promoting), "{}", history(&held, start));
    samples.extend(held);

    canary_cli(&["abort", TARGET], &c.namespace).await;
    drop(_holding);
    let _kubelet = kubelet::run(c.api::<Pod>());
    samples.extend(record(&c, None, 30, |s| s.status.phase == CanaryPhase::RolledBack).await);
    eprintln!("run aborted during its promotion:\n{}", history(&samples, start));
    let rolled_out = c
        .eventually(90, "the primary back on the old template and rolled out", || async {
            let d = deployments.get(PRIMARY).await.ok()?;
            let (replicas, image) = replicas_and_image(&deployments, PRIMARY).await?;
            let status = d.status?;
            let done = status.updated_replicas == Some(replicas) && status.ready_replicas == Some(replicas);
            (image == OLD && done).then_some(replicas)
        })
        .await;
    assert_eq!(rolled_out, 4, "the primary's size changed");
    let aborted = canary_status(&c).await.expect("status");
    let message = aborted.message.clone().unwrap_or_default();
    assert!(message.contains("aborted during promotion"), "{message}");
    assert_eq!(canary_ready(&c).await, ("False".into(), "RolledBack".into()));
    wait_canary_scaled_to_zero(&c).await;
    // It stays rolled back: the target still carries the new template, and no new run starts for it.
    let held = observe_for(&c, None, Duration::from_secs(2 * STEP)).await;
    assert!(held.iter().all(|s| s.status.phase == CanaryPhase::RolledBack), "{}", history(&held, start));
    assert_eq!(primary_image(&c).await, OLD);
    assert_eq!(told(&event_counts(&c).await, "Aborted"), 1);
    assert_writes_accepted(writes.as_ref(), &c.namespace);
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_contract_change_rolls_the_primary_without_a_canary_run() {
    let c = cluster().await;
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, TARGET, Behaviour::healthy()).await;
    create_app(&c.api(), TARGET, OLD, 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    let mut spec = canary_spec(&prom.url, json!({}));
    spec["appConfig"] = json!({"rolloutOnChange": true});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, spec)).await.expect("create");
    wait_idle(&c).await;
    let deployments = c.api::<Deployment>();
    let checksum = || async {
        let primary = deployments.get(PRIMARY).await.ok()?;
        primary.spec?.template.metadata?.annotations?.get(CONFIG_CHECKSUM_ANNOTATION).cloned()
    };
    let before = c.eventually(60, "the primary carrying the contract's checksum", checksum).await;

    // The contract changes (a TTL class): the primary's pods roll for it, and no run starts.
    let ttl = json!({"spec": {"cache": {"ttlClasses": [{"name": "pages", "ttlSeconds": 120}]}}});
    c.profiles().patch(TARGET, &PatchParams::default(), &Patch::Merge(&ttl)).await.expect("change the contract");
    c.eventually(60, "the primary rolled for the new contract", || async {
        checksum().await.filter(|now| *now != before)
    })
    .await;
    let start = Instant::now();
    let held = observe_for(&c, None, Duration::from_secs(3 * STEP)).await;
    assert!(held.iter().all(|s| !s.active()), "a contract change started a run:\n{}", history(&held, start));
    assert_eq!(told(&event_counts(&c).await, "RunStarted"), 0);
    assert_eq!(primary_image(&c).await, OLD);
}
