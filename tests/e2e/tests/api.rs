//! The API as a user meets it with kubectl: the CRD is accepted and documented, and the real API server and
//! `perf-operator validate` refuse exactly the same profiles, naming the field.

use perf_e2e::{cluster, env_path, kubectl, repo_root};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Writes `object` as YAML to a temporary file named after `label`.
fn write_temp(label: &str, object: &Value) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("perf-e2e-{}-{label}.yaml", perf_e2e::random_hex(4)));
    std::fs::write(&path, serde_saphyr::to_string(object).expect("yaml")).expect("write temp file");
    path
}

/// `kubectl apply --dry-run=server` of one file: (accepted, stderr).
fn server_accepts(path: &Path) -> (bool, String) {
    let (ok, _, err) = kubectl(&["apply", "--dry-run=server", "-f", path.to_str().expect("utf-8 path")]);
    (ok, err)
}

/// `perf-operator validate -f`: (exit code, stdout + stderr).
fn validate(path: &Path) -> (i32, String) {
    let out = Command::new(env_path("PERF_OPERATOR_BIN")).args(["validate", "-f"]).arg(path).output().expect("run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_crd_is_accepted_documented_and_listed_with_its_columns() {
    let c = cluster().await;
    let root = repo_root();
    for dir in ["crds/", "charts/perf-operator/crds/"] {
        let path = root.join(dir);
        let (ok, out, err) = kubectl(&["apply", "--server-side", "--dry-run=server", "-f", path.to_str().unwrap()]);
        assert!(ok, "kubectl apply -f {dir} refused: {out}{err}");
    }
    // Client-side apply (the README and the tutorial say --server-side) keeps the whole CRD in an annotation: it must
    // still fit, for users who apply it that way.
    let (ok, out, err) = kubectl(&["apply", "-f", root.join("crds/").to_str().unwrap()]);
    assert!(ok, "kubectl apply -f crds/ refused: {out}{err}");

    let (ok, explain, err) = kubectl(&["explain", "performanceprofile.spec.canary"]);
    assert!(ok, "kubectl explain failed: {err}");
    for field in ["stages", "stepInterval", "analysis", "routing"] {
        assert!(explain.contains(field), "kubectl explain does not document {field}:\n{explain}");
    }
    assert!(explain.contains("DESCRIPTION") && explain.len() > 400, "no field docs:\n{explain}");

    let mut example: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join("examples/minimal.yaml")).unwrap())
            .expect("examples/minimal.yaml");
    example["metadata"]["namespace"] = json!(c.namespace);
    let file = write_temp("minimal", &example);
    let (ok, out, err) = kubectl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "kubectl apply of examples/minimal.yaml refused: {out}{err}");
    let (ok, table, err) = kubectl(&["get", "pp", "-n", &c.namespace]);
    assert!(ok, "kubectl get pp failed: {err}");
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "TARGET", "READY", "PHASE", "STAGE", "WEIGHT", "AGE"] {
        assert!(header.contains(column), "kubectl get pp has no {column} column: {header}");
    }
}

/// The shared table of `crds/tests/bad_profiles.json`, plus what only a real server (or kubectl) refuses:
/// unknown fields at any depth and unknown apiVersions or kinds. Each entry: (label, object, what names it).
fn bad_profiles(namespace: &str) -> Vec<(String, Value, String)> {
    let table: Value =
        serde_json::from_str(include_str!("../../../crds/tests/bad_profiles.json")).expect("bad_profiles.json");
    let mut base = table["base"].clone();
    base["metadata"]["namespace"] = json!(namespace);
    let with = |pointer: &str, value: Value| {
        let mut object = base.clone();
        *object.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in base")) = value;
        object
    };
    let mut cases: Vec<(String, Value, String)> = table["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let pointer = c["pointer"].as_str().expect("pointer");
            (
                format!("{pointer}={}", c["value"]),
                with(pointer, c["value"].clone()),
                c["field"].as_str().unwrap().into(),
            )
        })
        .collect();
    let unknown = |pointer: &str, key: &str| {
        let mut object = base.clone();
        object.pointer_mut(pointer).and_then(Value::as_object_mut).expect(pointer).insert(key.into(), json!(1));
        (format!("unknown {pointer}/{key}"), object, key.to_string())
    };
    cases.push(unknown("", "spce"));
    cases.push(unknown("/metadata", "labelz"));
    cases.push(unknown("/spec", "canaries"));
    cases.push(unknown("/spec/slo", "errorRatePercnt"));
    cases.push(unknown("/spec/cache/ttlClasses/0", "ttl"));
    cases.push(unknown("/spec/canary/analysis", "failureLimt"));
    cases.push(unknown("/spec/clickhouse/tables/0/indexes/0", "granularty"));
    for api_version in ["perf.operator.dev/v1", "perf.operator.dev/v1beta1", "perf.example.com/v1alpha1"] {
        let mut object = base.clone();
        object["apiVersion"] = json!(api_version);
        cases.push((format!("apiVersion {api_version}"), object, "apiVersion".into()));
    }
    let mut object = base.clone();
    object["kind"] = json!("PerformanceProfiles");
    cases.push(("kind".into(), object, "kind".into()));
    cases
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_api_server_and_validate_refuse_the_same_profiles_naming_the_field() {
    let c = cluster().await;
    let mut disagreements = Vec::new();
    for (label, object, field) in bad_profiles(&c.namespace) {
        let file = write_temp("bad", &object);
        let (accepted, server) = server_accepts(&file);
        let (code, local) = validate(&file);
        let server_names = server.contains(&field)
            || (field == "apiVersion" || field == "kind") && server.contains("no matches for kind");
        if accepted || !server_names {
            disagreements.push(format!("{label}: server accepted={accepted}, did not name {field}: {server}"));
        }
        if code != 1 || !local.contains(&field) {
            disagreements.push(format!("{label}: validate exit {code}, expected 1 naming {field}: {local}"));
        }
    }
    for example in ["examples/minimal.yaml", "examples/risk-platform.yaml"] {
        let text = std::fs::read_to_string(repo_root().join(example)).expect("example");
        let mut object: Value = serde_saphyr::from_str(&text).expect("example yaml");
        object["metadata"]["namespace"] = json!(c.namespace);
        let file = write_temp("good", &object);
        let (accepted, server) = server_accepts(&file);
        let (code, local) = validate(&file);
        if !accepted || code != 0 {
            disagreements
                .push(format!("{example}: server accepted={accepted} ({server}), validate exit {code}: {local}"));
        }
    }
    assert!(disagreements.is_empty(), "the API server and validate disagree:\n{}", disagreements.join("\n"));
}
