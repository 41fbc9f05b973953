//! Leader election between two operator processes on the real API server: only the leader writes, both report
//! `/readyz` (so a 2-replica rolling update completes), and `kill -9` of the leader hands an ongoing canary run
//! to the other replica within the lease duration, which finishes it without a double step. A leader cut from the
//! API server stops by its renew deadline, before the lease expires, and writes nothing once its access is back.

#[path = "../../../operator/canary/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::operator::{RELEASE_NAMESPACE, lease_name};
use perf_e2e::proxy::{Proxy, api_server};
use perf_e2e::{Cluster, audit, cluster, kubelet};
use perf_operator_api::status::CanaryPhase;
use prometheus::{Behaviour, PrometheusFixture};
use serde_json::json;
use std::time::{Duration, Instant};

/// The replica named in the test namespace's Lease, if any.
async fn holder(c: &Cluster) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), RELEASE_NAMESPACE);
    leases.get_opt(&lease_name(&c.namespace)).await.ok()??.spec?.holder_identity
}

/// The canary's (stage index, phase), polled.
async fn canary(c: &Cluster) -> Option<(Option<u32>, CanaryPhase)> {
    let status = c.profiles().get("shop").await.ok()?.status?.canary?;
    Some((status.stage_index, status.phase))
}

/// The profile `shop` with a canary judged on `prom` (4 s steps), once its primary serves.
async fn create_serving(c: &Cluster, prom: &PrometheusFixture) {
    let spec = json!({"canary": {"stages": [10, 25, 50, 100], "stepInterval": "4s", "progressDeadline": "3m",
        "analysis": {"prometheus": prom.url, "minRequests": 10}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("create");
    c.eventually(60, "the primary serving", || async {
        matches!(canary(c).await?.1, CanaryPhase::Idle | CanaryPhase::Succeeded).then_some(())
    })
    .await;
}

/// A new pod template for the target: it starts a run.
async fn new_image(c: &Cluster) {
    let image =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/shop:2"}]}}}});
    c.api::<Deployment>().patch("shop", &PatchParams::default(), &Patch::Strategic(&image)).await.expect("new image");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn one_leader_writes_a_killed_leader_is_replaced_and_both_replicas_are_ready() {
    let c = cluster().await;
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, "shop", Behaviour::healthy()).await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 4).await;
    let _kubelet = kubelet::run(c.api::<Pod>());

    let mut a = c.operator("replica-a");
    c.eventually(30, "replica-a leading", || async { (holder(&c).await? == "replica-a").then_some(()) }).await;
    let b = c.operator("replica-b");
    for op in [&a, &b] {
        c.eventually(30, &format!("/readyz of {} answering 200", op.holder), || async {
            (op.get("/readyz").await?.0 == 200).then_some(())
        })
        .await;
    }
    assert_eq!(a.metric("perf_operator_leader").await, Some(1.0), "the leader does not say so");
    assert_eq!(b.metric("perf_operator_leader").await, Some(0.0), "the standby claims to lead");
    // The standby's caches are warm before it leads.
    c.eventually(30, "the standby's caches listed", || async {
        (b.metric("perf_operator_caches_ready").await? == 1.0).then_some(())
    })
    .await;

    let window = audit::Window::open();
    create_serving(&c, &prom).await;

    // A new template starts a run; the leader dies in the middle of it.
    new_image(&c).await;
    let mut steps: Vec<(Instant, u32)> = Vec::new();
    let record = |steps: &mut Vec<(Instant, u32)>, stage: Option<u32>| {
        if let Some(s) = stage
            && steps.last().map(|(_, last)| *last) != Some(s)
        {
            steps.push((Instant::now(), s));
        }
    };
    c.eventually(90, "the run at its second stage", || async { canary(&c).await.filter(|(s, _)| *s >= Some(1)) }).await;
    record(&mut steps, Some(1));
    a.kill();
    let killed = Instant::now();
    let b_writes_before = window.as_ref().map(|w| w.writes_by_credential(&b.credential_id));
    c.eventually(20, "replica-b taking the lease", || async { (holder(&c).await? == "replica-b").then_some(()) }).await;
    assert!(killed.elapsed() < Duration::from_secs(6 + 8), "takeover took {:?}", killed.elapsed());

    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let (stage, phase) = canary(&c).await.unwrap_or((None, CanaryPhase::Idle));
        record(&mut steps, stage);
        if phase == CanaryPhase::Succeeded {
            break;
        }
        assert!(!matches!(phase, CanaryPhase::RolledBack | CanaryPhase::Failed), "the run ended {phase:?}");
        assert!(Instant::now() < deadline, "the run did not finish after the takeover: {phase:?} at {stage:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Only the leader wrote: the standby wrote nothing but the Lease until it took over.
    if let Some(before) = b_writes_before {
        let profile_writes: Vec<String> =
            before.iter().filter(|e| e.namespace() == c.namespace).map(|e| e.describe()).collect();
        assert!(profile_writes.is_empty(), "the standby wrote before it led: {profile_writes:?}");
    }
    // No double step: each stage follows the one before, one step interval apart at least.
    for pair in steps.windows(2) {
        let ((t0, s0), (t1, s1)) = (pair[0], pair[1]);
        assert_eq!(s1, s0 + 1, "a stage was skipped: {steps:?}");
        assert!(t1.duration_since(t0) >= Duration::from_secs(3), "two steps within one interval: {steps:?}");
    }
    let primary = c.api::<Deployment>().get("shop-primary").await.expect("primary");
    let image = primary.spec.and_then(|s| s.template.spec).map(|s| s.containers[0].image.clone());
    assert_eq!(image, Some(Some("registry.example/shop:2".into())), "the primary was not promoted");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_leader_cut_from_the_api_stops_by_its_renew_deadline_and_never_writes_after() {
    let c = cluster().await;
    let prom = PrometheusFixture::start().await;
    prom.serve(&c.namespace, "shop", Behaviour::healthy()).await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 4).await;
    let _kubelet = kubelet::run(c.api::<Pod>());

    // Replica a reaches the API server through a proxy the test can cut; b directly. A 6 s lease: a renews within
    // 4 s (the default two thirds) or stops.
    let proxy = Proxy::start(api_server()).await;
    let mut a = perf_e2e::Operator::start_via(&c.namespace, "replica-a", &[], Some(&proxy.url()));
    c.eventually(30, "replica-a leading", || async { (holder(&c).await? == "replica-a").then_some(()) }).await;
    let b = c.operator("replica-b");
    create_serving(&c, &prom).await;
    new_image(&c).await;
    c.eventually(90, "the run at its second stage", || async { canary(&c).await.filter(|(s, _)| *s >= Some(1)) }).await;

    // Cut a off mid-run; give its access back after its renew deadline has certainly passed (4 s after its last
    // renewal, which was before the cut), whether or not b leads yet.
    let window = audit::Window::open();
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(6)).await;
    proxy.restore();
    c.eventually(20, "replica-b taking the lease", || async { (holder(&c).await? == "replica-b").then_some(()) }).await;
    let mut exited = false;
    for _ in 0..60 {
        exited = !a.running();
        if exited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(exited, "replica-a still runs 15 s after it lost its lease");
    c.eventually(150, "the run finished by replica-b", || async {
        (canary(&c).await?.1 == CanaryPhase::Succeeded).then_some(())
    })
    .await;

    if let Some(window) = window {
        // Anything a wrote from the cut on came after its access was back, so after its renew deadline.
        let late: Vec<String> = window.writes_by_credential(&a.credential_id).iter().map(|e| e.describe()).collect();
        assert!(late.is_empty(), "replica-a wrote after it lost its lease: {late:?}");
        let by_b = window.writes_by_credential(&b.credential_id);
        assert!(by_b.iter().any(|e| e.namespace() == c.namespace), "replica-b did not take the run over");
    }
    assert!(a.log().contains("lease not renewed within"), "replica-a did not say why it stopped");
}
