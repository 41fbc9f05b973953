//! observe -> decide -> apply against an in-memory API server (kube-fake-client, with server-side apply and
//! status), on a test clock. Prometheus here is a real client pointed at a closed port: Prometheus is down. Runs
//! judged on a real Prometheus are in tests/prometheus.rs.

mod support;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, Patch, PatchParams};
use perf_canary::cli::send_command;
use perf_canary::{Health, Prometheus, finalize};
use perf_operator_api::{CanaryPhase, CheckVerdict};
use serde_json::json;
use std::time::Duration;
use support::*;

const ROLE: &str = "perf.operator.dev/role";

fn prometheus_down() -> Prometheus {
    Prometheus::new("http://127.0.0.1:9", Duration::from_millis(500)).unwrap()
}

/// A cluster where the operator has already set up the primary from `shop/web:1`.
async fn initialized(extra: Vec<serde_json::Value>) -> Cluster {
    let mut c = Cluster::with(profile("web", "1m"), "shop/web:1", extra).await;
    c.after(0, &prometheus_down()).await;
    let idle = c.after(1, &prometheus_down()).await;
    assert_eq!(idle.status.phase, CanaryPhase::Idle);
    c
}

fn target_hpa() -> serde_json::Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "web", "namespace": NS },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                          "target": { "type": "Utilization", "averageUtilization": 70 } } }]
        }
    })
}

#[tokio::test]
async fn first_sight_copies_the_target_into_the_primary_then_scales_the_target_to_zero() {
    let mut c = Cluster::with(profile("web", "1m"), "shop/web:1", vec![]).await;
    let first = c.after(0, &prometheus_down()).await;
    assert_eq!(first.status.phase, CanaryPhase::Initializing);
    assert_eq!((c.image("web-primary").await, c.replicas("web-primary").await), ("shop/web:1".to_string(), 3));
    assert_eq!(c.replicas("web").await, 3, "the target serves until the primary is ready");

    let idle = c.after(1, &prometheus_down()).await;
    assert_eq!(
        (idle.status.phase, idle.condition.status, idle.condition.health),
        (CanaryPhase::Idle, "True", Health::Ready)
    );
    assert_eq!(idle.events[0].reason, "Initialized");
    assert_eq!((c.replicas("web").await, c.replicas("web-canary").await), (0, 0));

    let primary = c.deployment("web-primary").await;
    let selector = primary.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
    assert_eq!((selector["app"].as_str(), selector[ROLE].as_str()), ("web", "primary"));
    let owner = &primary.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("PerformanceProfile", PROFILE, Some(true))
    );
}

#[tokio::test]
async fn an_hpa_on_the_target_is_cloned_for_the_primary_and_never_averages_canary_pods() {
    let mut c = initialized(vec![target_hpa()]).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.client.clone(), NS);
    let primary_hpa = hpas.get("web-primary").await.unwrap().spec.unwrap();
    assert_eq!(
        (primary_hpa.scale_target_ref.name.as_str(), primary_hpa.min_replicas, primary_hpa.max_replicas),
        ("web-primary", Some(2), 10)
    );
    assert_eq!(primary_hpa.metrics, hpas.get("web").await.unwrap().spec.unwrap().metrics);

    // The primary's HPA scales it to 6 (through /scale, as the HPA controller does).
    let scaled = json!({ "spec": { "replicas": 6 } });
    c.deployments().patch("web-primary", &PatchParams::default(), &Patch::Merge(&scaled)).await.unwrap();
    c.deploy("shop/web:2").await;
    let stage = c.after(1, &prometheus_down()).await.status;
    assert_eq!((stage.weight, stage.canary_replicas, stage.primary_replicas), (10, 1, 6));
    assert_eq!(stage.achieved_weight, Some(14), "1 canary pod next to 6 primary pods");
    assert_eq!(
        (c.replicas("web-canary").await, c.replicas("web-primary").await),
        (1, 6),
        "the operator never fights the HPA"
    );

    // The primary's selector (what its HPA averages over) excludes canary pods.
    let primary_selector = c.deployment("web-primary").await.spec.unwrap().selector.match_labels.unwrap();
    let canary_pod_labels = c.deployment("web-canary").await.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert!(primary_selector.iter().any(|(k, v)| canary_pod_labels.get(k) != Some(v)));
    // The original HPA is left alone; its target runs zero pods, so it cannot act on canary + primary pods.
    assert_eq!(hpas.get("web").await.unwrap().spec.unwrap().scale_target_ref.name, "web");
    assert_eq!(c.replicas("web").await, 0);

    send_command(&c.profiles(), PROFILE, "promote-full", c.now).await.unwrap();
    let promoting = c.after(1, &prometheus_down()).await.status;
    assert_eq!(promoting.phase, CanaryPhase::Promoting);
    assert_eq!((c.image("web-primary").await, c.replicas("web-primary").await), ("shop/web:2".to_string(), 6));
    let done = c.after(1, &prometheus_down()).await;
    assert_eq!((done.status.phase, done.status.weight), (CanaryPhase::Succeeded, 0));
    assert_eq!(c.replicas("web-canary").await, 0);
    assert_eq!(done.events.last().map(|e| e.reason), Some("Promoted"));
}

