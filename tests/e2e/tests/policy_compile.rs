//! A tenant's policy component too costly to compile, against the real API server with the operator as its own
//! process. The operator compiles tenants' components in a worker process (its own binary) with a memory limit,
//! here 24 MiB (`--policy-compile-memory-mib`), so the largest frame shape the load bounds accept (about 70 MiB to
//! compile, `policies/host/tests/fixtures/shape-frames.wasm`) fails in the worker: the operator lives on, well
//! inside the memory a pod needs beside a worker, and records the refusal in the profile's status. An operator
//! started afresh (as after an OOM kill) refuses the component from that record without compiling it again; a new
//! pin is a new component, loaded and deciding, and the record goes.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::{Cluster, Operator, cluster, kubelet, repo_root};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const WORKER_MIB: &str = "24";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("policies/host/tests/fixtures").join(name)).expect("a host fixture")
}

fn config_map(name: &str, component: Vec<u8>) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ConfigMap");
    cm.binary_data = Some(BTreeMap::from([("policy.wasm".into(), ByteString(component))]));
    cm
}

/// `status.policies.cache.refused`.
async fn refused(c: &Cluster) -> Value {
    let p = c.profiles().get("shop").await.expect("profile");
    let cache = p.status.and_then(|s| s.policies?.cache);
    serde_json::to_value(cache.and_then(|c| c.evaluation.refused)).unwrap_or_default()
}

async fn policies_message(c: &Cluster) -> Option<(String, String)> {
    let p = c.profiles().get("shop").await.ok()?;
    let cond = p.status?.conditions.into_iter().find(|c| c.type_ == "PoliciesReady")?;
    Some((cond.status, cond.message))
}

fn start(c: &Cluster, holder: &str) -> Operator {
    Operator::start_with(&c.namespace, holder, &["--policy-compile-memory-mib", WORKER_MIB])
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_component_too_costly_to_compile_fails_in_its_worker_and_is_never_compiled_again() {
    let c = cluster().await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 1).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let mut op = start(&c, "replica-a");
    let costly = fixture("shape-frames.wasm");
    let pin = hex::encode(Sha256::digest(&costly));
    c.api::<ConfigMap>().create(&PostParams::default(), &config_map("costly", costly)).await.expect("ConfigMap");
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL is set by tests/run.sh");
    let spec = json!({"cache": {
        "redis": {"external": {"address": redis}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
        "policy": {"configMap": {"name": "costly", "key": "policy.wasm", "sha256": pin}, "onFailure": "UseSpec"}
    }});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("profile");

    let record = c
        .eventually(120, "status.policies.cache.refused", || async {
            let r = refused(&c).await;
            r.is_object().then_some(r)
        })
        .await;
    assert_eq!((record["sha256"].as_str(), record["category"].as_str()), (Some(pin.as_str()), Some("load")));
    let message = record["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("needs more than the {WORKER_MIB} MiB")), "{message}");
    assert!(op.running(), "the operator lives on");
    // The worker's memory was its own: the operator stays well inside what the chart's pod limit (512 MiB) leaves
    // beside a worker at its default limit (256 MiB).
    let peak = op.peak_rss_kib();
    assert!(peak > 0 && peak < 256 << 10, "the operator's peak is {peak} KiB");
    assert!(op.log().contains("policy component not compiled"), "the first process tried it");

    // A fresh process (as after an OOM kill): refused from the record, not compiled.
    op.kill();
    let mut op = start(&c, "replica-b");
    let (status, message) = c
        .eventually(120, "PoliciesReady from the remembered refusal", || async {
            policies_message(&c).await.filter(|(_, m)| m.contains("remembered in status"))
        })
        .await;
    assert_eq!(status, "False", "{message}");
    assert_eq!(refused(&c).await, record, "the record keeps its first refusal");
    assert!(op.running());
    assert!(!op.log().contains("policy component not compiled"), "the second process compiled it:\n{}", op.log());

    // A new pin is a new component: loaded, deciding, and the record gone.
    let good = fixture("hostile.wasm");
    let good_pin = hex::encode(Sha256::digest(&good));
    c.api::<ConfigMap>().create(&PostParams::default(), &config_map("good", good)).await.expect("ConfigMap");
    let patch = json!({"spec": {"cache": {"policy": {"configMap": {"name": "good", "sha256": good_pin}}}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch pin");
    c.wait_condition("shop", "PoliciesReady", "True", 120).await;
    assert!(refused(&c).await.is_null(), "the refusal of the old pin is gone");
}
