use super::*;
use crate::observe::{LiveColumn, LiveIndex, LiveMutation, LiveSchema};
use crate::sql::render;
use crate::validate::desired;
use perf_operator_api::clickhouse::{ClickHouseSpec, CodecSpec, IndexSpec, ProjectionSpec, TableSpec};
use perf_operator_api::status::{FailedAttempt, ObjectStatus};

/// The seed's events table as declared.
fn events() -> DesiredTable {
    let table = TableSpec {
        name: "events".into(),
        projections: vec![ProjectionSpec {
            name: "p_model".into(),
            query: "SELECT model, avg(score), count() GROUP BY model".into(),
        }],
        indexes: vec![
            IndexSpec {
                name: "i_latency".into(),
                expression: "latency_ms".into(),
                index_type: "minmax".into(),
                granularity: 1,
            },
            IndexSpec {
                name: "i_model".into(),
                expression: "model".into(),
                index_type: "bloom_filter(0.01)".into(),
                granularity: 4,
            },
        ],
        codecs: vec![CodecSpec { column: "timestamp".into(), codec: "DoubleDelta, ZSTD(1)".into() }],
        ..Default::default()
    };
    let spec = ClickHouseSpec {
        endpoint: "http://x".into(),
        database: "db".into(),
        tables: vec![table],
        ..Default::default()
    };
    desired(&spec).unwrap().remove(0)
}

/// The live table before the operator touched it.
fn bare() -> LiveTable {
    let col = |t: &str| LiveColumn { data_type: t.into(), codec: String::new() };
    LiveTable {
        engine: "MergeTree".into(),
        columns: [("timestamp", "DateTime"), ("model", "String"), ("score", "Float64"), ("latency_ms", "UInt32")]
            .into_iter()
            .map(|(n, t)| (n.to_string(), col(t)))
            .collect(),
        ..Default::default()
    }
}

/// The live table as the server stores the declared objects.
fn tuned() -> LiveTable {
    let mut t = bare();
    t.projections.insert("p_model".into(), "SELECT model, avg(score), count() GROUP BY model".into());
    let idx = |e: &str, ty: &str, g| LiveIndex { expression: e.into(), index_type: ty.into(), granularity: g };
    t.indexes.insert("i_latency".into(), idx("latency_ms", "minmax", 1));
    t.indexes.insert("i_model".into(), idx("model", "bloom_filter(0.01)", 4));
    t.columns.get_mut("timestamp").unwrap().codec = "DoubleDelta, ZSTD(1)".into();
    t
}

fn record(kind: &str, name: &str, definition: &str, live: &str) -> ManagedObject {
    ManagedObject {
        table: "events".into(),
        kind: kind.into(),
        name: name.into(),
        definition: definition.into(),
        live: live.into(),
        materialized: true,
    }
}

fn statements(plan: &TablePlan) -> Vec<String> {
    plan.actions.iter().map(|a| render("db", "events", a)).collect()
}

#[test]
fn empty_table_gets_everything_in_order() {
    let plan = plan(Some(&events()), &bare(), &[], &[], false);
    assert_eq!(
        statements(&plan),
        [
            "ALTER TABLE `db`.`events` ADD PROJECTION `p_model` (SELECT model, avg(score), count() GROUP BY model)",
            "ALTER TABLE `db`.`events` ADD INDEX `i_latency` latency_ms TYPE minmax GRANULARITY 1",
            "ALTER TABLE `db`.`events` ADD INDEX `i_model` model TYPE bloom_filter(0.01) GRANULARITY 4",
            "ALTER TABLE `db`.`events` MODIFY COLUMN `timestamp` CODEC(DoubleDelta, ZSTD(1))",
            "ALTER TABLE `db`.`events` MATERIALIZE PROJECTION `p_model`",
            "ALTER TABLE `db`.`events` MATERIALIZE INDEX `i_latency`",
            "ALTER TABLE `db`.`events` MATERIALIZE INDEX `i_model`",
        ]
    );
    assert_eq!((plan.applied, plan.pending), (0, 4));
}

#[test]
fn matching_table_needs_nothing() {
    let plan = plan(Some(&events()), &tuned(), &[], &[], false);
    assert_eq!(plan.actions, []);
    assert_eq!((plan.applied, plan.pending), (4, 0));
    assert!(plan.conflicts.is_empty());
}

#[test]
fn server_reformatting_is_recognised_from_the_record() {
    let mut live = tuned();
    live.columns.get_mut("timestamp").unwrap().codec = "DoubleDelta, ZSTD(3)".into();
    let plan1 = plan(Some(&events()), &live, &[], &[], false);
    assert_eq!(plan1.actions.len(), 1, "codec differs without a record");
    let rec = record(CODEC, "timestamp", "DoubleDelta, ZSTD(1)", "DoubleDelta, ZSTD(3)");
    let plan2 = plan(Some(&events()), &live, &[rec], &[], false);
    assert_eq!(plan2.actions, [], "record says the server stores what was sent this way");
}

