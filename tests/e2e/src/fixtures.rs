//! Objects the scenarios create: the app Deployment a profile targets, profiles, and a ClickHouse table of the
//! test's own (the real engine at `CLICKHOUSE_URL`, reached by the operator process on 127.0.0.1).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use perf_operator_api::PerformanceProfile;
use serde_json::{Value, json};

/// The app: a Deployment named `name` with `replicas` pods of `image`.
pub fn app(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]}
            }
        }
    }))
    .expect("deployment")
}

/// Creates the app Deployment.
pub async fn create_app(api: &Api<Deployment>, name: &str, image: &str, replicas: i32) {
    api.create(&PostParams::default(), &app(name, image, replicas)).await.expect("create app Deployment");
}

/// A profile for target `name` with a provisioned Redis, TTL classes and pools; `extra` is merged into the spec.
pub fn profile(namespace: &str, name: &str, extra: Value) -> PerformanceProfile {
    let mut spec = json!({
        "targetRef": {"name": name},
        "cache": {"redis": {"provision": {"maxMemory": "32Mi"}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]},
        "pools": {"postgres": {"min": 5, "max": 20}}
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec
    }))
    .expect("profile")
}

/// The ClickHouse HTTP endpoint of the suite.
pub fn clickhouse_url() -> String {
    std::env::var("CLICKHOUSE_URL").expect("CLICKHOUSE_URL is set by tests/run.sh")
}

/// Runs one statement on ClickHouse and returns the body (TabSeparated).
pub async fn clickhouse(sql: &str) -> String {
    let response =
        reqwest::Client::new().post(clickhouse_url()).body(sql.to_string()).send().await.expect("ClickHouse reachable");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "ClickHouse refused {sql}: {body}");
    body
}

/// A fresh database `db` with an `events` MergeTree table and some rows.
pub async fn clickhouse_table(db: &str) {
    clickhouse(&format!("DROP DATABASE IF EXISTS {db}")).await;
    clickhouse(&format!("CREATE DATABASE {db}")).await;
    clickhouse(&format!(
        "CREATE TABLE {db}.events (timestamp DateTime, model String, latency_ms UInt32) ENGINE = MergeTree ORDER BY timestamp"
    ))
    .await;
    clickhouse(&format!(
        "INSERT INTO {db}.events SELECT toDateTime('2026-01-01 00:00:00') + number, concat('m', toString(number % 7)), number % 500 FROM numbers(1000)"
    ))
    .await;
}

/// The data-skipping indexes on `db.events`.
pub async fn clickhouse_indexes(db: &str) -> Vec<String> {
    let body = clickhouse(&format!(
        "SELECT name FROM system.data_skipping_indices WHERE database = '{db}' AND table = 'events'"
    ))
    .await;
    body.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Gives the app Deployment's container `image`: a new pod template, as a Git change would.
pub async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(&patch))
        .await
        .expect("set the app's image");
}

/// A Deployment's `spec.replicas` and its first container's image, None when it does not exist.
pub async fn replicas_and_image(api: &Api<Deployment>, name: &str) -> Option<(i32, String)> {
    let spec = api.get_opt(name).await.expect("get Deployment")?.spec?;
    let image = spec.template.spec?.containers.first()?.image.clone().unwrap_or_default();
    Some((spec.replicas.unwrap_or(1), image))
}

/// The Gateway API HTTPRoutes of `namespace`, as dynamic objects (the suite has no Gateway API types).
pub fn http_routes(client: kube::Client, namespace: &str) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(client, namespace, &kube::api::ApiResource::from_gvk_with_plural(&gvk, "httproutes"))
}

/// An HTTPRoute `name` attached to Gateway `public` whose one rule sends `/` to the Services `backends` on `port`,
/// with no weights set (Gateway API then weighs each backend 1).
pub fn http_route(name: &str, backends: &[&str], port: u16) -> kube::api::DynamicObject {
    let refs: Vec<Value> = backends.iter().map(|b| json!({"name": b, "port": port})).collect();
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "hostnames": [format!("{name}.example")],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs}]
        }
    }))
    .expect("HTTPRoute")
}

