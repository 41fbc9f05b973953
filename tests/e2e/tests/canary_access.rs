//! A canary judged on a Prometheus as users run it: Debian's Prometheus behind TLS (a private CA) and basic auth
//! (`--web.config.file`), reached through `canary.analysis.prometheusAccess` with the CA in a ConfigMap and the
//! credentials in a Secret of the profile's namespace. The operator runs as its own process under the chart's
//! ServiceAccount; everything asserted is what the API server holds.

#[path = "../../../operator/canary/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile, replicas_and_image, set_image};
use perf_e2e::{Cluster, cluster, kubelet};
use perf_operator_api::status::{CanaryPhase, CanaryStatus};
use prometheus::{Behaviour, PrometheusFixture};
use serde_json::json;

const TARGET: &str = "shop";
const NEW: &str = "registry.example/shop:2";

async fn canary_status(c: &Cluster) -> Option<CanaryStatus> {
    c.profiles().get(TARGET).await.ok()?.status?.canary
}

fn secret(username: &str, password: &str) -> Secret {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-auth"},
        "stringData": {"username": username, "password": password}}))
    .expect("secret")
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_run_is_judged_on_a_prometheus_behind_tls_and_basic_auth() {
    let c = cluster().await;
    let prom = PrometheusFixture::start_secured().await;
    let secured = prom.secured.clone().expect("secured");
    prom.serve(&c.namespace, TARGET, Behaviour::healthy()).await;
    let maps = c.api::<ConfigMap>();
    let ca: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "prom-ca"},
        "data": {"ca.crt": secured.ca_pem}}))
    .expect("configmap");
    maps.create(&PostParams::default(), &ca).await.expect("create the CA ConfigMap");
    // A wrong password first: the analysis must say the credentials were refused, not "no data".
    let secrets = c.api::<Secret>();
    secrets.create(&PostParams::default(), &secret(&secured.username, "wrong")).await.expect("create the Secret");

    create_app(&c.api(), TARGET, "registry.example/shop:1", 3).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    let access = json!({"secretRef": {"name": "prom-auth"}, "ca": {"kind": "ConfigMap", "name": "prom-ca"}});
    let spec = json!({"canary": {"stages": [10, 25, 50, 100], "stepInterval": "4s", "progressDeadline": "2m",
        "analysis": {"prometheus": prom.url, "minRequests": 10, "prometheusAccess": access}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, TARGET, spec)).await.expect("create");
    c.eventually(90, "the primary serving (canary phase Idle)", || async {
        canary_status(&c).await.filter(|s| s.phase == CanaryPhase::Idle)
    })
    .await;

    let deployments = c.api::<Deployment>();
    set_image(&deployments, TARGET, NEW).await;
    let refused = c
        .eventually(60, "an analysis that names the refused credentials", || async {
            let s = canary_status(&c).await?;
            let text = format!("{:?} {:?}", s.message, s.analyses.first());
            (s.phase == CanaryPhase::Progressing && text.contains("401")).then_some(s)
        })
        .await;
    assert_eq!(refused.stage.as_deref(), Some("1/4"), "a refused analysis must hold the first stage: {refused:?}");

    // The right password: the Secret is read again on the next reconcile, and the run goes through.
    let fixed = secret(&secured.username, &secured.password);
    let params = PatchParams::apply("e2e").force();
    secrets.patch("prom-auth", &params, &Patch::Apply(&fixed)).await.expect("fix the Secret");
    let done = c
        .eventually(150, "the run promoted once the credentials are right", || async {
            canary_status(&c).await.filter(|s| matches!(s.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack))
        })
        .await;
    assert_eq!(done.phase, CanaryPhase::Succeeded, "{done:?}");
    let primary = replicas_and_image(&deployments, "shop-primary").await.expect("primary");
    assert_eq!(primary.1, NEW, "the primary runs the promoted template");
}
