//! A profile that becomes invalid mid-life keeps every component's records in status (the server-side apply of
//! status must not drop them), and fixing it resumes where it was.
//!
//! The API server refuses an invalid spec, so a stored profile turns invalid only when the rules tighten after
//! it was stored (an older CRD served while the operator is newer, as during an upgrade). The test loosens the
//! CRD for a moment to store one. It is the only test of this binary: test binaries run one after another, so no
//! other test sees the loosened CRD.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{clickhouse_database, clickhouse_indexes, create_app, profile, pruned_index_and_canary};
use perf_e2e::{cluster, kubelet};
use serde_json::{Value, json};

/// Removes every CEL rule from a schema (the stand-in for an older, looser CRD).
fn strip_cel(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_cel);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_cel),
        _ => {}
    }
}

async fn apply_crd(crds: &Api<CustomResourceDefinition>, crd: &Value) {
    // As `kubectl apply --server-side` (tests/e2e/setup.sh): the same field manager, so the CRD's fields are not
    // left owned by this test and a user's next `kubectl apply --server-side -f crds/` meets no conflict.
    let params = PatchParams::apply("kubectl").force();
    crds.patch("performanceprofiles.perf.operator.dev", &params, &Patch::Apply(crd)).await.expect("apply CRD");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn an_invalid_spec_keeps_other_components_records_and_a_fix_resumes() {
    let c = cluster().await;
    let db = clickhouse_database(&c.namespace).await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    let spec = pruned_index_and_canary(&db);
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("create");
    c.wait_condition("shop", "Ready", "True", 120).await;
    let before = c
        .eventually(60, "ClickHouse records and a settled canary", || async {
            let status = c.profiles().get("shop").await.ok()?.status?;
            let managed = !status.clickhouse.as_ref()?.managed.is_empty();
            let settled = status.canary.as_ref()?.phase == perf_operator_api::status::CanaryPhase::Idle;
            (managed && settled).then_some(status)
        })
        .await;

    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    let strict = serde_json::to_value(perf_operator_api::crd()).expect("crd");
    let mut loose = strict.clone();
    strip_cel(&mut loose);
    apply_crd(&crds, &loose).await;
    // The API server swaps a CRD's handler asynchronously: retry until the loosened one is serving.
    let invalid = json!({"spec": {"canary": {"stages": [10, 5, 100]}}});
    let stored = c
        .eventually(30, "the loosened CRD serving", || async {
            c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&invalid)).await.ok()
        })
        .await;
    apply_crd(&crds, &strict).await;
    let stages = stored.spec.canary.map(|c| c.stages);
    assert_eq!(stages, Some(vec![10, 5, 100]), "the invalid stages were not stored");
    c.eventually(30, "the strict CRD serving again", || async {
        let dry = PatchParams { dry_run: true, ..PatchParams::default() };
        // The stored invalid value passes again by ratcheting; a new invalid value must be refused.
        let other = json!({"spec": {"canary": {"stages": [50, 20, 100]}}});
        c.profiles().patch("shop", &dry, &Patch::Merge(&other)).await.is_err().then_some(())
    })
    .await;

    c.eventually(60, "Ready=False with reason InvalidSpec", || async {
        let (status, reason) = c.condition("shop", "Ready").await?;
        (status == "False" && reason == "InvalidSpec").then_some(())
    })
    .await;
    let during = c.profiles().get("shop").await.expect("profile").status.expect("status");
    assert_eq!(during.clickhouse.as_ref().map(|s| &s.managed), before.clickhouse.as_ref().map(|s| &s.managed));
    assert_eq!(during.canary, before.canary, "an invalid spec dropped the canary run");
    assert_eq!(during.cache, before.cache, "an invalid spec dropped the cache status");
    assert!(clickhouse_indexes(&db).await.contains(&"i_model".to_string()));

    let fixed = json!({"spec": {"canary": {"stages": [10, 25, 50, 100]}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&fixed)).await.expect("fix");
    c.wait_condition("shop", "Ready", "True", 120).await;
    let after = c.profiles().get("shop").await.expect("profile").status.expect("status");
    assert_eq!(after.clickhouse.map(|s| s.managed), before.clickhouse.map(|s| s.managed));
    let (run_before, run_after) = (before.canary.expect("canary"), after.canary.expect("canary"));
    assert_eq!(run_after.stable_id, run_before.stable_id, "fixing the spec started the canary over");
    let target = c.api::<Deployment>().get("shop").await.expect("target");
    assert_eq!(target.spec.and_then(|s| s.replicas), Some(0), "the primary no longer serves");
}
