//! Against the real ClickHouse engine: `CLICKHOUSE_URL` from tests/support/start-clickhouse.sh (tests/run.sh).
//! Each test has its own database so they run in parallel.

use clickhouse::{Client, Row};
use perf_clickhouse::{
    Credentials, DdlPlan, Health, LiveSchema, apply, cleanup, decide, observe_live, outcome, plan_ddl,
    unreachable_status, validate,
};
use perf_operator_api::clickhouse::{ClickHouseSpec, CodecSpec, IndexSpec, ProjectionSpec, TableSpec};
use perf_operator_api::status::ClickHouseStatus;
use serde::Deserialize;
use std::time::{Duration, Instant};

mod common;

use common::url;

/// A fresh database with the seed's events table and 100k rows.
async fn seed(name: &str) -> (Client, String) {
    let (client, db) = common::fresh(name).await;
    client
        .query("CREATE TABLE events (timestamp DateTime, model String, score Float64, latency_ms UInt32) ENGINE = MergeTree ORDER BY timestamp")
        .execute()
        .await
        .unwrap();
    client
        .query("INSERT INTO events SELECT toDateTime('2026-01-01 00:00:00') + number, concat('model-', toString(number % 20)), (number % 1000) / 1000.0, number % 1000 FROM numbers(100000)")
        .execute()
        .await
        .unwrap();
    (client, db)
}

fn index(name: &str, expression: &str, index_type: &str, granularity: u32) -> IndexSpec {
    IndexSpec { name: name.into(), expression: expression.into(), index_type: index_type.into(), granularity }
}

fn codec(column: &str, codec: &str) -> CodecSpec {
    CodecSpec { column: column.into(), codec: codec.into() }
}

/// The seed's hand-written tuning, declared.
fn events() -> TableSpec {
    TableSpec {
        name: "events".into(),
        projections: vec![ProjectionSpec {
            name: "p_model".into(),
            query: "SELECT model, avg(score), count() GROUP BY model".into(),
        }],
        indexes: vec![
            index("i_latency", "latency_ms", "minmax", 1),
            index("i_model", "model", "bloom_filter(0.01)", 4),
        ],
        codecs: vec![
            codec("timestamp", "DoubleDelta, ZSTD(1)"),
            codec("score", "Gorilla, ZSTD(1)"),
            codec("latency_ms", "T64, ZSTD(1)"),
            codec("model", "ZSTD(3)"),
        ],
        ..Default::default()
    }
}

fn spec(db: &str, tables: Vec<TableSpec>) -> ClickHouseSpec {
    ClickHouseSpec { endpoint: url(), database: db.into(), tables, ..Default::default() }
}

/// One round as the controller runs it: observe, decide, apply; a server that cannot be read fails every table.
async fn round(
    spec: &ClickHouseSpec,
    creds: Option<Credentials>,
    previous: Option<&ClickHouseStatus>,
) -> ClickHouseStatus {
    match observe_live(&perf_clickhouse::Http::open(), spec, creds.clone()).await {
        Ok(live) => apply(&perf_clickhouse::Http::open(), spec, creds, decide(spec, &live, previous).unwrap()).await,
        Err(e) => unreachable_status(spec, previous, &e),
    }
}

