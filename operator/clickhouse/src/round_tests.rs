//! `decide` and `unreachable_status` without a server.

use super::*;
use crate::diff::{Action, INDEX, PROJECTION};
use crate::observe::LiveColumn;
use perf_operator_api::clickhouse::{CodecSpec, IndexSpec, TableSpec};

fn table(name: &str) -> TableSpec {
    TableSpec {
        name: name.into(),
        indexes: vec![IndexSpec {
            name: "i_latency".into(),
            expression: "latency_ms".into(),
            index_type: "minmax".into(),
            granularity: 1,
        }],
        codecs: vec![CodecSpec { column: "model".into(), codec: "ZSTD(3)".into() }],
        ..Default::default()
    }
}

fn spec(tables: Vec<TableSpec>) -> ClickHouseSpec {
    ClickHouseSpec { endpoint: "http://ch:8123".into(), database: "db".into(), tables, ..Default::default() }
}

fn live_table(engine: &str) -> LiveTable {
    let col = |t: &str| LiveColumn { data_type: t.into(), codec: String::new() };
    let columns = [("model".to_string(), col("String")), ("latency_ms".to_string(), col("UInt32"))].into();
    LiveTable { engine: engine.into(), columns, ..Default::default() }
}

fn schema(tables: &[(&str, &str)]) -> LiveSchema {
    LiveSchema { tables: tables.iter().map(|(n, e)| (n.to_string(), live_table(e))).collect() }
}

fn record(table: &str, kind: &str, name: &str) -> ManagedObject {
    let definition = "score TYPE minmax GRANULARITY 1".to_string();
    ManagedObject {
        table: table.into(),
        kind: kind.into(),
        name: name.into(),
        live: definition.clone(),
        definition,
        materialized: true,
    }
}

#[test]
fn declared_tables_come_in_spec_order_with_their_known_errors() {
    let spec = spec(vec![table("zeta"), table("missing"), table("logs"), table("alpha")]);
    let live = schema(&[("alpha", "MergeTree"), ("logs", "Log"), ("zeta", "ReplicatedMergeTree")]);
    let plan = decide(&spec, &live, None).unwrap();
    let names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["zeta", "missing", "logs", "alpha"]);
    assert_eq!(plan.tables[1].error.as_deref(), Some("table `db`.`missing` does not exist"));
    let engine = plan.tables[2].error.as_deref().unwrap();
    assert!(engine.starts_with("table engine Log has no projections"), "{engine}");
    assert_eq!(plan.tables[1].plan, TablePlan::default(), "nothing is sent to a table with an error");
    // ADD, MODIFY and MATERIALIZE on each of the two MergeTree tables.
    assert_eq!(plan.tables[0].plan.actions.len(), 3);
    assert_eq!(plan.statements(), 6);
}

#[test]
fn tables_with_only_records_left_are_planned_for_pruning_when_they_exist() {
    let mut spec = spec(vec![table("events")]);
    spec.prune = true;
    let mut live = schema(&[("events", "MergeTree"), ("old", "MergeTree")]);
    let foreign = crate::observe::LiveIndex { expression: "score".into(), index_type: "minmax".into(), granularity: 1 };
    live.tables.get_mut("old").unwrap().indexes.insert("i_old".into(), foreign);
    let managed = vec![record("old", INDEX, "i_old"), record("gone", PROJECTION, "p"), record("old", INDEX, "i_x")];
    let previous = ClickHouseStatus { tables: vec![], managed: managed.clone() };
    let plan = decide(&spec, &live, Some(&previous)).unwrap();
    let names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["events", "old"], "`gone` no longer exists: nothing to send");
    assert_eq!(plan.tables[1].plan.actions, [Action::DropIndex { name: "i_old".into() }]);
    assert_eq!(plan.managed, managed, "records are carried to apply");

    spec.prune = false;
    let plan = decide(&spec, &live, Some(&previous)).unwrap();
    assert_eq!(plan.tables[1].plan.actions, [], "without prune nothing is dropped");
}

#[test]
fn an_invalid_spec_is_an_error_before_any_plan() {
    let mut bad = table("events");
    bad.indexes[0].expression = "latency_ms; DROP TABLE events".into();
    let err = decide(&spec(vec![bad]), &LiveSchema::default(), None).unwrap_err();
    assert_eq!(err.category(), "InvalidSpec");
}

#[test]
fn unreachable_fails_every_declared_table_and_keeps_the_records() {
    let previous = ClickHouseStatus { tables: vec![], managed: vec![record("events", INDEX, "i_latency")] };
    let error = Error::Unreachable { endpoint: "http://ch:8123".into(), message: "connection refused".into() };
    let status = unreachable_status(&spec(vec![table("events"), table("other")]), Some(&previous), &error);
    assert_eq!(status.managed, previous.managed);
    assert_eq!(status.tables.len(), 2);
    for t in &status.tables {
        assert_eq!(t.state, status::FAILED);
        assert_eq!(t.message.as_deref(), Some("ClickHouse at http://ch:8123 is unreachable: connection refused"));
    }
    let fresh = unreachable_status(&spec(vec![table("events")]), None, &error);
    assert!(fresh.managed.is_empty());
}
