//! Rate limits enforced by Envoy Gateway, against the suite's API server with Envoy Gateway's own
//! BackendTrafficPolicy CRD (v1.9.1, from its Go module: its schema and CEL rules judge what the operator sends),
//! under the chart's RBAC. The test plays Envoy Gateway's controller, writing the policy's status as it does. The
//! policy follows the limits, Envoy Gateway's verdict reaches `RateLimitReady`, a policy its rules refuse is reported
//! and not sent again, and the policy goes when enforcement goes back to the contract and with the profile.

use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use perf_e2e::{Cluster, audit, cluster, kubectl};
use serde_json::{Value, json};

const CRD: &str = "backendtrafficpolicies.gateway.envoyproxy.io";
const POLICY: &str = "quotes-ratelimit";

fn policies(c: &Cluster) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.envoyproxy.io", "v1alpha1", "BackendTrafficPolicy");
    Api::namespaced_with(
        c.client.clone(),
        &c.namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "backendtrafficpolicies"),
    )
}

fn rate_limit(routes: &[(&str, u32)], enforcement: Value) -> Value {
    let routes: Vec<Value> =
        routes.iter().map(|(r, n)| json!({"route": r, "requestsPerSecond": n, "burst": n})).collect();
    json!({"routes": routes, "enforcement": enforcement})
}

fn eg() -> Value {
    json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "quotes"}})
}

/// Replaces the whole `rateLimit` section (a merge patch would keep the enforcement fields left out).
async fn set_rate_limit(c: &Cluster, rate_limit: Value) {
    let mut profile = c.profiles().get("quotes").await.expect("the profile");
    profile.spec.rate_limit = Some(serde_json::from_value(rate_limit).expect("rateLimit"));
    c.profiles().replace("quotes", &PostParams::default(), &profile).await.expect("replace the profile");
}

/// Envoy Gateway's verdict on the policy's current generation, as its controller writes it.
async fn gateway_says(c: &Cluster, accepted: bool, reason: &str, message: &str) {
    let api = policies(c);
    let live = api.get(POLICY).await.expect("the policy");
    let status = json!({"status": {"ancestors": [{
        "ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg", "namespace": c.namespace},
        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
        "conditions": [{"type": "Accepted", "status": if accepted { "True" } else { "False" }, "reason": reason,
            "message": message, "observedGeneration": live.metadata.generation, "lastTransitionTime": "2026-12-07T00:00:00Z"}]
    }]}});
    api.patch_status(POLICY, &PatchParams::default(), &Patch::Merge(&status)).await.expect("write the policy's status");
    nudge(c).await;
}

