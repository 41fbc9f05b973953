//! [`decide`] without a cluster, and observe -> decide -> apply on an in-memory API server with a test clock.

use super::*;
use crate::analysis::QueryFuture;
use jiff::SignedDuration;
use kube::api::PostParams;
use perf_operator_api::{HttpRouteRef, PerformanceProfileSpec, RoutingSpec, TargetRef};
use serde_json::json;

const NS: &str = "shop";

/// Prometheus answering as for a healthy canary: plenty of requests, 50 ms p99, no errors.
struct Healthy;

impl MetricsSource for Healthy {
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
        let value = match promql {
            q if q.contains("increase(") => 1000.0,
            q if q.contains("histogram_quantile") => 0.05,
            _ => 0.0,
        };
        Box::pin(std::future::ready(Ok(Some(value))))
    }
}

/// Profile `checkout` (1m steps) for target `web`.
fn profile() -> PerformanceProfile {
    let spec = PerformanceProfileSpec {
        target_ref: TargetRef { name: "web".into(), ..TargetRef::default() },
        canary: Some(CanarySpec { step_interval: "1m".into(), ..CanarySpec::default() }),
        ..PerformanceProfileSpec::default()
    };
    let mut profile = PerformanceProfile::new("checkout", spec);
    profile.metadata.namespace = Some(NS.into());
    profile
}

/// Target `web`: `replicas` pods of `shop/web:1`.
fn target(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "namespace": NS, "labels": { "app": "web" } },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } },
                                "spec": { "containers": [{ "name": "app", "image": "shop/web:1" }] } } }
    }))
    .unwrap()
}

