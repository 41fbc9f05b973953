//! One refusal table through `validate`, `plan` and the reconcile: every hostile ClickHouse declaration is refused
//! by all three with its field named, and nothing of it reaches the server (the adapter's query log, when the
//! test engine runs behind it: CLICKHOUSE_QUERY_LOG from tests/run.sh).

mod fixtures;

use fixtures::{Profile, World};
use perf_operator_api::PerformanceProfile;
use serde_json::{Value, json};
use std::path::PathBuf;

/// A marker in every hostile text, looked for in the query log.
fn marker(i: usize) -> String {
    format!("mark{}x{i}", std::process::id())
}

/// (field, table spec) per case; `{m}` is replaced by the case's marker.
fn cases() -> Vec<(&'static str, Value)> {
    let projection = |q: &str| json!({"name": "events", "projections": [{"name": "p", "query": q}]});
    let index = |e: &str| json!({"name": "events", "indexes": [{"name": "i", "expression": e, "type": "minmax"}]});
    let query = |q: &str| json!({"name": "events", "queries": [{"name": "q", "query": q}]});
    let p = "spec.clickhouse.tables[0].projections[0].query";
    let x = "spec.clickhouse.tables[0].indexes[0].expression";
    let q = "spec.clickhouse.tables[0].queries[0].query";
    vec![
        (p, projection("SELECT * FROM url('http://{m}.example/x', CSV)")),
        (p, projection("SELECT model, (SELECT count() FROM url('http://{m}')) GROUP BY model")),
        (p, projection("SELECT count() FROM remote('{m}', db.t)")),
        (p, projection("SELECT model, file('/etc/{m}') GROUP BY model")),
        (p, projection("SELECT * FROM s3('https://{m}/x')")),
        (p, projection("SELECT * FROM mysql('{m}:3306', 'db', 't', 'u', 'p')")),
        (p, projection("SELECT * FROM postgresql('{m}:5432', 'db', 't', 'u', 'p')")),
        (p, projection("SELECT * FROM other_db.{m}")),
        (p, projection("SELECT dictGet('{m}', 'x', toUInt64(1)) GROUP BY model")),
        (p, projection("SELECT model -- {m}\nGROUP BY model")),
        (p, projection("SELECT model /* {m} */ GROUP BY model")),
        (p, projection("SELECT lower(model GROUP BY model, '{m}'")),
        (p, projection("SELECT '{m}'; DROP TABLE events")),
        (p, projection("SELECT model, '{m}' SETTINGS max_threads = 1")),
        (x, index("length(url('http://{m}'))")),
        (x, index("model IN (SELECT name FROM system.users WHERE name = '{m}')")),
        (x, index("model = '{m}'; DROP TABLE events")),
        (x, index("model TYPE minmax GRANULARITY 1, DROP INDEX {m}")),
        (x, index(&format!("concat(model, '{{m}}'{})", ", model".repeat(1000)))),
        (q, query("SELECT * FROM secrets WHERE x = '{m}'")),
        (q, query("SELECT * FROM events JOIN secrets USING ({m})")),
        (q, query("SELECT * FROM url('http://{m}')")),
    ]
}

fn profile(i: usize, table: &Value) -> PerformanceProfile {
    let table = serde_json::to_string(table).unwrap().replace("{m}", &marker(i));
    let mut p = Profile::test();
    let endpoint = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:1".into());
    let spec = json!({"endpoint": endpoint, "database": marker(i), "tables": [serde_json::from_str::<Value>(&table).unwrap()]});
    p.spec.clickhouse = Some(serde_json::from_value(spec).unwrap());
    p
}

fn write_yaml(i: usize, p: &PerformanceProfile) -> PathBuf {
    let path = std::env::temp_dir().join(format!("hostile-{}-{i}.yaml", std::process::id()));
    let mut value = serde_json::to_value(p).unwrap();
    value["apiVersion"] = json!("perf.operator.dev/v1alpha1");
    value["kind"] = json!("PerformanceProfile");
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.retain(|k, _| k == "name" || k == "namespace");
    }
    std::fs::write(&path, serde_saphyr::to_string(&value).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn hostile_declarations_are_refused_by_validate_plan_and_reconcile_and_never_sent() {
    for (i, (field, table)) in cases().iter().enumerate() {
        let p = profile(i, table);
        let path = write_yaml(i, &p);

        let report = perf_operator::validate::validate_paths(std::slice::from_ref(&path)).unwrap();
        assert!(report.findings.iter().any(|f| f.field == *field), "validate, case {i}: {:?}", report.findings);

        let planned = perf_operator::plan::load_valid_profiles(&path).unwrap_err().to_string();
        assert!(planned.contains(field), "plan, case {i}: {planned}");
        std::fs::remove_file(&path).ok();

        let world = World::with(p, None).await;
        world.reconcile_settled().await.unwrap();
        let (status, reason, message) = World::condition(&world.profile().await, "Degraded");
        assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"), "reconcile, case {i}: {message}");
        assert!(message.contains(field), "reconcile, case {i}: {message}");
    }
    if let Ok(log) = std::env::var("CLICKHOUSE_QUERY_LOG") {
        let sent = std::fs::read_to_string(&log).unwrap_or_default();
        let prefix = format!("mark{}x", std::process::id());
        assert!(!sent.contains(&prefix), "a hostile declaration reached the server: {log}");
    }
}
