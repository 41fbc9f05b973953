//! GitOps footguns on the real API server: `spec.suspend` (nothing applied, a canary frozen, then resumed where it
//! was) and two profiles naming one target (the second waits, named in its condition, and takes over when the
//! holder goes or moves to another target).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, replicas_and_image, set_image};
use perf_e2e::{Cluster, cluster, kubelet};
use perf_operator_api::PerformanceProfile;
use perf_operator_api::status::CanaryPhase;
use serde_json::{Value, json};
use std::time::Duration;

/// A profile with only a target: its round publishes the contract `<name>-perf`, the one object it surely applies.
fn bare(namespace: &str, name: &str, target: &str, extra: Value) -> PerformanceProfile {
    let mut spec = json!({"targetRef": {"name": target}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    }))
    .expect("profile")
}

/// The reason and message of the profile's Ready condition.
async fn ready(c: &Cluster, name: &str) -> Option<(String, String, String)> {
    let status = c.profiles().get(name).await.ok()?.status?;
    let ready = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((ready.status, ready.reason, ready.message))
}

async fn wait_held_by(c: &Cluster, name: &str, holder: &str) {
    let what = format!("{name} held by {holder}");
    let message = c
        .eventually(60, &what, || async {
            let (status, reason, message) = ready(c, name).await?;
            (status == "False" && reason == "TargetHeld" && message.contains(&format!("profile {holder}")))
                .then_some(message)
        })
        .await;
    assert!(message.contains("deployment shop"), "{message}");
}

async fn contract(c: &Cluster, profile: &str) -> Option<ConfigMap> {
    c.api::<ConfigMap>().get_opt(&format!("{profile}-perf")).await.expect("get contract")
}

async fn wait_contract(c: &Cluster, profile: &str) {
    c.eventually(60, &format!("{profile}'s contract published"), || async { contract(c, profile).await.map(|_| ()) })
        .await;
}

async fn retarget(c: &Cluster, name: &str, target: &str) {
    let patch = json!({"spec": {"targetRef": {"name": target}}});
    c.profiles().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("retarget");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_second_profile_on_a_target_waits_and_takes_over_when_the_holder_goes_or_moves() {
    let c = cluster().await;
    let _op = c.operator("replica-a");
    let create = |p: PerformanceProfile| {
        let profiles = c.profiles();
        async move { profiles.create(&PostParams::default(), &p).await.expect("create profile") }
    };
    create(bare(&c.namespace, "first", "shop", json!({}))).await;
    wait_contract(&c, "first").await;
    create(bare(&c.namespace, "second", "shop", json!({}))).await;
    wait_held_by(&c, "second", "first").await;
    assert!(contract(&c, "second").await.is_none(), "a held profile applied its contract");

    // The holder moves to another target: the waiting profile takes over at once (no resync in this test's time).
    retarget(&c, "first", "api").await;
    wait_contract(&c, "second").await;
    c.eventually(30, "second no longer held", || async {
        let (_, reason, _) = ready(&c, "second").await?;
        (reason != "TargetHeld").then_some(())
    })
    .await;

    // An older profile retargeted onto a target another one acts on does not take it.
    retarget(&c, "first", "shop").await;
    wait_held_by(&c, "first", "second").await;

    // The holder deleted: the waiting one takes over.
    c.profiles().delete("second", &DeleteParams::default()).await.expect("delete second");
    c.eventually(60, "first acting on shop again", || async {
        let (_, reason, _) = ready(&c, "first").await?;
        (reason != "TargetHeld").then_some(())
    })
    .await;
    let events = c.api::<k8s_openapi::api::events::v1::Event>().list(&Default::default()).await.expect("events");
    let warned = events.items.iter().any(|e| {
        e.type_.as_deref() == Some("Warning") && e.note.as_deref().is_some_and(|n| n.starts_with("TargetHeld:"))
    });
    assert!(warned, "no Warning event named the held target");
}

const OLD: &str = "registry.example/shop:1";
const NEW: &str = "registry.example/shop:2";

async fn set_suspend(c: &Cluster, suspend: bool) {
    let patch = json!({"spec": {"suspend": suspend}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("suspend");
}

async fn phase(c: &Cluster) -> Option<(String, CanaryPhase)> {
    let status = c.profiles().get("shop").await.ok()?.status?;
    Some((status.phase?, status.canary?.phase))
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_suspended_profile_applies_nothing_freezes_its_canary_and_resumes_where_it_was() {
    let c = cluster().await;
    let deployments: Api<Deployment> = c.api();
    create_app(&deployments, "shop", OLD, 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    // A Prometheus never asked here: the run is suspended before its first analysis (stepInterval 5m).
    let canary = json!({"canary": {"stages": [50, 100], "stepInterval": "5m", "progressDeadline": "10m",
        "routing": {"canaryPort": 8080}, "analysis": {"prometheus": "http://127.0.0.1:9"}}});
    c.profiles().create(&PostParams::default(), &bare(&c.namespace, "shop", "shop", canary)).await.expect("create");
    c.eventually(90, "the primary serving", || async { (phase(&c).await?.1 == CanaryPhase::Idle).then_some(()) }).await;

    // Suspended at rest: drift is not corrected, a new template starts no run.
    set_suspend(&c, true).await;
    c.eventually(30, "phase Suspended", || async { (phase(&c).await?.0 == "Suspended").then_some(()) }).await;
    c.api::<ConfigMap>().delete("shop-perf", &DeleteParams::default()).await.expect("delete the contract");
    set_image(&deployments, "shop", NEW).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(contract(&c, "shop").await.is_none(), "a suspended profile put its contract back");
    assert_eq!(phase(&c).await.map(|p| p.1), Some(CanaryPhase::Idle), "a suspended profile started a run");
    assert_eq!(replicas_and_image(&deployments, "shop-canary").await.map(|r| r.0).unwrap_or(0), 0);

    // Resumed: the contract is back and the run starts; suspended again mid-run, the run stays where it is.
    set_suspend(&c, false).await;
    wait_contract(&c, "shop").await;
    let running = |p: CanaryPhase| matches!(p, CanaryPhase::WaitingForPods | CanaryPhase::Progressing);
    c.eventually(60, "a run under way", || async { running(phase(&c).await?.1).then_some(()) }).await;
    set_suspend(&c, true).await;
    c.eventually(30, "phase Suspended mid-run", || async { (phase(&c).await?.0 == "Suspended").then_some(()) }).await;
    let frozen = c.profiles().get("shop").await.expect("profile").status.and_then(|s| s.canary).expect("canary");
    assert!(frozen.deadline.is_none(), "a suspended run's deadline still counts: {:?}", frozen.deadline);
    let canary_pods = replicas_and_image(&deployments, "shop-canary").await.map(|r| r.0);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let still = c.profiles().get("shop").await.expect("profile").status.and_then(|s| s.canary).expect("canary");
    assert_eq!((still.phase, still.stage_index, still.weight), (frozen.phase, frozen.stage_index, frozen.weight));
    assert_eq!(replicas_and_image(&deployments, "shop-canary").await.map(|r| r.0), canary_pods);

    set_suspend(&c, false).await;
    let resumed = c
        .eventually(30, "the run resumed with a deadline", || async {
            let status = c.profiles().get("shop").await.ok()?.status?;
            let canary = status.canary?;
            (status.phase.as_deref() != Some("Suspended") && canary.deadline.is_some()).then_some(canary)
        })
        .await;
    assert_eq!(resumed.run_id, frozen.run_id, "resuming started another run");
    assert!(running(resumed.phase), "{:?}", resumed.phase);
}