/// Rounds until `done` (materialisation runs in the background); the status and how many rounds it took.
async fn until(
    spec: &ClickHouseSpec,
    previous: Option<ClickHouseStatus>,
    done: impl Fn(&ClickHouseStatus) -> bool,
) -> (ClickHouseStatus, usize) {
    let start = Instant::now();
    let mut status = round(spec, None, previous.as_ref()).await;
    let mut rounds = 1;
    while !done(&status) {
        assert!(start.elapsed() < Duration::from_secs(120), "not there after {rounds} rounds: {status:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = round(spec, None, Some(&status)).await;
        rounds += 1;
    }
    (status, rounds)
}

/// Rounds until every table is in sync.
async fn until_in_sync(spec: &ClickHouseSpec, previous: Option<ClickHouseStatus>) -> ClickHouseStatus {
    until(spec, previous, |s| outcome(s).ready).await.0
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct Named {
    name: String,
    definition: String,
}

async fn projections(c: &Client, db: &str) -> Vec<Named> {
    let sql = "SELECT name, query AS definition FROM system.projections WHERE database = ? ORDER BY name";
    c.query(sql).bind(db).fetch_all().await.unwrap()
}

async fn indexes(c: &Client, db: &str) -> Vec<Named> {
    let sql = "SELECT name, concat(expr, ' ', type_full, ' ', toString(granularity)) AS definition \
               FROM system.data_skipping_indices WHERE database = ? ORDER BY name";
    c.query(sql).bind(db).fetch_all().await.unwrap()
}

async fn codecs(c: &Client, db: &str) -> Vec<Named> {
    let sql = "SELECT name, compression_codec AS definition FROM system.columns WHERE database = ? AND table = 'events' ORDER BY name";
    c.query(sql).bind(db).fetch_all().await.unwrap()
}

async fn mutation_count(c: &Client, db: &str) -> u64 {
    c.query("SELECT count() FROM system.mutations WHERE database = ?").bind(db).fetch_one().await.unwrap()
}

fn named(pairs: &[(&str, &str)]) -> Vec<Named> {
    pairs.iter().map(|(n, d)| Named { name: n.to_string(), definition: d.to_string() }).collect()
}

#[tokio::test]
async fn seed_table_gets_projection_indexes_and_codecs_and_reapplying_is_a_no_op() {
    let (c, db) = seed("seed").await;
    let spec = spec(&db, vec![events()]);
    let status = until_in_sync(&spec, None).await;
    assert_eq!(status.tables[0].state, "InSync");
    assert_eq!((status.tables[0].applied, status.tables[0].pending), (7, 0));
    assert_eq!(projections(&c, &db).await, named(&[("p_model", "SELECT model, avg(score), count() GROUP BY model")]));
    assert_eq!(
        indexes(&c, &db).await,
        named(&[("i_latency", "latency_ms minmax 1"), ("i_model", "model bloom_filter(0.01) 4")])
    );
    assert_eq!(
        codecs(&c, &db).await,
        named(&[
            ("latency_ms", "CODEC(T64, ZSTD(1))"),
            ("model", "CODEC(ZSTD(3))"),
            ("score", "CODEC(Gorilla(8), ZSTD(1))"),
            ("timestamp", "CODEC(DoubleDelta, ZSTD(1))"),
        ])
    );
    // The server answers the seed's dashboard query from the projection.
    let explain: Vec<String> =
        c.query("EXPLAIN SELECT model, avg(score) FROM events GROUP BY model").fetch_all().await.unwrap();
    assert!(explain.iter().any(|l| l.contains("p_model")), "{explain:#?}");

    // Reapplying: nothing to send, nothing sent.
    let live = observe_live(&perf_clickhouse::Http::open(), &spec, None).await.unwrap();
    assert_eq!(plan_ddl(&spec, Some(&live)).unwrap(), DdlPlan::default());
    assert_eq!(decide(&spec, &live, Some(&status)).unwrap().statements(), 0);
    let mutations = mutation_count(&c, &db).await;
    let again = round(&spec, None, Some(&status)).await;
    assert_eq!(again, status);
    assert_eq!(mutation_count(&c, &db).await, mutations);
}

#[tokio::test]
async fn changed_projection_is_replaced() {
    let (c, db) = seed("replace").await;
    let mut spec = spec(&db, vec![events()]);
    let status = until_in_sync(&spec, None).await;
    spec.tables[0].projections[0].query = "select model, max(latency_ms) group by model".into();
    let status = until_in_sync(&spec, Some(status)).await;
    assert_eq!(projections(&c, &db).await, named(&[("p_model", "SELECT model, max(latency_ms) GROUP BY model")]));
    // The server's spelling differs from ours (lower-case keywords); still no statement on the next round.
    let live = observe_live(&perf_clickhouse::Http::open(), &spec, None).await.unwrap();
    assert_eq!(plan_ddl(&spec, Some(&live)).unwrap(), DdlPlan::default());
    assert_eq!(round(&spec, None, Some(&status)).await, status);
}

#[tokio::test]
async fn prune_drops_only_what_the_operator_created_and_only_when_asked() {
    let (c, db) = seed("prune").await;
    c.query("ALTER TABLE events ADD INDEX i_theirs score TYPE minmax GRANULARITY 2").execute().await.unwrap();
    let mut spec = spec(&db, vec![events()]);
    let status = until_in_sync(&spec, None).await;
    assert_eq!(indexes(&c, &db).await.len(), 3);

    spec.tables[0].indexes.retain(|x| x.name != "i_model");
    let status = until_in_sync(&spec, Some(status)).await;
    let names = |v: Vec<Named>| v.into_iter().map(|n| n.name).collect::<Vec<_>>();
    assert_eq!(names(indexes(&c, &db).await), ["i_latency", "i_model", "i_theirs"], "prune off: kept");
    let kept = cleanup(&perf_clickhouse::Http::open(), &spec, None, Some(&status)).await.unwrap();
    assert_eq!(kept, status, "finalizer without prune touches nothing");
    assert_eq!(names(indexes(&c, &db).await), ["i_latency", "i_model", "i_theirs"]);

    spec.prune = true;
    let status = until_in_sync(&spec, Some(status)).await;
    assert_eq!(names(indexes(&c, &db).await), ["i_latency", "i_theirs"], "prune on: only its own is dropped");

    let after = cleanup(&perf_clickhouse::Http::open(), &spec, None, Some(&status)).await.unwrap();
    assert_eq!(names(indexes(&c, &db).await), ["i_theirs"], "finalizer with prune: all its own, nothing else");
    assert!(projections(&c, &db).await.is_empty());
    assert!(after.managed.is_empty(), "{:?}", after.managed);
}

#[tokio::test]
async fn bad_expressions_are_rejected_before_any_ddl() {
    let (c, db) = seed("reject").await;
    let mut bad = events();
    bad.name = "other".into();
    bad.indexes.push(index("i_evil", "latency_ms TYPE minmax GRANULARITY 1, DROP COLUMN score", "minmax", 1));
    let spec = spec(&db, vec![events(), bad]);
    let err = observe_live(&perf_clickhouse::Http::open(), &spec, None).await.unwrap_err();
    assert_eq!(err.category(), "InvalidSpec");
    assert!(err.to_string().starts_with("spec.clickhouse.tables[1].indexes[2].expression: "), "{err}");
    assert!(decide(&spec, &LiveSchema::default(), None).is_err());
    assert!(plan_ddl(&spec, None).is_err());
    assert!(projections(&c, &db).await.is_empty());
    assert!(indexes(&c, &db).await.is_empty());
    assert!(codecs(&c, &db).await.iter().all(|n| n.definition.is_empty()), "no codec changed");
    assert_eq!(mutation_count(&c, &db).await, 0);
}

#[tokio::test]
async fn failing_mutation_is_reported_and_a_fixed_spec_recovers() {
    let (c, db) = seed("mutation").await;
    // A spec can no longer make a materialisation fail (throwIf and the other throwing functions are refused in
    // indexes: check::bounds); the failure is made by hand on the operator's own index, as a server-side change
    // would leave it.
    let table = TableSpec {
        name: "events".into(),
        indexes: vec![index("i_guard", "latency_ms", "minmax", 1)],
        ..Default::default()
    };
    let spec = spec(&db, vec![table]);
    let in_sync = until_in_sync(&spec, None).await;
    assert!(validate::desired(&spec_with_index(&db, "throwIf(latency_ms > 990)")).is_err(), "throwIf is refused");
    for sql in [
        "ALTER TABLE events DROP INDEX i_guard",
        "ALTER TABLE events ADD INDEX i_guard throwIf(latency_ms > 990) TYPE minmax GRANULARITY 1",
    ] {
        c.query(sql).execute().await.unwrap();
    }
    c.query("ALTER TABLE events MATERIALIZE INDEX i_guard")
        .with_setting("mutations_sync", "0")
        .execute()
        .await
        .unwrap();

    // The operator's record lets it kill the stuck mutation, drop the index and add the declared one again.
    until_in_sync(&spec, Some(in_sync)).await;
    assert_eq!(indexes(&c, &db).await, named(&[("i_guard", "latency_ms minmax 1")]));
    let stuck: u64 = c
        .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
        .bind(&db)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stuck, 0, "the failing mutation is gone");
}

fn spec_with_index(db: &str, expression: &str) -> ClickHouseSpec {
    let table =
        TableSpec { name: "events".into(), indexes: vec![index("i", expression, "minmax", 1)], ..Default::default() };
    spec(db, vec![table])
}

#[tokio::test]
async fn missing_table_and_unreachable_server_are_reported_per_table() {
    let (c, db) = seed("missing").await;
    let missing = TableSpec { name: "nope".into(), ..events() };
    let spec = spec(&db, vec![missing, events()]);
    let (status, _) = until(&spec, None, |s| s.tables[1].state == "InSync").await;
    assert_eq!(status.tables[0].state, "Failed");
    assert_eq!(status.tables[0].message.as_deref(), Some(format!("table `{db}`.`nope` does not exist").as_str()));
    assert_eq!(projections(&c, &db).await.len(), 1, "the existing table went ahead");
    assert!(outcome(&status).message.starts_with("nope: table"));

    let down = ClickHouseSpec { endpoint: "http://127.0.0.1:1".into(), ..spec.clone() };
    let creds = Credentials { user: "ops".into(), password: "s3cret".into() };
    assert!(!format!("{creds:?}").contains("s3cret"));
    let failed = round(&down, Some(creds), Some(&status)).await;
    assert!(failed.tables.iter().all(|t| t.state == "Failed"), "{failed:#?}");
    let message = failed.tables[1].message.as_deref().unwrap();
    assert!(message.contains("unreachable") && message.contains("127.0.0.1:1"), "{message}");
    assert_eq!(failed.managed, status.managed, "records survive an outage");
}

/// Valid to our checks, refused by the server: an aggregating projection may not have ORDER BY.
fn refused_projection() -> ProjectionSpec {
    ProjectionSpec { name: "p_bad".into(), query: "SELECT model, avg(score) GROUP BY model ORDER BY model".into() }
}

#[tokio::test]
async fn rejected_statement_is_reported_with_the_server_message_and_not_resent() {
    let (_c, db) = seed("rejected").await;
    let table = TableSpec { name: "events".into(), projections: vec![refused_projection()], ..Default::default() };
    let spec = spec(&db, vec![table]);
    let status = round(&spec, None, None).await;
    let message = status.tables[0].message.as_deref().unwrap();
    assert_eq!(status.tables[0].state, "Failed");
    assert!(message.starts_with("statement `ALTER TABLE "), "{message}");
    assert!(message.contains("Code: 583"), "{message}");
    let object = &status.tables[0].objects[0];
    assert_eq!((object.state.as_str(), object.failed.is_some()), ("Failed", true), "{object:?}");
    // Nothing changed: the next rounds do not send it again, and keep saying why.
    let live = observe_live(&perf_clickhouse::Http::open(), &spec, None).await.unwrap();
    assert_eq!(decide(&spec, &live, Some(&status)).unwrap().statements(), 0);
    let again = round(&spec, None, Some(&status)).await;
    assert_eq!(again.tables[0].objects, status.tables[0].objects);
    assert!(again.tables[0].message.as_deref().unwrap().contains("Code: 583"));
    // The spec changes: sent again, and accepted.
    let mut fixed = spec.clone();
    fixed.tables[0].projections[0].query = "SELECT model, avg(score) GROUP BY model".into();
    let status = until_in_sync(&fixed, Some(again)).await;
    assert_eq!(status.tables[0].objects[0].state, "InSync");
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct Materialised {
    name: String,
    on_disk: bool,
}

/// Indexes of `events` and whether their data is written in the parts (what MATERIALIZE INDEX does).
async fn materialised_indexes(c: &Client, db: &str) -> Vec<Materialised> {
    let sql = "SELECT name, data_compressed_bytes > 0 AS on_disk FROM system.data_skipping_indices \
               WHERE database = ? AND table = 'events' ORDER BY name";
    c.query(sql).bind(db).fetch_all().await.unwrap()
}

/// Materialisations of `events` the server finished without a failure.
async fn finished_materialisations(c: &Client, db: &str) -> Vec<String> {
    let sql = "SELECT command FROM system.mutations WHERE database = ? AND table = 'events' \
               AND is_done = 1 AND latest_fail_reason = '' ORDER BY command";
    let commands: Vec<String> = c.query(sql).bind(db).fetch_all().await.unwrap();
    commands.into_iter().map(|c| c.trim_matches(|c| c == '(' || c == ')').to_string()).collect()
}

#[tokio::test]
async fn a_bad_codec_blocks_no_index() {
    let (c, db) = seed("alone").await;
    // Gorilla on a String: refused by the type check, never sent; the indexes go ahead.
    let table = TableSpec {
        name: "events".into(),
        indexes: vec![
            index("i_latency", "latency_ms", "minmax", 1),
            index("i_model", "model", "bloom_filter(0.01)", 4),
        ],
        codecs: vec![codec("model", "Gorilla")],
        ..Default::default()
    };
    let spec = spec(&db, vec![table]);
    let (status, rounds) = until(&spec, None, |s| s.tables[0].applied == 2 && s.tables[0].running_mutations == 0).await;
    eprintln!("settled after {rounds} round(s): {:#?}", status.tables[0]);

    assert_eq!(
        materialised_indexes(&c, &db).await,
        [
            Materialised { name: "i_latency".into(), on_disk: true },
            Materialised { name: "i_model".into(), on_disk: true }
        ]
    );
    assert_eq!(finished_materialisations(&c, &db).await, ["MATERIALIZE INDEX i_latency", "MATERIALIZE INDEX i_model"]);
    assert!(status.managed.iter().filter(|m| m.kind == "Index").all(|m| m.materialized), "{:?}", status.managed);

    let t = &status.tables[0];
    assert_eq!((t.state.as_str(), t.applied, t.pending), ("Failed", 2, 1));
    let message = t.message.as_deref().unwrap();
    assert!(message.contains("codec `model` is not sent: codec Gorilla is for Float32 and Float64"), "{message}");
    let states: Vec<(&str, &str)> = t.objects.iter().map(|o| (o.name.as_str(), o.state.as_str())).collect();
    assert_eq!(states, [("i_latency", "InSync"), ("i_model", "InSync"), ("model", "Refused")]);
    assert_eq!(outcome(&status).health, Health::Failed);
    assert!(codecs(&c, &db).await.iter().all(|n| n.definition.is_empty()), "the codec was not changed");
}

#[tokio::test]
async fn a_refused_add_skips_only_its_materialise_and_every_failure_is_listed() {
    let (c, db) = seed("chain").await;
    let table = TableSpec {
        name: "events".into(),
        projections: vec![refused_projection()],
        indexes: vec![index("i_bad", "no_such_column", "minmax", 1), index("i_latency", "latency_ms", "minmax", 1)],
        codecs: vec![codec("model", "Delta, ZSTD(1)"), codec("latency_ms", "T64, ZSTD(1)")],
        ..Default::default()
    };
    let spec = spec(&db, vec![table]);
    let (status, rounds) = until(&spec, None, |s| s.tables[0].applied == 2 && s.tables[0].running_mutations == 0).await;
    eprintln!("settled after {rounds} round(s): {:#?}", status.tables[0]);

    assert_eq!(materialised_indexes(&c, &db).await, [Materialised { name: "i_latency".into(), on_disk: true }]);
    assert_eq!(finished_materialisations(&c, &db).await, ["MATERIALIZE INDEX i_latency"], "none for p_bad or i_bad");
    assert_eq!(codecs(&c, &db).await[0], Named { name: "latency_ms".into(), definition: "CODEC(T64, ZSTD(1))".into() });

    let t = &status.tables[0];
    assert_eq!((t.state.as_str(), t.applied, t.pending), ("Failed", 2, 3));
    let state = |name: &str| t.objects.iter().find(|o| o.name == name).map(|o| o.state.clone()).unwrap();
    assert_eq!(
        [state("p_bad"), state("i_bad"), state("model"), state("i_latency"), state("latency_ms")],
        ["Failed", "Refused", "Refused", "InSync", "InSync"]
    );
    let message = t.message.as_deref().unwrap();
    assert!(message.contains("ADD PROJECTION `p_bad`") && message.contains("Code: 583"), "{message}");
    assert!(message.contains("index `i_bad` is not sent: column `no_such_column` does not exist"), "{message}");
    assert!(message.contains("codec `model` is not sent: codec Delta needs a fixed-size value"), "{message}");
}

#[derive(Row, serde::Serialize, Deserialize, Debug, PartialEq)]
struct Event {
    model: String,
    latency_ms: u32,
}

/// The test endpoint speaks what the client sends: RowBinary inserts, server-side parameters, keep-alive.
#[tokio::test]
async fn endpoint_round_trips_inserts_and_parameters() {
    let (c, _db) = seed("endpoint").await;
    c.query("CREATE TABLE small (model String, latency_ms UInt32) ENGINE = MergeTree ORDER BY model")
        .execute()
        .await
        .unwrap();
    let mut insert = c.insert::<Event>("small").await.unwrap();
    for (i, model) in ["a", "b'quote", "c\\slash"].into_iter().enumerate() {
        insert.write(&Event { model: model.into(), latency_ms: i as u32 }).await.unwrap();
    }
    insert.end().await.unwrap();
    let rows: Vec<Event> = c
        .query("SELECT model, latency_ms FROM small WHERE model != {skip:String} ORDER BY model")
        .param("skip", "a")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows,
        [Event { model: "b'quote".into(), latency_ms: 1 }, Event { model: "c\\slash".into(), latency_ms: 2 }]
    );
    let err = c.query("SELECT no_such_column FROM small").execute().await.unwrap_err().to_string();
    assert!(err.contains("Code: 47"), "{err}");
}

#[tokio::test]
async fn question_marks_in_strings_are_sent_verbatim() {
    let (c, db) = seed("ternary").await;
    let table = TableSpec {
        name: "events".into(),
        indexes: vec![index("i_slow", "if(latency_ms > 500, 'slow?', 'fast')", "set(2)", 1)],
        ..Default::default()
    };
    let spec = spec(&db, vec![table]);
    let status = until_in_sync(&spec, None).await;
    let live = indexes(&c, &db).await;
    assert_eq!(live.len(), 1);
    assert!(live[0].definition.contains("'slow?'"), "{live:?}");
    assert_eq!(round(&spec, None, Some(&status)).await, status);
    // The ternary operator itself reads like a bind placeholder: refused with a clear message (use if()).
    let mut ternary = spec.clone();
    ternary.tables[0].indexes[0].expression = "latency_ms > 500 ? 'slow' : 'fast'".into();
    let err = observe_live(&perf_clickhouse::Http::open(), &ternary, None).await.unwrap_err().to_string();
    assert!(err.starts_with("spec.clickhouse.tables[0].indexes[0].expression: "), "{err}");
}

/// The engine of tests/run.sh (chdb-core 26.9) has `system.server_settings`: its built-in defaults,
/// max_connections 4096 and max_concurrent_queries 0 (no limit), so max_connections binds.
#[tokio::test]
async fn server_limits_are_read_from_system_server_settings() {
    let spec = ClickHouseSpec { endpoint: url(), ..ClickHouseSpec::default() };
    let limits = perf_clickhouse::limits::read(&perf_clickhouse::Http::open(), &spec, None).await.unwrap();
    assert_eq!((limits.max_connections, limits.max_concurrent_queries), (Some(4096), Some(0)));
    assert_eq!(limits.missing, None);
    let binding = limits.binding().unwrap();
    assert_eq!((binding.setting, binding.value), ("max_connections", 4096));
    let nobody = ClickHouseSpec { endpoint: "http://127.0.0.1:9".into(), ..ClickHouseSpec::default() };
    let down = perf_clickhouse::limits::read(&perf_clickhouse::Http::open(), &nobody, None).await.unwrap_err();
    assert_eq!(down.category(), "Unreachable", "{down}");
}

/// A server without the table (before 23.x) answers code 60, which `limits::absent` turns into unknown limits:
/// the engine's own answer for a system table it does not have, so the fallback matches what servers send.
#[tokio::test]
async fn a_server_without_the_settings_table_answers_what_the_fallback_expects() {
    let client = Client::default().with_url(url());
    let err = client
        .query("SELECT name, value FROM system.server_settings_of_another_age")
        .fetch_all::<(String, String)>()
        .await;
    let text = match err {
        Err(clickhouse::error::Error::BadResponse(text)) => text,
        other => panic!("expected the server's refusal, got {other:?}"),
    };
    assert!(text.contains("Code: 60."), "{text}");
    let statement = perf_clickhouse::Error::Statement { statement: "SELECT".into(), message: text };
    let limits = perf_clickhouse::limits::absent(statement).unwrap();
    assert_eq!((limits.binding(), limits.missing.is_some()), (None, true));
}