/// A change of the profile's metadata starts a round at once (the operator does not watch the policies).
async fn nudge(c: &Cluster) {
    let patch = json!({"metadata": {"annotations": {"e2e/nudge": perf_e2e::random_hex(4)}}});
    c.profiles().patch("quotes", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("nudge");
}

async fn reason_is(c: &Cluster, status: &str, reason: &str) -> String {
    let what = format!("RateLimitReady {status} {reason}");
    c.eventually(60, &what, || async {
        let p = c.profiles().get("quotes").await.ok()?;
        let cond = p.status?.conditions.into_iter().find(|c| c.type_ == "RateLimitReady")?;
        (cond.status == status && cond.reason == reason).then_some(cond.message)
    })
    .await
}

async fn rules(c: &Cluster) -> Vec<Value> {
    let live = policies(c).get(POLICY).await.expect("the policy");
    live.data["spec"]["rateLimit"]["local"]["rules"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn envoy_gateway_enforces_the_limits_reports_back_and_goes_with_the_profile() {
    let c = cluster().await;
    let file = perf_e2e::env_path("PERF_ENVOY_GATEWAY_CRD");
    let (ok, out, err) = kubectl(&["apply", "--server-side", "-f", file.to_str().expect("utf-8")]);
    assert!(ok, "Envoy Gateway's CRD was refused: {out}{err}");
    let (ok, _, err) = kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{CRD}")]);
    assert!(ok, "{err}");
    let _op = c.operator("replica-a");
    let profile: perf_operator_api::PerformanceProfile = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "quotes", "namespace": c.namespace},
        "spec": {"targetRef": {"name": "quotes"}, "rateLimit": rate_limit(&[("/", 50), ("/api", 20)], eg())}
    }))
    .expect("profile");
    let created = c.profiles().create(&PostParams::default(), &profile).await.expect("create the profile");

    // Applied, accepted by Envoy Gateway's schema, owned by the profile; waiting for the gateway's verdict.
    let api = policies(&c);
    let live =
        c.eventually(60, "the BackendTrafficPolicy", || async { api.get_opt(POLICY).await.ok().flatten() }).await;
    assert_eq!(live.owner_references().first().map(|o| o.uid.clone()), created.uid());
    assert_eq!(live.data["spec"]["targetRefs"][0]["name"], "quotes");
    let limits: Vec<Value> = rules(&c).await.iter().map(|r| r["limit"].clone()).collect();
    assert_eq!(limits, [json!({"requests": 50, "unit": "Second"}), json!({"requests": 20, "unit": "Second"})]);
    reason_is(&c, "False", "WaitingForGateway").await;
    gateway_says(&c, true, "Accepted", "Policy has been accepted.").await;
    reason_is(&c, "True", "Enforced").await;
    let status =
        c.profiles().get("quotes").await.expect("profile").status.expect("status").rate_limit.expect("rateLimit");
    assert_eq!(status.object.as_deref(), Some("BackendTrafficPolicy/quotes-ratelimit"));

    // New limits: the policy follows, and waits for the gateway's verdict on the new version.
    set_rate_limit(
        &c,
        rate_limit(
            &[("/", 50), ("/api", 10)],
            json!({"mode": "envoyGateway", "window": "Minute",
        "envoyGateway": {"httpRoute": "quotes"}}),
        ),
    )
    .await;
    c.eventually(60, "the policy's new limits", || async {
        (rules(&c).await.get(1)?["limit"] == json!({"requests": 600, "unit": "Minute"})).then_some(())
    })
    .await;
    reason_is(&c, "False", "WaitingForGateway").await;
    gateway_says(&c, false, "Invalid", "RateLimit: enable Ratelimit in the EnvoyGateway config").await;
    let message = reason_is(&c, "False", "NotAccepted").await;
    assert!(message.contains("Gateway eg: Invalid: RateLimit"), "{message}");

    // Nine routes right under "/": ten selectors in its rule, which Envoy Gateway's schema refuses. Reported, and not
    // sent again while the rendering stays the same.
    let crowded: Vec<String> = (0..9).map(|i| format!("/n{i}")).collect();
    let mut routes: Vec<(&str, u32)> = vec![("/", 50)];
    routes.extend(crowded.iter().map(|r| (r.as_str(), 5)));
    set_rate_limit(&c, rate_limit(&routes, eg())).await;
    let message = reason_is(&c, "False", "Refused").await;
    assert!(message.contains("clientSelectors"), "{message}");
    let window = audit::Window::open();
    // A spec change that renders the same policy: a round runs (observedGeneration moves) and sends nothing.
    let same = json!({"spec": {"rateLimit": {"prometheus": "http://prometheus.invalid:9090"}}});
    c.profiles().patch("quotes", &PatchParams::default(), &Patch::Merge(&same)).await.expect("patch");
    let generation = c.profiles().get("quotes").await.expect("profile").metadata.generation;
    c.eventually(60, "a round of the new generation", || async {
        let p = c.profiles().get("quotes").await.ok()?;
        (p.status?.observed_generation == generation).then_some(())
    })
    .await;
    reason_is(&c, "False", "Refused").await;
    if let Some(window) = window {
        let sent: Vec<String> = window
            .events()
            .iter()
            .filter(|e| e.object_ref.as_ref().is_some_and(|o| o.resource == "backendtrafficpolicies"))
            .filter(|e| e.verb == "patch")
            .map(|e| e.describe())
            .collect();
        assert!(sent.is_empty(), "a refused policy was sent again: {sent:?}");
    }

    // Back to the contract: the policy goes; the limits stay published for the app.
    set_rate_limit(&c, rate_limit(&[("/", 50)], json!({"mode": "contract"}))).await;
    c.eventually(60, "the policy deleted", || async { api.get_opt(POLICY).await.ok()?.is_none().then_some(()) }).await;
    reason_is(&c, "True", "Published").await;

    // Enforced again, then the profile deleted: the garbage collector takes the policy with it.
    set_rate_limit(&c, rate_limit(&[("/", 50)], eg())).await;
    c.eventually(60, "the policy again", || async { api.get_opt(POLICY).await.ok().flatten() }).await;
    c.profiles().delete("quotes", &DeleteParams::default()).await.expect("delete the profile");
    c.eventually(90, "the policy gone with the profile", || async {
        api.get_opt(POLICY).await.ok()?.is_none().then_some(())
    })
    .await;
}
