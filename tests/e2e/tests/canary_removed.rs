//! A canary section removed from a live profile (as a Git revert would), on the real API server: the target gets
//! its pods back before anything else happens, then the canary's copies go and its Services select the target's
//! own pods; at rest after a promotion and in the middle of a run. Before, the target stayed at zero replicas and a
//! later deletion of the profile took the primary, and so the service, with it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile, replicas_and_image, set_image};
use perf_e2e::{Cluster, cluster, kubelet};
use perf_operator_api::status::CanaryPhase;
use serde_json::json;

const TARGET: &str = "shop";
const OLD: &str = "registry.example/shop:1";
const NEW: &str = "registry.example/shop:2";

/// A profile whose canary judges on a Prometheus that is never asked here (no run reaches an analysis).
async fn with_canary(c: &Cluster) -> (kubelet::Kubelet, perf_e2e::Operator) {
    create_app(&c.api(), TARGET, OLD, 3).await;
    let kubelet = kubelet::run(c.api::<Pod>());
    let op = c.operator("replica-a");
    let spec = json!({"canary": {"stages": [50, 100], "stepInterval": "30s", "progressDeadline": "5m",
        "routing": {"canaryPort": 8080}, "analysis": {"prometheus": "http://127.0.0.1:9"}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, spec)).await.expect("create");
    c.eventually(90, "the primary serving and the target at zero", || async {
        let idle = c.profiles().get(TARGET).await.ok()?.status?.canary?.phase == CanaryPhase::Idle;
        let target = replicas_and_image(&c.api(), TARGET).await?.0;
        (idle && target == 0).then_some(())
    })
    .await;
    (kubelet, op)
}

async fn remove_canary(c: &Cluster) {
    let patch = json!({"spec": {"canary": null}});
    c.profiles().patch(TARGET, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("remove canary");
}

/// Waits until the copies are gone; returns the target's replicas and image then.
async fn wait_retired(c: &Cluster) -> (i32, String) {
    let deployments: Api<Deployment> = c.api();
    c.eventually(90, "the primary and canary retired", || async {
        let primary = deployments.get_opt("shop-primary").await.ok()?;
        let canary = deployments.get_opt("shop-canary").await.ok()?;
        (primary.is_none() && canary.is_none()).then_some(())
    })
    .await;
    replicas_and_image(&deployments, TARGET).await.expect("the target")
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn removing_the_canary_at_rest_gives_the_target_its_pods_back_then_retires_the_copies() {
    let c = cluster().await;
    let (_kubelet, _op) = with_canary(&c).await;
    remove_canary(&c).await;
    // Never a moment with neither side serving: while the primary exists the target only grows.
    let deployments: Api<Deployment> = c.api();
    let mut seen_primary_gone_before_target = false;
    for _ in 0..120 {
        let primary = deployments.get_opt("shop-primary").await.expect("get primary");
        let target = deployments.get_opt(TARGET).await.expect("get target").expect("target");
        let ready = target.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        if primary.is_none() {
            seen_primary_gone_before_target = ready < 3;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(!seen_primary_gone_before_target, "the primary went before the target's pods were ready");
    assert_eq!(wait_retired(&c).await, (3, OLD.to_string()));
    // The canary-only Service stays (the profile owns it) and reaches the target's pods now.
    let service = c.api::<Service>().get("shop-canary").await.expect("the canary Service");
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    assert_eq!(selector, [("app".to_string(), TARGET.to_string())].into(), "{selector:?}");
    let reasons = event_reasons(&c).await;
    assert!(
        reasons.contains(&"CanaryRetiring".to_string()) && reasons.contains(&"CanaryRetired".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn removing_the_canary_mid_run_hands_the_new_template_its_pods() {
    let c = cluster().await;
    let (_kubelet, _op) = with_canary(&c).await;
    set_image(&c.api::<Deployment>(), TARGET, NEW).await;
    c.eventually(60, "a run under way", || async {
        let phase = c.profiles().get(TARGET).await.ok()?.status?.canary?.phase;
        matches!(phase, CanaryPhase::WaitingForPods | CanaryPhase::Progressing).then_some(())
    })
    .await;
    remove_canary(&c).await;
    // The target carries the template it was given: with the canary gone, it is what runs.
    assert_eq!(wait_retired(&c).await, (3, NEW.to_string()));
    let profile = c.profiles().get(TARGET).await.expect("profile");
    assert!(profile.status.and_then(|s| s.canary).is_none(), "status still shows a canary");
}

async fn event_reasons(c: &Cluster) -> Vec<String> {
    let events = c.api::<k8s_openapi::api::events::v1::Event>();
    let list = events.list(&Default::default()).await.expect("events");
    list.items.into_iter().filter_map(|e| e.reason).collect()
}
