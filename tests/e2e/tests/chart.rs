//! The Helm chart, with helm built from the Go module proxy (pinned in tests/support/helm/go.mod): it lints
//! strictly, renders objects the real API server accepts (with every optional object and feature on too), its
//! values schema refuses wrong values naming the field, the optional objects and the feature-gated ClusterRole
//! rules appear only when asked for, and the release `tests/e2e/setup.sh` installed is deployed with its
//! ServiceAccount and RBAC.

use perf_e2e::{env_path, kubectl, random_hex, repo_root};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

/// helm with `args`; `helm template` renders for the suite's API server's version, as Argo CD and Flux render for
/// their cluster's (helm's offline default, 1.20, is below the chart's `kubeVersion`).
fn helm(args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env_path("PERF_HELM_BIN"));
    command.args(args);
    if args.first() == Some(&"template") {
        command.args(["--kube-version", server_version()]);
    }
    let out = command.output().expect("run helm");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The API server's version, e.g. `v1.36.3`.
fn server_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let (ok, out, err) = kubectl(&["version", "-o", "json"]);
        assert!(ok, "kubectl version: {err}");
        let version: Value = serde_json::from_str(&out).expect("kubectl version's JSON");
        version["serverVersion"]["gitVersion"].as_str().expect("the server's gitVersion").to_string()
    })
}

fn chart() -> String {
    repo_root().join("charts/perf-operator").to_str().expect("utf-8 path").to_string()
}

/// A file in the temporary directory, unique to this run.
fn temp_file(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("perf-e2e-chart-{}-{what}", random_hex(4)))
}

/// `helm template` of release perf-operator in namespace perf-operator with `values` (a values file: JSON is
/// YAML), as text. Only stdout: a warning on stderr must not end up in the YAML.
fn render_text(values: &Value) -> String {
    let (chart, file) = (chart(), temp_file("values.json"));
    std::fs::write(&file, values.to_string()).expect("write values file");
    let args =
        ["template", "perf-operator", chart.as_str(), "-n", "perf-operator", "-f", file.to_str().expect("utf-8")];
    let out = Command::new(env_path("PERF_HELM_BIN"))
        .args(args)
        .args(["--kube-version", server_version()])
        .output()
        .expect("run helm");
    let _ = std::fs::remove_file(&file);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "helm template with values {values} failed:\n{stdout}{stderr}");
    stdout.into_owned()
}

/// The objects `helm template` renders with `values`.
fn render(values: &Value) -> Vec<Value> {
    let text = render_text(values);
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("helm template printed bad YAML: {e}\n{text}"))
}

/// The rendered objects of `kind`.
fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The one rendered object of `kind`.
fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    match of_kind(objects, kind).as_slice() {
        [o] => o,
        found => panic!("expected one {kind}, rendered {}", found.len()),
    }
}

/// Whether the ClusterRole grants `verb` on `resource` of API group `group`.
fn grants(objects: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    let role = one(objects, "ClusterRole");
    let has = |rule: &Value, field: &str, want: &str| {
        rule[field].as_array().is_some_and(|items| items.iter().any(|i| i == want || i == "*"))
    };
    role["rules"]
        .as_array()
        .expect("ClusterRole rules")
        .iter()
        .any(|rule| has(rule, "apiGroups", group) && has(rule, "resources", resource) && has(rule, "verbs", verb))
}

/// The operator container of the rendered Deployment.
fn container(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The value of the container's environment variable `name`, if set.
fn env_var<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    container(objects)["env"].as_array()?.iter().find(|e| e["name"] == name).map(|e| &e["value"])
}