/// What observe would read: `target`, and a ready primary running its template when `with_primary`.
fn observation(target: Deployment, with_primary: bool, prev: CanaryStatus) -> Observation {
    let template = target.spec.as_ref().unwrap().template.clone();
    let hash = objects::template_hash(&template).unwrap();
    let owner = objects::owner(&with_uid(profile())).unwrap();
    let primary = with_primary.then(|| {
        let mut p = objects::workload(&target, Role::Primary, &template, &hash, 3, &owner).unwrap();
        p.status =
            Some(serde_json::from_value(json!({ "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3 })).unwrap());
        p
    });
    let world = World { target, template, hash, primary, primary_previous: None, canary: None, hpa: None };
    Observation {
        world: Box::new(world),
        prev,
        command: None,
        analysis: None,
        quick: false,
        check_interval: Duration::ZERO,
        hooks: crate::hooks::Results::default(),
    }
}

fn with_uid(mut profile: PerformanceProfile) -> PerformanceProfile {
    profile.metadata.uid = Some("0000-1".into());
    profile
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

#[test]
fn first_sight_creates_only_the_primary_and_the_target_keeps_serving() {
    let step = decide(&with_uid(profile()), &observation(target(3), false, CanaryStatus::default()), t0()).unwrap();
    assert_eq!(step.status.phase, CanaryPhase::Initializing);
    let primary = step.writes.primary.as_ref().expect("primary written");
    assert_eq!((primary.metadata.name.as_deref(), objects::replicas(primary)), (Some("web-primary"), 3));
    assert!(step.writes.canary.is_none() && step.writes.target_to_zero.is_none());
    assert_eq!((step.status.primary_replicas, step.status.canary_replicas), (3, 0));
}

#[test]
fn once_the_primary_is_ready_the_target_goes_to_zero_and_the_canary_waits_at_zero() {
    let prev = CanaryStatus { phase: CanaryPhase::Initializing, ..CanaryStatus::default() };
    let step = decide(&with_uid(profile()), &observation(target(3), true, prev), t0()).unwrap();
    assert_eq!((step.status.phase, step.condition.health), (CanaryPhase::Idle, machine::Health::Ready));
    assert!(step.writes.primary.is_none(), "a ready primary is left alone");
    assert_eq!(step.writes.canary.as_ref().map(objects::replicas), Some(0));
    let (name, body) = step.writes.target_to_zero.as_ref().expect("target scaled to zero");
    assert_eq!((name.as_str(), &body["spec"]), ("web", &json!({ "replicas": 0 })));
    // Settled: the target already runs no pods, so nothing is asked of it.
    let settled = decide(&with_uid(profile()), &observation(target(0), true, step.status), t0()).unwrap();
    assert!(settled.writes.target_to_zero.is_none() && settled.events.is_empty());
}

#[test]
fn decide_without_a_uid_is_an_error_naming_the_field() {
    let err = decide(&profile(), &observation(target(3), false, CanaryStatus::default()), t0()).unwrap_err();
    assert!(matches!(&err, Error::InvalidSpec { field, .. } if field == "metadata.uid"), "{err}");
}

/// An in-memory API server holding `profile()` and its target (3 pods).
async fn cluster() -> Client {
    kube_fake_client::ClientBuilder::new()
        .with_resource::<PerformanceProfile>()
        .with_status_subresource::<PerformanceProfile>()
        .with_status_subresource::<Deployment>()
        .with_object(profile())
        .with_object(target(3))
        .build()
        .await
        .unwrap()
}

/// One reconcile as the controller does it (profile read fresh, observe -> decide -> apply, status written back),
/// then every Deployment's pods ready.
async fn step(client: &Client, now: Timestamp) -> Step {
    let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), NS);
    let profile = profiles.get("checkout").await.unwrap();
    let resolved = crate::templates::Resolved::inline(profile.spec.canary.as_ref().unwrap());
    let sources = crate::Sources { resolved: &resolved, prometheus: &[&Healthy], hooks: None };
    let observation = observe(client, &profile, sources, now, TargetHpa::Read).await.unwrap();
    let step = decide(&profile, &observation, now).unwrap();
    apply(client, &profile, &step).await.unwrap();
    let mut written = profile;
    written.status.get_or_insert_with(Default::default).canary = Some(step.status.clone());
    written.metadata.managed_fields = None;
    profiles.replace_status("checkout", &PostParams::default(), &written).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for d in deployments.list(&ListParams::default()).await.unwrap().items {
        let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = json!({ "status": { "replicas": n, "readyReplicas": n, "updatedReplicas": n,
                                         "observedGeneration": d.metadata.generation } });
        let name = d.name_any();
        deployments.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }
    step
}

#[tokio::test]
async fn a_run_advances_stage_by_stage_and_a_reconcile_right_after_a_step_does_not_step_again() {
    let client = cluster().await;
    let at = |s: i64| t0() + SignedDuration::from_secs(s);
    step(&client, at(0)).await;
    assert_eq!(step(&client, at(1)).await.status.phase, CanaryPhase::Idle);
    let image =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "shop/web:2" }] } } } });
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(&image)).await.unwrap();

    let (mut events, mut stages, mut analysed, mut quick) = (Vec::new(), Vec::new(), 0, 0);
    let mut t = at(2);
    while stages.last() != Some(&(CanaryPhase::Succeeded, None)) {
        assert!(t < at(600), "run still going: {stages:?}");
        // Each step's own writes trigger the next reconcile at once: that one must not step the run again.
        for again in [t, t + SignedDuration::from_millis(200)] {
            let s = step(&client, again).await;
            analysed += usize::from(s.analysis.is_some() && !s.quick);
            quick += usize::from(s.quick);
            events.extend(s.events.iter().map(|e| e.reason));
            stages.push((s.status.phase, s.status.stage_index.filter(|_| machine::is_active(s.status.phase))));
        }
        t += SignedDuration::from_secs(31);
    }
    let advanced: Vec<u32> = stages.iter().filter_map(|s| s.1).fold(Vec::new(), |mut walked, i| {
        if walked.last() != Some(&i) {
            walked.push(i);
        }
        walked
    });
    assert_eq!(advanced, [0, 1, 2, 3], "stage by stage, never back: {stages:?}");
    assert_eq!(events, ["RunStarted", "StageAdvanced", "StageAdvanced", "StageAdvanced", "Promoting", "Promoted"]);
    assert_eq!(analysed, 4, "one analysis per stage");
    // The stub source has no scrape interval: quick checks every 30 s, one between two 31 s steps at most.
    assert!(quick <= 4, "a reconcile right after a quick check checked again: {quick}");
    let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), NS);
    let status = profiles.get("checkout").await.unwrap().status.unwrap().canary.unwrap();
    let judged: Vec<u32> = status.analyses.iter().map(|a| a.stage_index).collect();
    assert_eq!(judged, [3, 2, 1, 0]);
}

