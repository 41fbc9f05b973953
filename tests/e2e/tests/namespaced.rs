//! The chart's namespaced mode on the real API server: installed with `rbac.namespaced: true` it grants a Role in
//! each watched namespace and nothing cluster-wide (the ServiceAccount cannot list Secrets anywhere else), and an
//! operator with that identity reconciles a profile there: its app contract, Redis objects and status.

use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::{Operator, cluster, env_path, kubectl, random_hex};
use serde_json::json;
use std::process::Command;

fn helm(args: &[&str]) -> (bool, String) {
    let out = Command::new(env_path("PERF_HELM_BIN")).args(args).output().expect("run helm");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `kubectl auth can-i` as `user`: "yes" or "no".
fn can_i(user: &str, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i", "--as", user];
    all.extend_from_slice(args);
    let (_, out, _) = kubectl(&all);
    out.trim().to_string()
}

/// Uninstalls the release and deletes its namespace when the test ends, passed or not.
struct Release(String);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.0, "-n", &self.0, "--wait=false"]);
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_namespaced_install_grants_only_its_namespaces_and_reconciles_there() {
    let c = cluster().await;
    let release = format!("perf-ns-{}", random_hex(3));
    let chart = perf_e2e::repo_root().join("charts/perf-operator");
    let watch = format!("controller.watchNamespaces={{{}}}", c.namespace);
    let (ok, out) = helm(&[
        "install",
        &release,
        chart.to_str().expect("utf-8 path"),
        "-n",
        &release,
        "--create-namespace",
        "--skip-crds",
        "--set",
        "rbac.namespaced=true",
        "--set",
        &watch,
    ]);
    let _release = Release(release.clone());
    assert!(ok, "helm install in namespaced mode failed:\n{out}");

    // What the ServiceAccount may do: its namespace, not others, nothing cluster-wide.
    let user = format!("system:serviceaccount:{release}:{release}");
    assert_eq!(can_i(&user, &["list", "secrets", "-n", &c.namespace]), "yes");
    assert_eq!(can_i(&user, &["patch", "deployments", "-n", &c.namespace]), "yes");
    assert_eq!(can_i(&user, &["list", "secrets", "--all-namespaces"]), "no");
    assert_eq!(can_i(&user, &["get", "secrets", "-n", "kube-system"]), "no");
    assert_eq!(can_i(&user, &["list", "performanceprofiles.perf.operator.dev", "--all-namespaces"]), "no");
    // Verbs the code never calls are granted nowhere.
    assert_eq!(can_i(&user, &["delete", "secrets", "-n", &c.namespace]), "no");
    assert_eq!(can_i(&user, &["list", "pods", "-n", &c.namespace]), "no");
    assert_eq!(can_i(&user, &["update", "performanceprofiles.perf.operator.dev", "-n", &c.namespace]), "no");
    let (_, roles, _) =
        kubectl(&["get", "clusterrolebindings", "-o", "name", "-l", &format!("app.kubernetes.io/instance={release}")]);
    assert!(roles.trim().is_empty(), "a namespaced install binds a ClusterRole: {roles}");
    assert_eq!(can_i(&user, &["get", "clusteranalysistemplates.perf.operator.dev/x"]), "no");
    // The one cluster-wide grant it may take, when asked: reading ClusterAnalysisTemplates, nothing else.
    let (ok, out) = helm(&[
        "upgrade",
        &release,
        chart.to_str().expect("utf-8 path"),
        "-n",
        &release,
        "--reuse-values",
        "--set",
        "rbac.clusterAnalysisTemplates=true",
    ]);
    assert!(ok, "helm upgrade with rbac.clusterAnalysisTemplates failed:\n{out}");
    assert_eq!(can_i(&user, &["get", "clusteranalysistemplates.perf.operator.dev/x"]), "yes");
    assert_eq!(can_i(&user, &["list", "clusteranalysistemplates.perf.operator.dev"]), "no");
    assert_eq!(can_i(&user, &["get", "secrets/x", "-n", &release]), "yes");
    assert_eq!(can_i(&user, &["get", "secrets", "-n", "kube-system"]), "no");
    assert_eq!(can_i(&user, &["list", "secrets", "--all-namespaces"]), "no");

    // An operator with that identity reconciles a profile in its namespace.
    create_app(&c.api(), "web", "registry.example/web:1", 1).await;
    let _op = Operator::start_as(&release, &c.namespace, "namespaced", &[], None);
    let spec = json!({});
    let created = c.profiles().create(&Default::default(), &profile(&c.namespace, "web", spec)).await;
    created.expect("create the profile");
    c.eventually(60, "the app contract and the Redis objects", || async {
        let contract = c.api::<k8s_openapi::api::core::v1::ConfigMap>().get_opt("web-perf").await.ok()??;
        let redis = c.api::<k8s_openapi::api::apps::v1::Deployment>().get_opt("web-redis").await.ok()??;
        Some((contract, redis))
    })
    .await;
    c.eventually(60, "a status written", || async {
        let p = c.profiles().get("web").await.ok()?;
        (p.status?.observed_generation.unwrap_or(0) >= 1).then_some(())
    })
    .await;
}