#[tokio::test]
async fn prometheus_down_holds_the_first_stage_then_the_deadline_scales_the_canary_to_zero() {
    let mut c = initialized(vec![]).await;
    c.deploy("shop/web:2").await;
    c.after(1, &prometheus_down()).await;
    let progressing = c.after(1, &prometheus_down()).await.status;
    assert_eq!((progressing.phase, c.replicas("web-canary").await), (CanaryPhase::Progressing, 1));

    let held = c.after(60, &prometheus_down()).await.status;
    assert_eq!((held.phase, held.stage.as_deref()), (CanaryPhase::Progressing, Some("1/4")));
    let analysis = &held.analyses[0];
    assert_eq!(analysis.verdict, CheckVerdict::NoData);
    assert!(analysis.checks[0].reason.as_deref().unwrap_or_default().contains("unreachable"), "{analysis:?}");

    let failed = c.after(60, &prometheus_down()).await;
    assert_eq!((failed.status.phase, failed.condition.reason), (CanaryPhase::Failed, "DeadlineExceeded"));
    assert_eq!(failed.condition.health, Health::Failed);
    assert_eq!((c.replicas("web-canary").await, c.image("web-primary").await), (0, "shop/web:1".to_string()));
    assert!(failed.events.iter().any(|e| e.reason == "DeadlineExceeded"));
}

#[tokio::test]
async fn abort_by_command_rolls_back_for_good_and_a_restart_changes_nothing() {
    let mut c = initialized(vec![]).await;
    c.deploy("shop/web:2").await;
    c.after(1, &prometheus_down()).await;
    send_command(&c.profiles(), PROFILE, "abort", c.now).await.unwrap();
    let aborted = c.after(1, &prometheus_down()).await.status;
    assert_eq!((aborted.phase, c.replicas("web-canary").await), (CanaryPhase::RolledBack, 0));
    assert_eq!(c.image("web-primary").await, "shop/web:1");
    // A restarted operator only has status and objects to go on: same decision, no new run.
    let again = c.after(3600, &prometheus_down()).await;
    assert_eq!((again.status.phase, again.events.len()), (CanaryPhase::RolledBack, 0));

    c.deploy("shop/web:3").await;
    let next = c.after(1, &prometheus_down()).await.status;
    assert_eq!((next.phase, next.weight), (CanaryPhase::WaitingForPods, 10));
}

#[tokio::test]
async fn finalize_gives_the_target_back_its_pods() {
    let c = initialized(vec![]).await;
    assert_eq!(c.replicas("web").await, 0);
    finalize(c.client.clone(), &c.profiles().get(PROFILE).await.unwrap()).await.unwrap();
    assert_eq!(c.replicas("web").await, 3);
}

/// Gateway API HTTPRoute as the test registers it with the in-memory API server (the operator itself uses
/// `DynamicObject`, so it needs no Gateway API types).
mod gateway {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
    #[kube(group = "gateway.networking.k8s.io", version = "v1", kind = "HTTPRoute", plural = "httproutes", namespaced)]
    pub struct HttpRouteSpec {
        #[serde(default, rename = "parentRefs")]
        pub parent_refs: Vec<serde_json::Value>,
        #[serde(default)]
        pub rules: Vec<serde_json::Value>,
    }
}

fn route() -> serde_json::Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": { "name": "web", "namespace": NS },
        "spec": {
            "parentRefs": [{ "name": "public" }],
            "rules": [{ "backendRefs": [
                { "name": "web-primary", "port": 8080, "weight": 100 },
                { "name": "web-canary", "port": 8080, "weight": 0 } ] }]
        }
    })
}

async fn backend_weights(c: &Cluster) -> (i64, i64, serde_json::Value) {
    let routes: Api<gateway::HTTPRoute> = Api::namespaced(c.client.clone(), NS);
    let live = routes.get("web").await.unwrap();
    let refs = &live.spec.rules[0]["backendRefs"];
    (refs[0]["weight"].as_i64().unwrap(), refs[1]["weight"].as_i64().unwrap(), json!(live.spec.parent_refs))
}

#[tokio::test]
async fn with_an_httproute_only_the_backend_weights_move() {
    let mut routed = profile("web", "1m");
    if let Some(canary) = routed.spec.canary.as_mut() {
        canary.routing.http_route = Some(perf_operator_api::HttpRouteRef { name: "web".into(), port: 8080 });
    }
    let builder_objects = vec![route()];
    let mut c = Cluster::with_resources::<gateway::HTTPRoute>(routed, "shop/web:1", builder_objects).await;
    c.after(0, &prometheus_down()).await;
    c.after(1, &prometheus_down()).await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(c.client.clone(), NS);
    let canary_selector = services.get("web-canary").await.unwrap().spec.unwrap().selector.unwrap();
    assert_eq!(canary_selector.get(ROLE).map(String::as_str), Some("canary"));

    c.deploy("shop/web:2").await;
    c.after(1, &prometheus_down()).await;
    assert_eq!(backend_weights(&c).await.0, 100, "no traffic before the canary pods are ready");
    let progressing = c.after(1, &prometheus_down()).await.status;
    assert_eq!((progressing.weight, progressing.achieved_weight, progressing.canary_replicas), (10, Some(10), 1));
    let (primary, canary, parents) = backend_weights(&c).await;
    assert_eq!((primary, canary), (90, 10));
    assert_eq!(parents, json!([{ "name": "public" }]), "the rest of the route is untouched");

    send_command(&c.profiles(), PROFILE, "promote-full", c.now).await.unwrap();
    c.after(1, &prometheus_down()).await;
    let done = c.after(1, &prometheus_down()).await.status;
    assert_eq!(done.phase, CanaryPhase::Succeeded);
    assert_eq!(backend_weights(&c).await.0, 100);
}