#[test]
fn with_a_route_the_achieved_weight_is_the_one_on_the_route() {
    let routed = CanarySpec {
        routing: RoutingSpec { http_route: Some(HttpRouteRef { name: "web".into(), port: 80 }), canary_port: None },
        ..CanarySpec::default()
    };
    let status = |phase, stage_index: u32| CanaryStatus {
        phase,
        stage_index: Some(stage_index),
        weight: routed.stages[stage_index as usize],
        ..CanaryStatus::default()
    };
    let pods = split::split(4, 50, Mode::Routed);
    // Stage 3 (50 %) starting: its pods are not ready, the route still sends the previous stage's 25 %.
    assert_eq!(achieved_weight(&routed, &status(CanaryPhase::WaitingForPods, 2), &pods), Some(25));
    assert_eq!(achieved_weight(&routed, &status(CanaryPhase::WaitingForPods, 0), &pods), Some(0));
    assert_eq!(achieved_weight(&routed, &status(CanaryPhase::Progressing, 2), &pods), Some(50));
    let idle = CanaryStatus { weight: 0, ..status(CanaryPhase::Succeeded, 3) };
    assert_eq!(achieved_weight(&routed, &idle, &pods), None);
    // By replica ratio it is the canary's share of the pods.
    let by_pods = split::split(9, 25, Mode::RatioFixedPrimary);
    assert_eq!(achieved_weight(&CanarySpec::default(), &status(CanaryPhase::WaitingForPods, 1), &by_pods), Some(25));
}

/// A run at stage 3 (50 %) of a new template in `phase`, the primary (old template) at `replicas` pods, marked
/// with its full size `full` if given; an HPA on the target when `hpa`.
fn shrinking(phase: CanaryPhase, replicas: i32, full: Option<u32>, hpa: bool) -> Step {
    let prev = CanaryStatus { phase, stage_index: Some(2), weight: 50, ..CanaryStatus::default() };
    let mut o = observation(target(0), true, prev);
    o.prev.run_id = Some(o.world.hash.clone());
    let primary = o.world.primary.as_mut().unwrap();
    primary.spec.as_mut().unwrap().replicas = Some(replicas);
    let annotations = primary.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(objects::TEMPLATE_HASH_ANNOTATION.into(), "old".into());
    if let Some(full) = full {
        annotations.insert(objects::FULL_REPLICAS_ANNOTATION.into(), full.to_string());
    }
    let status = json!({ "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas });
    primary.status = Some(serde_json::from_value(status).unwrap());
    if hpa {
        o.world.hpa = Some(
            serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"maxReplicas": 9,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}))
            .unwrap(),
        );
    }
    decide(&with_uid(profile()), &o, t0()).unwrap()
}

/// (replicas, full-size mark) of the primary written, if any.
fn primary_written(step: &Step) -> Option<(i32, Option<String>)> {
    let p = step.writes.primary.as_ref()?;
    let full = p.metadata.annotations.as_ref().and_then(|a| a.get(objects::FULL_REPLICAS_ANNOTATION).cloned());
    Some((p.spec.as_ref()?.replicas?, full))
}

#[test]
fn by_replica_ratio_the_primary_gives_pods_up_once_the_canary_is_ready_and_gets_them_back() {
    // 3 pods at 50 %: 2 + 2 (four serving, never fewer than three). While the canary's pods start, the primary
    // keeps its three.
    let waiting = shrinking(CanaryPhase::WaitingForPods, 3, None, false);
    assert_eq!(primary_written(&waiting), None);
    assert_eq!((waiting.status.primary_replicas, waiting.status.canary_replicas), (3, 2));
    let holding = shrinking(CanaryPhase::Progressing, 3, None, false);
    assert_eq!(primary_written(&holding), Some((2, Some("3".into()))), "shrunk, its full size kept");
    let s = &holding.status;
    assert_eq!((s.primary_replicas, s.canary_replicas, s.achieved_weight), (2, 2, Some(50)));
    // Once shrunk, the mark sizes the run: nothing more to write.
    assert_eq!(primary_written(&shrinking(CanaryPhase::Progressing, 2, Some(3), false)), None);
    // A run that ends gives the primary its pods back and drops the mark.
    for ended in [CanaryPhase::RolledBack, CanaryPhase::Failed] {
        let back = shrinking(ended, 2, Some(3), false);
        assert_eq!(primary_written(&back), Some((3, None)), "{ended:?}");
    }
    // With an HPA the primary's size is the HPA's: never shrunk, the canary caps at the primary's size.
    let autoscaled = shrinking(CanaryPhase::Progressing, 3, None, true);
    assert_eq!(primary_written(&autoscaled), None);
    assert_eq!((autoscaled.status.primary_replicas, autoscaled.status.canary_replicas), (3, 3));
}

