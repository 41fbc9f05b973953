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
