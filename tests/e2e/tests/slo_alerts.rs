//! The SLO's PrometheusRule against the real API server, under the chart's RBAC: with no Prometheus Operator CRD
//! the profile stays Ready and says so (reads only, no refused write per round); once the Prometheus Operator's
//! own PrometheusRule CRD is installed (its schema validates the rule) the rule is applied, owned by the profile
//! and labelled for a ruleSelector; turning alerts off deletes it.

use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use perf_e2e::{cluster, kubectl};
use serde_json::json;

const CRD: &str = "prometheusrules.monitoring.coreos.com";

/// Deletes the CRD this test installed, however the test ends.
struct InstalledCrd;

impl Drop for InstalledCrd {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "crd", CRD, "--ignore-not-found", "--wait=false"]);
    }
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_slo_rule_follows_the_profile_and_the_cluster() {
    let c = cluster().await;
    let _op = c.operator("replica-a");
    let already_served = kubectl(&["get", "crd", CRD]).0;
    let spec = json!({"slo": {"p99LatencyMs": 150, "errorRatePercent": 0.1,
        "alerts": {"ruleLabels": {"release": "prometheus"}, "alertLabels": {"team": "risk"}}}});
    let profile = perf_e2e::fixtures::profile(&c.namespace, "shop", spec);
    let created = c.profiles().create(&PostParams::default(), &profile).await.expect("create profile");
    let uid = created.uid().expect("uid");

    let _crd = if already_served {
        None
    } else {
        c.eventually(60, "AlertsReady saying the CRD is missing", || async {
            let (status, reason) = c.condition("shop", "AlertsReady").await?;
            (status == "True" && reason == "PrometheusRuleCrdMissing").then_some(())
        })
        .await;
        // The Prometheus Operator's own CRD (tests/e2e/setup.sh fetched it): its schema checks what the operator sends.
        let file =
            perf_e2e::env_path("PERF_PROMETHEUS_OPERATOR_CRDS").join("monitoring.coreos.com_prometheusrules.yaml");
        let (ok, out, err) = kubectl(&["apply", "--server-side", "-f", file.to_str().expect("utf-8")]);
        assert!(ok, "the PrometheusRule CRD was refused: {out}{err}");
        let (ok, _, err) = kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{CRD}")]);
        assert!(ok, "{err}");
        Some(InstalledCrd)
    };

    // A change of the profile's metadata wakes the operator at once; it believes "not served" for 30 s after it last
    // saw it (one LIST per half minute, not one per profile and round), so the rule lands within that.
    let nudge = json!({"metadata": {"annotations": {"e2e/nudge": "1"}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&nudge)).await.expect("nudge");
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule");
    let rules: Api<DynamicObject> = Api::namespaced_with(
        c.client.clone(),
        &c.namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "prometheusrules"),
    );
    let rule = c
        .eventually(90, "the PrometheusRule applied", || async { rules.get_opt("shop-slo").await.ok().flatten() })
        .await;
    c.eventually(90, "AlertsReady=True Applied", || async {
        let (status, reason) = c.condition("shop", "AlertsReady").await?;
        (status == "True" && reason == "Applied").then_some(())
    })
    .await;
    let owner = rule.owner_references().first().cloned().expect("an owner reference");
    assert_eq!((owner.uid.as_str(), owner.controller), (uid.as_str(), Some(true)));
    assert_eq!(rule.labels().get("release").map(String::as_str), Some("prometheus"));
    let groups = &rule.data["spec"]["groups"];
    let rules_of_group = groups[0]["rules"].as_array().expect("rules");
    let alerts: Vec<&str> = rules_of_group.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(alerts, ["PerfErrorBudgetFastBurn", "PerfErrorBudgetSlowBurn", "PerfLatencyObjectiveMissed"]);
    assert!(rules_of_group.iter().all(|r| r["labels"]["namespace"] == c.namespace.as_str()));

    // Alerts turned off: the rule goes.
    let off = json!({"spec": {"slo": {"alerts": {"enabled": false}}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&off)).await.expect("turn alerts off");
    c.eventually(60, "the PrometheusRule deleted", || async {
        rules.get_opt("shop-slo").await.ok()?.is_none().then_some(())
    })
    .await;
    c.eventually(60, "AlertsReady=True Disabled", || async {
        let (status, reason) = c.condition("shop", "AlertsReady").await?;
        (status == "True" && reason == "Disabled").then_some(())
    })
    .await;
}