/// `target` with the app contract's checksum on its pod template.
fn with_checksum(mut target: Deployment, checksum: &str) -> Deployment {
    let template = &mut target.spec.as_mut().unwrap().template;
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.annotations = Some([(perf_operator_api::CONFIG_CHECKSUM_ANNOTATION.to_string(), checksum.to_string())].into());
    target
}

#[test]
fn a_contract_change_rolls_the_primary_without_starting_a_run() {
    // Settled on a template whose contract checksum was `a`.
    let initializing = CanaryStatus { phase: CanaryPhase::Initializing, ..CanaryStatus::default() };
    let first = observation(with_checksum(target(0), "a"), true, initializing);
    let idle = decide(&with_uid(profile()), &first, t0()).unwrap().status;
    assert_eq!(idle.phase, CanaryPhase::Idle);
    // The contract changed: the target's template now carries `b`; the primary still runs `a`.
    let mut changed = observation(with_checksum(target(0), "b"), true, idle.clone());
    changed.world.primary = first.world.primary.clone();
    assert_eq!(changed.world.hash, first.world.hash, "the run id ignores the contract's checksum");
    let step = decide(&with_uid(profile()), &changed, t0()).unwrap();
    assert_eq!((step.status.phase, step.events.len()), (CanaryPhase::Idle, 0), "a contract change started a run");
    let primary = step.writes.primary.as_ref().expect("the primary rolled for the new contract");
    let template = &primary.spec.as_ref().unwrap().template;
    assert_eq!(objects::config_checksum(template).map(String::as_str), Some("b"));
    let before = &first.world.primary.as_ref().unwrap().spec.as_ref().unwrap().template;
    assert_eq!(template, &objects::with_config_checksum(before, Some(&"b".to_string())), "only the checksum changed");
    assert_eq!(objects::annotated_hash(primary).as_deref(), Some(first.world.hash.as_str()));
    // Rolled: nothing more to write.
    let mut rolled = observation(with_checksum(target(0), "b"), true, step.status);
    rolled.world.primary = Some(primary.clone());
    assert!(decide(&with_uid(profile()), &rolled, t0()).unwrap().writes.primary.is_none());
}

/// The canary-only address: by replica ratio `<target>-canary` exists when `routing.canaryPort` asks for it,
/// selecting the canary's pods alone; with an HTTPRoute both backends exist on the route's port.
#[test]
fn a_canary_only_service_reaches_the_canary_whatever_the_weight() {
    let services = |routing: RoutingSpec| {
        let mut p = with_uid(profile());
        p.spec.canary.as_mut().unwrap().routing = routing;
        let prev =
            CanaryStatus { phase: CanaryPhase::Progressing, stage_index: Some(0), weight: 10, ..Default::default() };
        let step = decide(&p, &observation(target(0), true, prev), t0()).unwrap();
        step.writes
            .services
            .iter()
            .map(|s| {
                let spec = s.spec.clone().unwrap();
                let selector = spec.selector.unwrap();
                let port = spec.ports.unwrap()[0].port;
                (s.metadata.name.clone().unwrap(), selector[objects::ROLE_LABEL].clone(), selector["app"].clone(), port)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(services(RoutingSpec::default()), vec![], "none unless asked");
    let canary_only = services(RoutingSpec { canary_port: Some(8080), ..RoutingSpec::default() });
    assert_eq!(canary_only, [("web-canary".to_string(), "canary".to_string(), "web".to_string(), 8080)]);
    let routed = services(RoutingSpec {
        http_route: Some(HttpRouteRef { name: "web".into(), port: 80 }),
        canary_port: Some(80),
    });
    let names: Vec<&str> = routed.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["web-primary", "web-canary"]);
}
