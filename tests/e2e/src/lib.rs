//! Helpers of the end-to-end suite: a cluster from KUBECONFIG, the CRD installed, a random labelled namespace per
//! test, and the controller running in the test process.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use perf_operator::telemetry::Metrics;
use perf_operator_api::PerformanceProfile;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// A test namespace with the operator running; the namespace is deleted on drop.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    controller: tokio::task::JoinHandle<()>,
}

/// The cluster of KUBECONFIG; these tests are `#[ignore]`d and only run on purpose, so a missing cluster fails.
pub async fn cluster() -> Cluster {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "e2e tests need KUBECONFIG (see README: End-to-end tests on kind)"
    );
    let client = Client::try_default().await.expect("KUBECONFIG set but no cluster reachable");
    install_crd(&client).await;
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("randomness");
    let namespace = format!("perf-e2e-{}", hex::encode(bytes));
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {"perf-operator-e2e": "true"}}
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let run = perf_operator::controller::run(
        client.clone(),
        metrics,
        Arc::new(AtomicBool::new(false)),
        std::future::pending(),
    );
    let controller = tokio::spawn(async move {
        if let Err(e) = run.await {
            eprintln!("e2e: controller stopped: {e}");
        }
    });
    Cluster { client, namespace, controller }
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = PerformanceProfile::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(&name, &PatchParams::apply("perf-e2e").force(), &Patch::Apply(&crd)).await.expect("apply CRD");
    for _ in 0..60 {
        let established = crds
            .get(&name)
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("CRD {name} not established within 60 s");
}

impl Cluster {
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Polls `check` every second until it returns Some, or panics after `secs` with `what`.
    pub async fn eventually<T, F, Fut>(&self, secs: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        for _ in 0..secs {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("timed out after {secs} s waiting for {what}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.controller.abort();
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        // Best effort: the namespace is labelled perf-operator-e2e=true for manual clean-up too.
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    let _ = Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await;
                });
            }
        });
    }
}
