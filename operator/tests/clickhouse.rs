//! The operator's ClickHouse wiring against the real engine (CLICKHOUSE_URL from tests/run.sh): credentials from
//! the Secret, ClickHouseReady and per-table status, ownership records kept in status, and the finalizer's prune.

mod fixtures;

use fixtures::{NS, Profile, World};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use perf_operator_api::PerformanceProfile;
use serde_json::json;
use std::time::Duration;

fn url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| {
        panic!("CLICKHOUSE_URL not set: run tests/run.sh, or eval \"$(tests/support/start-clickhouse.sh start)\"")
    })
}

async fn projections(client: &clickhouse::Client, db: &str) -> Vec<String> {
    let q = format!("SELECT name FROM system.projections WHERE database = '{db}' AND table = 'events' ORDER BY name");
    client.query(&q).fetch_all::<String>().await.unwrap()
}

#[tokio::test]
async fn a_profile_tunes_its_table_reports_progress_and_prunes_on_deletion() {
    let db = format!("op_{}", std::process::id());
    let admin = clickhouse::Client::default().with_url(url());
    admin.query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await.unwrap();
    admin.query(&format!("CREATE DATABASE {db}")).execute().await.unwrap();
    let create = format!(
        "CREATE TABLE {db}.events (timestamp DateTime, model String, score Float64) ENGINE = MergeTree ORDER BY timestamp"
    );
    admin.query(&create).execute().await.unwrap();
    let insert = format!(
        "INSERT INTO {db}.events SELECT toDateTime('2026-01-01 00:00:00') + number, concat('m', toString(number % 7)), number / 1000 FROM numbers(10000)"
    );
    admin.query(&insert).execute().await.unwrap();

    let mut profile = Profile::test();
    profile.spec.clickhouse = Some(
        serde_json::from_value(json!({
            "endpoint": url(), "database": db, "prune": true,
            "credentialsSecretRef": {"name": "ch"},
            "tables": [{"name": "events",
                        "projections": [{"name": "by_model", "query": "SELECT model, count() GROUP BY model"}],
                        "indexes": [{"name": "i_model", "expression": "model", "type": "bloom_filter(0.01)"}]},
                       {"name": "missing"}]
        }))
        .unwrap(),
    );
    let world = World::with(profile, None).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ch", "namespace": NS}, "stringData": {}, "data": {"username": "ZGVmYXVsdA==", "password": ""}
    }))
    .unwrap();
    world.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();

    // The first reconcile adds the finalizer (prune asks for clean-up), the next ones apply and follow mutations.
    let mut reason = String::new();
    for _ in 0..40 {
        world.reconcile().await.unwrap();
        let p = world.profile().await;
        if p.status.as_ref().and_then(|s| s.clickhouse.as_ref()).is_some() {
            reason = World::condition(&p, "ClickHouseReady").1;
            let events = &p
                .status
                .as_ref()
                .unwrap()
                .clickhouse
                .as_ref()
                .unwrap()
                .tables
                .iter()
                .find(|t| t.name == "events")
                .unwrap()
                .clone();
            if events.state == "InSync" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let p = world.profile().await;
    let status = p.status.as_ref().unwrap().clickhouse.clone().unwrap();
    let events = status.tables.iter().find(|t| t.name == "events").unwrap();
    assert_eq!(events.state, "InSync", "{status:?}");
    let missing = status.tables.iter().find(|t| t.name == "missing").unwrap();
    assert_eq!(missing.state, "Failed", "a missing table fails alone: {status:?}");
    assert_eq!(reason, "Failed");
    assert!(World::condition(&p, "ClickHouseReady").2.contains("missing"));
    assert!(status.managed.iter().any(|m| m.name == "by_model"), "ownership recorded: {:?}", status.managed);
    assert_eq!(projections(&admin, &db).await, vec!["by_model".to_string()]);

    // A spec that turns invalid mid-life keeps the records: a status built from scratch would drop them under
    // server-side apply, and with them the prune below.
    let invalid = json!({"spec": {"canary": {"stages": [10, 5, 100]}}});
    world
        .api::<PerformanceProfile>()
        .patch("risk-api", &PatchParams::default(), &Patch::Merge(&invalid))
        .await
        .unwrap();
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "Degraded").1, "InvalidSpec");
    assert_eq!(p.status.as_ref().unwrap().clickhouse.as_ref().unwrap().managed, status.managed, "records kept");

    // The finalizer's clean-up step, called directly: the in-memory API deletes at once, ignoring finalizers, and
    // the reconcile reads the profile back from the API. tests/e2e deletes through the real finalizer.
    let profile = std::sync::Arc::new(world.profile().await);
    perf_operator::controller::cleanup::cleanup(profile, world.ctx.clone()).await.unwrap();
    assert!(projections(&admin, &db).await.is_empty(), "prune: what the operator created is dropped on deletion");
    admin.query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await.unwrap();
}