/// Sends the objects to the API server as a dry run; panics with what it refused.
fn server_dry_run(objects: &[Value], what: &str) {
    let file = temp_file("objects.json");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(&file, list.to_string()).expect("write rendered objects");
    let (ok, out, err) = kubectl(&["apply", "--dry-run=server", "-n", "perf-operator", "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "the API server refused the chart rendered with {what}:\n{out}{err}");
}

/// Values with every optional object and every feature on.
fn everything_on() -> Value {
    json!({
        "replicas": 2,
        "podDisruptionBudget": {"enabled": true, "minAvailable": 1},
        "serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}, "interval": "30s"},
        "policyCABundle": {"from": "Secret", "name": "corp-ca", "key": "bundle.pem"},
        "features": {"canary": true, "canaryHttpRoutes": true, "sloAlerts": true},
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"create": true, "name": "perf-operator-sa", "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
        "podAnnotations": {"prometheus.io/scrape": "true"},
        "podLabels": {"team": "platform"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "perf-operator"}}}}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "perf-operator"}}}],
        "extraArgs": ["--notification-format=generic"],
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}, {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "networkPolicy": {
            "enabled": true,
            "ingress": {
                "cidrs": ["10.8.0.0/16"],
                "selectors": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
            },
            "egress": {
                "apiServer": {"enabled": true, "cidrs": ["172.18.0.2/32"], "selectors": [], "ports": [6443]},
                "postgresql": {"enabled": true, "cidrs": ["10.20.0.0/16", "fd00::/8"], "selectors": [], "ports": [5432]},
                "clickhouse": {"enabled": true, "cidrs": [], "selectors": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "clickhouse"}}}
                ], "ports": [8123, 8443]}
            },
            "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 4317}]}]
        }
    })
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
        ("resources.requests.cpu=lots", "requests/cpu"),
        ("resources.requests=null", "requests"),
        // With the default 2 replicas, a budget that keeps both would block every drain.
        ("podDisruptionBudget.minAvailable=2", "minAvailable"),
        ("podDisruptionBudget.minAvailable=100%", "minAvailable"),
        ("podDisruptionBudget.minAvailable=150%", "minAvailable"),
        ("podDisruptionBudget.enable=true", "enable"),
        ("serviceMonitor.interval=30", "interval"),
        ("policyCABundle.from=Vault", "policyCABundle/from"),
        ("policyCABundle.from=ConfigMap", "policyCABundle/name"),
        ("policyCABundle.key=a/b", "policyCABundle/key"),
        ("features.canery=true", "canery"),
        ("features.sloAlerts=yes", "sloAlerts"),
        ("networkPolicy.enabled=1", "networkPolicy/enabled"),
        ("networkPolicy.egress.redis.ports={0}", "redis/ports"),
        ("networkPolicy.egress.postgresql.cidrs={10.0.0.0}", "postgresql/cidrs"),
        ("networkPolicy.egress.mysql.enabled=true", "mysql"),
        ("networkPolicy.ingress.selectors[0].nodeSelector.a=b", "nodeSelector"),
        ("leaseRenewDeadlineSeconds=1", "leaseRenewDeadlineSeconds"),
        ("controller.concurrency=0", "concurrency"),
        ("controller.watchNamespaces={Team_A}", "watchNamespaces"),
        ("controller.resync=60", "resync"),
        ("controller.kubeApiQps=fast", "kubeApiQps"),
        ("imagePullSecrets[0].name=Reg_Cred", "imagePullSecrets/0/name"),
        ("imagePullSecrets=regcred", "imagePullSecrets"),
        ("serviceAccount.create=maybe", "serviceAccount/create"),
        ("serviceAccount.name=Ops", "serviceAccount/name"),
        ("tolerations=none", "tolerations"),
        ("nodeSelector.pool[0]=a", "nodeSelector/pool"),
        ("extraArgs[0]=run", "extraArgs/0"),
        ("extraEnv[0].value=x", "extraEnv/0"),
        ("extraEnv[0].name=X,extraEnv[0].value=1", "extraEnv/0/value"),
        ("podLabels.app\\.kubernetes\\.io/instance=other", "podLabels"),
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

