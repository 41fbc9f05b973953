//! The Helm chart, with helm built from the Go module proxy (pinned in tests/support/helm/go.mod): it lints
//! strictly, renders objects the real API server accepts, its values schema refuses wrong types, and the
//! release `tests/e2e/setup.sh` installed is deployed with its ServiceAccount and RBAC.

use perf_e2e::{env_path, kubectl, repo_root};
use std::process::Command;

fn helm(args: &[&str]) -> (bool, String) {
    let out = Command::new(env_path("PERF_HELM_BIN")).args(args).output().expect("run helm");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn chart() -> String {
    repo_root().join("charts/perf-operator").to_str().expect("utf-8 path").to_string()
}

#[test]
#[ignore = "needs a cluster: run through tests/run.sh"]
fn the_chart_lints_renders_for_the_server_and_checks_its_values() {
    let (ok, out) = helm(&["lint", "--strict", &chart()]);
    assert!(ok, "helm lint --strict failed:\n{out}");

    let (ok, rendered) = helm(&["template", "perf-operator", &chart(), "-n", "perf-operator"]);
    assert!(ok, "helm template failed:\n{rendered}");
    let file = std::env::temp_dir().join(format!("perf-e2e-chart-{}.yaml", perf_e2e::random_hex(4)));
    std::fs::write(&file, &rendered).expect("write rendered chart");
    let (ok, out, err) = kubectl(&["apply", "--dry-run=server", "-n", "perf-operator", "-f", file.to_str().unwrap()]);
    assert!(ok, "the API server refused the rendered chart:\n{out}{err}");

    for (set, field) in [
        ("replicas=two", "replicas"),
        ("adminPort=0", "adminPort"),
        ("logFormat=xml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("replica=2", "replica"),
    ] {
        let (ok, out) = helm(&["template", "perf-operator", &chart(), "--set", set]);
        assert!(!ok, "values.schema.json accepted --set {set}");
        assert!(out.contains(field), "the refusal of --set {set} does not name {field}:\n{out}");
    }

    let (ok, out) = helm(&["status", "perf-operator", "-n", "perf-operator"]);
    assert!(ok && out.contains("STATUS: deployed"), "the release is not deployed:\n{out}");
    let (ok, out, err) = kubectl(&[
        "get",
        "serviceaccount,clusterrole,clusterrolebinding,role,rolebinding,deployment",
        "-n",
        "perf-operator",
        "-l",
        "app.kubernetes.io/instance=perf-operator",
        "-o",
        "name",
    ]);
    assert!(ok, "{err}");
    for object in [
        "serviceaccount/perf-operator",
        "clusterrole.rbac.authorization.k8s.io/perf-operator",
        "role.rbac.authorization.k8s.io/perf-operator-leader",
        "deployment.apps/perf-operator",
    ] {
        assert!(out.contains(object), "helm install did not create {object}:\n{out}");
    }
}