/// The weight of each backendRef of an HTTPRoute's rules, by Service name (Gateway API's default 1 when unset).
pub fn route_weights(route: &kube::api::DynamicObject) -> std::collections::BTreeMap<String, u64> {
    let rules = route.data["spec"]["rules"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .filter_map(|r| r["backendRefs"].as_array())
        .flatten()
        .filter_map(|b| Some((b["name"].as_str()?.to_string(), b["weight"].as_u64().unwrap_or(1))))
        .collect()
}

/// A ClickHouse database of the test's own (named after its namespace) with the `events` table; returns its name.
pub async fn clickhouse_database(namespace: &str) -> String {
    let db = format!("e2e_{}", namespace.replace('-', "_"));
    clickhouse_table(&db).await;
    db
}

/// Spec sections that leave records outside Kubernetes: an index the operator adds to `db.events` and prunes on
/// deletion, and a canary (which takes the target over).
pub fn pruned_index_and_canary(db: &str) -> Value {
    json!({
        "clickhouse": {"endpoint": clickhouse_url(), "database": db, "prune": true, "tables": [{
            "name": "events", "indexes": [{"name": "i_model", "expression": "model", "type": "bloom_filter(0.01)"}]
        }]},
        "canary": {"stages": [10, 25, 50, 100], "stepInterval": "5s"}
    })
}

/// Creates `app-0` .. `app-{n-1}`, one pod each, 16 at a time (the scale benchmarks' targets).
pub async fn create_apps(api: &Api<Deployment>, n: usize) {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..n)
        .map(|i| async move {
            api.create(&PostParams::default(), &app(&format!("app-{i}"), "registry.example/app:1", 1)).await
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create target Deployments");
}

/// Whether the profile's `Ready` condition is True.
pub fn is_ready(p: &PerformanceProfile) -> bool {
    p.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until all `n` profiles of `api` are Ready (listing them every half second), or panics after `limit`;
/// returns the peak RSS of `op` seen meanwhile, in KiB.
pub async fn wait_all_ready(
    api: &Api<PerformanceProfile>,
    n: usize,
    op: &crate::Operator,
    limit: std::time::Duration,
) -> u64 {
    let started = std::time::Instant::now();
    // A LIST of thousands of profiles with their status is megabytes: the benchmarks' sizes are listed less often.
    let every = std::time::Duration::from_millis(if n > 200 { 2000 } else { 500 });
    let mut peak = 0;
    let mut told = std::time::Instant::now();
    loop {
        peak = peak.max(op.peak_rss_kib());
        let list = api.list(&kube::api::ListParams::default()).await.expect("list profiles");
        let ready = list.items.iter().filter(|p| is_ready(p)).count();
        if ready == n {
            return peak.max(op.peak_rss_kib());
        }
        assert!(started.elapsed() < limit, "only {ready}/{n} Ready after {limit:?}");
        if told.elapsed() >= std::time::Duration::from_secs(60) {
            let seen = list.items.iter().filter(|p| p.status.is_some()).count();
            eprintln!("{:>5.0} s: {ready}/{n} Ready, {seen} reconciled at least once", started.elapsed().as_secs_f64());
            told = std::time::Instant::now();
        }
        tokio::time::sleep(every).await;
    }
}

/// host, port, user and password of the PostgreSQL at `POSTGRES_URL` (tests/run.sh and tests/bench-scale.sh start
/// one).
pub fn postgres() -> (String, u16, String, String) {
    let url = std::env::var("POSTGRES_URL").expect("POSTGRES_URL is set by tests/run.sh or tests/bench-scale.sh");
    let url = reqwest::Url::parse(&url).expect("POSTGRES_URL is a URL");
    let host = url.host_str().expect("host").to_string();
    (host, url.port().unwrap_or(5432), url.username().to_string(), url.password().unwrap_or_default().to_string())
}

/// The Secret `db` with the credentials of [`postgres`], for [`full_feature`] profiles.
pub async fn create_postgres_secret(api: &Api<k8s_openapi::api::core::v1::Secret>) {
    let (_, _, user, password) = postgres();
    let secret = serde_json::from_value(json!({"metadata": {"name": "db"},
        "stringData": {"username": user, "password": password}}))
    .expect("secret");
    api.create(&PostParams::default(), &secret).await.expect("create the PostgreSQL credentials");
}

/// Every feature a large install runs at once, for the scale benchmarks: an external Redis (`REDIS_URL`), pools
/// capped by the live PostgreSQL ([`create_postgres_secret`]) and a canary that stays idle (its Prometheus is never
/// asked while no run is under way).
pub fn full_feature(namespace: &str, name: &str) -> PerformanceProfile {
    let (host, port, _, _) = postgres();
    let spec = json!({
        "cache": {"redis": {"external": {"address": crate::redis_traffic::url()}},
                  "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]},
        "pools": {"postgres": {"min": 2, "max": 10, "server": {"host": host, "port": port,
                  "credentialsSecretRef": {"name": "db"}, "sslMode": "disable"}},
                  "redis": {"min": 2, "max": 8}},
        "canary": {"stages": [10, 25, 50, 100], "stepInterval": "30s", "progressDeadline": "10m",
                   "analysis": {"prometheus": "http://127.0.0.1:9", "minRequests": 10}},
        "slo": {"p99LatencyMs": 150}
    });
    profile(namespace, name, spec)
}

/// Creates `app-0` .. `app-{n-1}` as [`full_feature`] profiles, 16 at a time.
pub async fn create_full_feature(api: &Api<PerformanceProfile>, namespace: &str, n: usize) {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..n)
        .map(|i| async move { api.create(&PostParams::default(), &full_feature(namespace, &format!("app-{i}"))).await })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create profiles");
}