#[test]
fn changed_projection_it_created_is_replaced_after_killing_its_mutation() {
    let mut live = tuned();
    live.projections.insert("p_model".into(), "SELECT model, max(score) GROUP BY model".into());
    live.mutations.push(LiveMutation {
        id: "mutation_7.txt".into(),
        command: "(MATERIALIZE PROJECTION p_model)".into(),
        ..Default::default()
    });
    let old = "SELECT model , max ( score ) GROUP BY model";
    let plan = plan(Some(&events()), &live, &[record(PROJECTION, "p_model", old, old)], &[], false);
    assert_eq!(
        statements(&plan),
        [
            "KILL MUTATION WHERE database = 'db' AND table = 'events' AND mutation_id = 'mutation_7.txt' SYNC",
            "ALTER TABLE `db`.`events` DROP PROJECTION IF EXISTS `p_model`",
            "ALTER TABLE `db`.`events` ADD PROJECTION `p_model` (SELECT model, avg(score), count() GROUP BY model)",
            "ALTER TABLE `db`.`events` MATERIALIZE PROJECTION `p_model`",
        ]
    );
    let p_model = ObjectKey { kind: PROJECTION, name: "p_model".into() };
    assert!(plan.actions.iter().all(|a| a.object() == p_model), "one chain, kill included: {:?}", plan.actions);
}

#[test]
fn changed_object_it_did_not_create_is_a_conflict_not_a_drop() {
    let mut live = tuned();
    live.indexes.get_mut("i_model").unwrap().granularity = 8;
    let plan = plan(Some(&events()), &live, &[], &[], true);
    assert_eq!(plan.actions, []);
    assert_eq!(plan.pending, 1);
    assert!(
        plan.conflicts[0].starts_with("index `i_model` exists with a different definition"),
        "{:?}",
        plan.conflicts
    );
}

#[test]
fn objects_left_in_the_spec_are_pruned_only_when_created_and_asked() {
    let mut live = tuned();
    let foreign = LiveIndex { expression: "score".into(), index_type: "minmax".into(), granularity: 1 };
    live.indexes.insert("i_theirs".into(), foreign.clone());
    live.indexes.insert("i_ours".into(), foreign);
    let ours = record(INDEX, "i_ours", "score TYPE minmax GRANULARITY 1", "score TYPE minmax GRANULARITY 1");
    let keep = plan(Some(&events()), &live, std::slice::from_ref(&ours), &[], false);
    assert_eq!(keep.actions, []);
    let prune = plan(Some(&events()), &live, std::slice::from_ref(&ours), &[], true);
    assert_eq!(prune.actions, [Action::DropIndex { name: "i_ours".into() }]);
    // The whole table left the spec: everything it created goes, nothing else.
    let gone = plan(None, &live, &[ours, record(PROJECTION, "p_model", "x", "y")], &[], true);
    assert_eq!(
        gone.actions,
        [Action::DropIndex { name: "i_ours".into() }, Action::DropProjection { name: "p_model".into() }]
    );
}

#[test]
fn running_and_failed_mutations_are_reported_not_resent() {
    let mut live = tuned();
    live.mutations.push(LiveMutation {
        id: "m1".into(),
        command: "MATERIALIZE INDEX i_latency".into(),
        parts_to_do: 3,
        fail_reason: String::new(),
    });
    live.mutations.push(LiveMutation {
        id: "m2".into(),
        command: "(MATERIALIZE INDEX `i_model`)".into(),
        parts_to_do: 1,
        fail_reason: "Code: 395. boom".into(),
    });
    live.mutations.push(LiveMutation {
        id: "m3".into(),
        command: "MATERIALIZE INDEX i_latency2".into(),
        parts_to_do: 9,
        fail_reason: String::new(),
    });
    let plan = plan(Some(&events()), &live, &[], &[], false);
    assert_eq!(plan.actions, []);
    assert_eq!((plan.running_mutations, plan.parts_to_do), (1, 3));
    assert_eq!(plan.failed_mutations, ["mutation m2 (MATERIALIZE INDEX `i_model`) failed: Code: 395. boom"]);
}

#[test]
fn added_but_not_materialised_gets_only_the_materialise() {
    let mut rec =
        record(INDEX, "i_latency", "latency_ms TYPE minmax GRANULARITY 1", "latency_ms TYPE minmax GRANULARITY 1");
    rec.materialized = false;
    let plan = plan(Some(&events()), &tuned(), &[rec], &[], false);
    assert_eq!(plan.actions, [Action::MaterializeIndex { name: "i_latency".into() }]);
}