/// The pod settings of [`everything_on`] reach the Deployment, and the RBAC binds the ServiceAccount it names.
fn assert_pod_settings(all: &[Value]) {
    let pod = &one(all, "Deployment")["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "perf-operator-sa");
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(spec["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        100
    );
    assert_eq!(spec["topologySpreadConstraints"][0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    assert_eq!(pod["metadata"]["labels"]["team"], "platform");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], "perf-operator", "the selector's labels stay");
    assert_eq!(container(all)["args"], json!(["run", "--notification-format=generic"]));
    assert_eq!(env_var(all, "RUST_BACKTRACE"), Some(&json!("1")));
    let env = container(all)["env"].as_array().expect("env");
    let node = env.iter().find(|e| e["name"] == "NODE").expect("extraEnv with valueFrom");
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    let account = one(all, "ServiceAccount");
    assert_eq!(account["metadata"]["name"], "perf-operator-sa");
    assert_eq!(account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/x");
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for binding in of_kind(all, kind) {
            assert_eq!(binding["subjects"][0]["name"], "perf-operator-sa", "{kind} binds another account: {binding}");
        }
    }
    // An existing ServiceAccount: none rendered, the bindings and the pods name it.
    let existing = render(&json!({"serviceAccount": {"create": false, "name": "ops"}}));
    assert!(of_kind(&existing, "ServiceAccount").is_empty(), "serviceAccount.create=false rendered one");
    assert_eq!(one(&existing, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"], "ops");
    assert!(of_kind(&existing, "ClusterRoleBinding").iter().all(|b| b["subjects"][0]["name"] == "ops"));
}

#[test]
#[ignore = "needs a cluster: run through tests/run.sh"]
fn the_chart_renders_its_optional_objects_and_feature_rules_only_when_asked() {
    let file = temp_file("values.json");
    std::fs::write(&file, everything_on().to_string()).expect("write values file");
    let (ok, out) = helm(&["lint", "--strict", &chart(), "-f", file.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "helm lint --strict with everything on failed:\n{out}");

    // Everything on: the API server accepts every object. The ServiceMonitor only where its CRD is installed
    // (the Prometheus Operator's); elsewhere its shape is checked here.
    let all = render(&everything_on());
    for kind in ["NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor", "Deployment", "ClusterRole"] {
        one(&all, kind);
    }
    let (has_service_monitors, _, _) = kubectl(&["get", "crd", "servicemonitors.monitoring.coreos.com"]);
    let to_send: Vec<Value> =
        all.iter().filter(|o| has_service_monitors || o["kind"] != "ServiceMonitor").cloned().collect();
    server_dry_run(&to_send, "everything on");

    assert_pod_settings(&all);

    let service = of_kind(&all, "Service").into_iter().find(|s| s["metadata"]["name"] == "perf-operator-metrics");
    let service = service.expect("the metrics Service");
    let monitor = one(&all, "ServiceMonitor");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("ServiceMonitor selector");
    for (k, v) in selector {
        assert_eq!(&service["metadata"]["labels"][k], v, "the ServiceMonitor does not select the metrics Service");
    }
    assert_eq!(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack", "serviceMonitor.labels");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "30s");

    // The NetworkPolicy: the operator's pods; ingress to the admin port only, from the peers given; egress on the
    // declared ports to the declared peers (none given: any address), DNS over UDP and TCP.
    let policy = one(&all, "NetworkPolicy");
    let pod_labels = &one(&all, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in policy["spec"]["podSelector"]["matchLabels"].as_object().expect("NetworkPolicy podSelector") {
        assert_eq!(&pod_labels[k], v, "the NetworkPolicy does not select the operator's pods");
    }
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{
            "ports": [{"protocol": "TCP", "port": 8080}],
            "from": [
                {"ipBlock": {"cidr": "10.8.0.0/16"}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ]
        }]),
        "ingress: the admin port only"
    );
    let egress = policy["spec"]["egress"].as_array().expect("egress rules");
    let rule_with = move |protocol: &str, port: u16| {
        egress.iter().find(|r| {
            r["ports"].as_array().is_some_and(|ps| ps.iter().any(|p| p["protocol"] == protocol && p["port"] == port))
        })
    };
    for (protocol, port) in [("UDP", 53), ("TCP", 53), ("TCP", 6443), ("TCP", 6379), ("TCP", 5432), ("TCP", 8123)] {
        assert!(rule_with(protocol, port).is_some(), "no egress to {protocol}/{port}:\n{policy:#}");
    }
    let api_server = rule_with("TCP", 6443).expect("API server rule");
    assert_eq!(api_server["to"], json!([{"ipBlock": {"cidr": "172.18.0.2/32"}}]), "API server: the cidrs given");
    // Prometheus and policy registries with no peers given: no rule, so nobody (never "any address").
    for port in [9090, 443] {
        assert!(rule_with("TCP", port).is_none(), "no peers given for {port}, yet a rule:\n{policy:#}");
    }
    assert!(egress.iter().all(|r| r["to"].as_array().is_some_and(|to| !to.is_empty())), "every rule names peers");
    let postgres = rule_with("TCP", 5432).expect("PostgreSQL rule");
    assert_eq!(postgres["to"], json!([{"ipBlock": {"cidr": "10.20.0.0/16"}}, {"ipBlock": {"cidr": "fd00::/8"}}]));
    let clickhouse = rule_with("TCP", 8443).expect("ClickHouse rule");
    assert_eq!(clickhouse["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "clickhouse");
    let redis = rule_with("TCP", 6379).expect("Redis rule");
    assert_eq!(
        redis["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/managed-by"], "perf-operator",
        "the Redis the operator provisions"
    );
    assert_eq!(rule_with("TCP", 4317).expect("extraEgress")["to"], json!([{"ipBlock": {"cidr": "10.30.0.0/16"}}]));
    let plain = render(&json!({}));
    for kind in ["NetworkPolicy", "ServiceMonitor"] {
        assert!(of_kind(&plain, kind).is_empty(), "the default values render a {kind}");
    }
    let one_destination_off = json!({"networkPolicy": {"enabled": true, "egress": {
        "clickhouse": {"enabled": false, "cidrs": ["10.1.0.0/16"]},
        "apiServer": {"cidrs": ["172.18.0.2/32"]}}}});
    let policy = render(&one_destination_off);
    let ports: Vec<&Value> = one(&policy, "NetworkPolicy")["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .flat_map(|r| r["ports"].as_array().into_iter().flatten())
        .map(|p| &p["port"])
        .collect();
    assert!(!ports.contains(&&json!(8123)), "egress.clickhouse.enabled=false still allows 8123: {ports:?}");
    assert_eq!(one(&policy, "NetworkPolicy")["spec"]["ingress"], json!([]), "no ingress peers: nobody");
    // Without the API server's addresses (and no cluster to read them from) the chart says so.
    let (ok, out) = helm(&["template", "perf-operator", &chart(), "--set", "networkPolicy.enabled=true"]);
    assert!(!ok && out.contains("networkPolicy.egress.apiServer needs cidrs"), "{out}");

    // The PodDisruptionBudget: only with two replicas or more, minAvailable 1 by default, and it can be turned off.
    for (replicas, enabled, expected) in [(1, true, false), (2, true, true), (3, true, true), (2, false, false)] {
        let objects = render(&json!({"replicas": replicas, "podDisruptionBudget": {"enabled": enabled}}));
        let budgets = of_kind(&objects, "PodDisruptionBudget");
        assert_eq!(!budgets.is_empty(), expected, "replicas {replicas}, enabled {enabled}: {budgets:?}");
        if let [budget] = budgets.as_slice() {
            assert_eq!(budget["spec"]["minAvailable"], 1);
            for (k, v) in budget["spec"]["selector"]["matchLabels"].as_object().expect("PDB selector") {
                assert_eq!(&pod_labels[k], v, "the PodDisruptionBudget does not select the operator's pods");
            }
            server_dry_run(&objects, &format!("replicas {replicas}"));
        }
    }

    // What the operator watches and its pace: the defaults, and a shard of two namespaces.
    let value = |objects: &[Value], name: &str| env_var(objects, name).and_then(Value::as_str).map(String::from);
    for (name, expected) in [("PERF_CONCURRENCY", "16"), ("PERF_RESYNC_SECONDS", "300"), ("PERF_KUBE_API_QPS", "50")] {
        assert_eq!(value(&plain, name).as_deref(), Some(expected), "{name} by default");
    }
    assert_eq!(value(&plain, "PERF_LEASE_RENEW_DEADLINE_SECONDS").as_deref(), Some("10"));
    for name in ["PERF_WATCH_NAMESPACE", "PERF_WATCH_LABEL_SELECTOR"] {
        assert!(env_var(&plain, name).is_none(), "{name} set by default: every namespace and profile");
    }
    let shard = render(&json!({"controller": {"watchNamespaces": ["team-a", "team-b"],
        "watchLabelSelector": "perf.operator.dev/shard=shard1", "concurrency": 4}}));
    assert_eq!(value(&shard, "PERF_WATCH_NAMESPACE").as_deref(), Some("team-a,team-b"));
    assert_eq!(value(&shard, "PERF_WATCH_LABEL_SELECTOR").as_deref(), Some("perf.operator.dev/shard=shard1"));
    assert_eq!(value(&shard, "PERF_CONCURRENCY").as_deref(), Some("4"));
    server_dry_run(&shard, "a shard");

    // The policy CA bundle: the variable and a read-only mount of the one key, only when a source is set.
    assert!(env_var(&plain, "PERF_POLICY_CA_FILE").is_none(), "PERF_POLICY_CA_FILE set without a bundle");
    assert!(container(&plain)["volumeMounts"].is_null(), "a volume mounted without a bundle");
    assert!(one(&plain, "Deployment")["spec"]["template"]["spec"]["volumes"].is_null());
    for (from, source) in [("ConfigMap", "configMap"), ("Secret", "secret")] {
        let objects = render(&json!({"policyCABundle": {"from": from, "name": "corp-ca", "key": "bundle.pem"}}));
        let file = env_var(&objects, "PERF_POLICY_CA_FILE").and_then(Value::as_str).expect("PERF_POLICY_CA_FILE");
        let mount = &container(&objects)["volumeMounts"][0];
        assert_eq!(mount["readOnly"], true, "the bundle is mounted read-only");
        let dir = mount["mountPath"].as_str().expect("mountPath");
        let volumes = &one(&objects, "Deployment")["spec"]["template"]["spec"]["volumes"];
        let volume = volumes.as_array().and_then(|v| v.iter().find(|v| v["name"] == mount["name"])).expect("volume");
        let name_field = if from == "Secret" { "secretName" } else { "name" };
        assert_eq!(volume[source][name_field], "corp-ca", "{from}: {volume}");
        let item = &volume[source]["items"][0];
        assert_eq!(item["key"], "bundle.pem", "{from}: {volume}");
        let path = item["path"].as_str().expect("item path");
        assert_eq!(file, format!("{dir}/{path}"), "PERF_POLICY_CA_FILE names the mounted key");
        server_dry_run(&objects, &format!("the CA bundle from a {from}"));
    }

    // The ClusterRole: the core rules always; each feature's rules only with the feature on.
    let features = [
        ("canary", "autoscaling", "horizontalpodautoscalers", "patch"),
        ("canaryHttpRoutes", "gateway.networking.k8s.io", "httproutes", "patch"),
        ("sloAlerts", "monitoring.coreos.com", "prometheusrules", "patch"),
        ("clusterAnalysisTemplates", "perf.operator.dev", "clusteranalysistemplates", "get"),
    ];
    for (feature, group, resource, verb) in features {
        assert!(grants(&plain, group, resource, verb), "the default values drop {feature} ({group}/{resource})");
        let off = render(&json!({"features": {feature: false}}));
        assert!(
            !grants(&off, group, resource, verb),
            "features.{feature}=false still grants {verb} {group}/{resource}"
        );
        for (other, group, resource, verb) in features {
            if other != feature {
                assert!(grants(&off, group, resource, verb), "features.{feature}=false also dropped {other}");
            }
        }
        server_dry_run(&off, &format!("features.{feature}=false"));
    }
    let none = render(&json!({"features": {"canary": false, "canaryHttpRoutes": false, "sloAlerts": false,
                                            "clusterAnalysisTemplates": false}}));
    for (group, resource, verb) in [
        ("perf.operator.dev", "performanceprofiles", "watch"),
        ("perf.operator.dev", "performanceprofiles/status", "patch"),
        ("apps", "deployments", "patch"),
        ("apps", "statefulsets", "delete"),
        ("", "secrets", "patch"),
        ("", "configmaps", "watch"),
        ("events.k8s.io", "events", "create"),
        ("perf.operator.dev", "analysistemplates", "get"),
        // Pools are sized for the target HPA's maxReplicas with or without a canary.
        ("autoscaling", "horizontalpodautoscalers", "list"),
    ] {
        assert!(
            grants(&none, group, resource, verb),
            "every feature off dropped the core rule {verb} {group}/{resource}"
        );
    }
    for (_, group, resource, verb) in features {
        assert!(!grants(&none, group, resource, verb), "every feature off still grants {verb} {group}/{resource}");
    }
}