#[test]
fn missing_column_for_a_codec_is_a_conflict() {
    let mut live = tuned();
    live.columns.remove("timestamp");
    let plan = plan(Some(&events()), &live, &[], &[], false);
    assert_eq!(plan.conflicts, ["codec `timestamp` is not sent: column `timestamp` does not exist"]);
    assert_eq!(plan.objects.iter().find(|o| o.kind == CODEC).unwrap().state, REFUSED);
}

#[test]
fn refresh_fills_what_the_server_stored_and_forgets_what_is_gone() {
    let mut managed = vec![
        record(PROJECTION, "p_model", "SELECT model , avg ( score ) , count ( ) GROUP BY model", ""),
        record(INDEX, "i_dropped_by_hand", "x", "x"),
    ];
    let schema = LiveSchema { tables: [("events".to_string(), tuned())].into_iter().collect() };
    refresh_managed(&mut managed, &schema);
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].live, "SELECT model, avg(score), count() GROUP BY model");
    refresh_managed(&mut managed, &LiveSchema::default());
    assert!(managed.is_empty(), "table dropped: records go");
}

#[test]
fn codecs_compare_with_the_server_defaults_made_explicit() {
    let mut live = tuned();
    let mut d = events();
    let mut with = |declared: &str, stored: &str| {
        live.columns.get_mut("timestamp").unwrap().codec = stored.into();
        d.codecs[0].chain = crate::check::codec::parse(declared).unwrap();
        d.codecs[0].codec = crate::check::codec::render(&d.codecs[0].chain);
        plan(Some(&d), &live, &[], &[], false).actions.len()
    };
    assert_eq!(with("DoubleDelta, ZSTD", "DoubleDelta, ZSTD(1)"), 0);
    assert_eq!(with("ZSTD", "ZSTD(9)"), 1, "a declared ZSTD is ZSTD(1), not any level");
    assert_eq!(with("DoubleDelta, ZSTD(3)", "DoubleDelta, ZSTD(1)"), 1, "an explicit parameter must match");
    assert_eq!(with("DoubleDelta", "DoubleDelta, ZSTD(1)"), 1, "a shorter chain differs");
    assert_eq!(with("Delta, LZ4", "Delta(4), LZ4"), 0, "Delta on a DateTime is Delta(4)");
    assert_eq!(with("Delta(8), LZ4", "Delta(4), LZ4"), 1);
}

#[test]
fn a_refused_statement_is_not_resent_until_something_changes() {
    let d = events();
    let failed = ObjectStatus {
        kind: INDEX.into(),
        name: "i_model".into(),
        state: FAILED.into(),
        message: Some("Code: 36. refused".into()),
        failed: Some(FailedAttempt { definition: index_text(&d.indexes[1]), live: String::new() }),
    };
    let held = plan(Some(&d), &bare(), &[], std::slice::from_ref(&failed), false);
    assert!(held.actions.iter().all(|a| a.object().name != "i_model"), "{:?}", held.actions);
    assert!(held.actions.iter().any(|a| a.object().name == "i_latency"), "the others still go");
    let status = held.objects.iter().find(|o| o.name == "i_model").unwrap();
    assert_eq!((status.state.as_str(), status.message.as_deref()), (FAILED, Some("Code: 36. refused")));
    // The spec changed: sent again.
    let mut changed = d.clone();
    changed.indexes[1].granularity = 2;
    let again = plan(Some(&changed), &bare(), &[], std::slice::from_ref(&failed), false);
    assert!(again.actions.iter().any(|a| a.object().name == "i_model"));
}

#[test]
fn objects_that_cannot_work_on_the_table_are_refused_alone() {
    let mut d = events();
    d.codecs[0].chain = crate::check::codec::parse("Gorilla, ZSTD").unwrap();
    d.codecs[0].codec = "Gorilla, ZSTD".into();
    d.indexes[0].columns = ["nope".to_string()].into();
    let plan = plan(Some(&d), &bare(), &[], &[], false);
    let state = |name: &str| plan.objects.iter().find(|o| o.name == name).unwrap().state.clone();
    assert_eq!((state("timestamp"), state("i_latency")), (REFUSED.to_string(), REFUSED.to_string()));
    assert_eq!((state("i_model"), state("p_model")), (APPLYING.to_string(), APPLYING.to_string()));
    assert!(
        plan.conflicts.iter().any(|c| c.contains("codec Gorilla is for Float32 and Float64 columns")),
        "{:?}",
        plan.conflicts
    );
}
