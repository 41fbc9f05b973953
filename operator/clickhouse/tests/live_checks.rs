//! The check library against the real engine: our codec verdicts are the server's, rewritten definitions compare
//! equal, and the EXPLAIN report of a risk_assessments-like table of 1M rows says what each object buys.

mod common;

use perf_clickhouse::check::codec;
use perf_clickhouse::{DdlPlan, apply, decide, observe_live, outcome, plan_ddl};
use perf_operator_api::clickhouse::{
    ClickHouseSpec, CodecSpec, IndexSpec, ProjectionSpec, RepresentativeQuery, TableSpec,
};
use perf_operator_api::status::ClickHouseStatus;

const TYPES: [&str; 16] = [
    "UInt8",
    "UInt64",
    "Int32",
    "Float32",
    "Float64",
    "Decimal(18, 4)",
    "Date",
    "DateTime",
    "DateTime64(3)",
    "String",
    "FixedString(16)",
    "LowCardinality(String)",
    "Nullable(Float64)",
    "Array(UInt32)",
    "UUID",
    "Bool",
];
const CHAINS: [&str; 16] = [
    "Delta, ZSTD(1)",
    "Delta",
    "DoubleDelta",
    "Gorilla",
    "Gorilla, ZSTD(1)",
    "FPC",
    "T64",
    "T64, LZ4",
    "GCD, LZ4",
    "ZSTD(3)",
    "LZ4HC",
    "ZSTD(1), Delta",
    "LZ4, ZSTD",
    "NONE, ZSTD",
    "DoubleDelta, LZ4HC(9)",
    "Delta, Delta",
];

/// Every (type, chain) pair: what we say before sending is what the server says when it is sent.
#[tokio::test]
async fn codec_verdicts_match_the_server() {
    let (c, _db) = common::fresh("codecs").await;
    let columns: Vec<String> = TYPES.iter().enumerate().map(|(i, t)| format!("c{i} {t}")).collect();
    c.query(&format!("CREATE TABLE t (id UInt64, {}) ENGINE = MergeTree ORDER BY id", columns.join(", ")))
        .execute()
        .await
        .unwrap();
    let mut disagreements = Vec::new();
    for (i, data_type) in TYPES.iter().enumerate() {
        for chain in CHAINS {
            let ours =
                codec::parse(chain).and_then(|p| codec::chain_rules(&p).and_then(|()| codec::fits(&p, data_type)));
            let sql = format!("ALTER TABLE t MODIFY COLUMN c{i} CODEC({chain})");
            let server = c.query(&sql).execute().await.map_err(|e| e.to_string());
            if server.is_ok() {
                c.query(&format!("ALTER TABLE t MODIFY COLUMN c{i} REMOVE CODEC")).execute().await.unwrap();
            }
            if ours.is_ok() != server.is_ok() {
                disagreements.push(format!("{chain} on {data_type}: ours {ours:?}, server {server:?}"));
            }
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

fn spec(db: &str, table: TableSpec) -> ClickHouseSpec {
    ClickHouseSpec { endpoint: common::url(), database: db.into(), tables: vec![table], ..Default::default() }
}

async fn round(spec: &ClickHouseSpec, previous: Option<&ClickHouseStatus>) -> ClickHouseStatus {
    let live = observe_live(&perf_clickhouse::Http::open(), spec, None).await.unwrap();
    apply(&perf_clickhouse::Http::open(), spec, None, decide(spec, &live, previous).unwrap()).await
}

async fn until_in_sync(spec: &ClickHouseSpec) -> ClickHouseStatus {
    let mut status = round(spec, None).await;
    for _ in 0..200 {
        if outcome(&status).ready {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = round(spec, Some(&status)).await;
    }
    panic!("not in sync: {status:#?}");
}

fn index(name: &str, expression: &str, index_type: &str) -> IndexSpec {
    IndexSpec { name: name.into(), expression: expression.into(), index_type: index_type.into(), granularity: 1 }
}

/// Spellings the server rewrites, and codecs with default parameters: the second run plans nothing, even with
/// no records to lean on (a restarted operator with its status lost).
#[tokio::test]
async fn rewritten_definitions_and_default_codec_levels_plan_nothing_on_the_second_run() {
    let (c, db) = common::fresh("canon").await;
    c.query("CREATE TABLE t (k UInt64, v Float64, s String, d DateTime) ENGINE = MergeTree ORDER BY k")
        .execute()
        .await
        .unwrap();
    let table = TableSpec {
        name: "t".into(),
        projections: vec![
            ProjectionSpec { name: "p_avg".into(), query: "select k, AVG(v), COUNT() group by k".into() },
            ProjectionSpec { name: "p_sorted".into(), query: "SELECT * ORDER BY (s, k)".into() },
        ],
        indexes: vec![
            index("i_eq", "v == 1.0 AND s <> 'x'", "minmax"),
            index("i_tuple", "(k, v)", "minmax"),
            index("i_lower", "LOWER(s)", "bloom_filter(0.01)"),
            index("i_cast", "accurateCastOrNull(v, 'UInt8')", "set(10)"),
        ],
        codecs: vec![
            CodecSpec { column: "s".into(), codec: "ZSTD".into() },
            CodecSpec { column: "d".into(), codec: "Delta, LZ4HC".into() },
            CodecSpec { column: "v".into(), codec: "Gorilla, ZSTD".into() },
        ],
        ..Default::default()
    };
    let spec = spec(&db, table);
    until_in_sync(&spec).await;
    let live = observe_live(&perf_clickhouse::Http::open(), &spec, None).await.unwrap();
    assert_eq!(plan_ddl(&spec, Some(&live)).unwrap(), DdlPlan::default(), "without records");

    // A different level is a difference: ZSTD is ZSTD(1), not any ZSTD.
    c.query("ALTER TABLE t MODIFY COLUMN s CODEC(ZSTD(9))").execute().await.unwrap();
    let live = observe_live(&perf_clickhouse::Http::open(), &spec, None).await.unwrap();
    assert_eq!(
        plan_ddl(&spec, Some(&live)).unwrap().ddl,
        [format!("ALTER TABLE `{db}`.`t` MODIFY COLUMN `s` CODEC(ZSTD)")]
    );
}

/// The seed's workload: per-customer lookups on a time-ordered table. The report shows the projection chosen for
/// them, the bloom filter on a clustered column skipping most granules, and the minmax on a spread column
/// skipping none: what the user should see rather than guess.
#[tokio::test]
async fn explain_reports_the_projection_chosen_and_what_each_index_skips() {
    let (c, db) = common::fresh("explain").await;
    c.query(
        "CREATE TABLE risk_assessments (customer_id UInt64, model LowCardinality(String), score Float64, \
         created_at DateTime, region String) ENGINE = MergeTree ORDER BY created_at",
    )
    .execute()
    .await
    .unwrap();
    c.query(
        "INSERT INTO risk_assessments SELECT number % 5000, concat('m', toString(number % 7)), \
         (number * 7919 % 100000) / 100000.0, toDateTime('2026-01-01 00:00:00') + number, \
         ['us', 'eu', 'apac', 'latam'][intDiv(number, 250000) + 1] FROM numbers(1000000)",
    )
    .execute()
    .await
    .unwrap();
    let q = |name: &str, query: &str, expect: Option<&str>| RepresentativeQuery {
        name: name.into(),
        query: query.into(),
        expect_projection: expect.map(str::to_string),
    };
    let table = TableSpec {
        name: "risk_assessments".into(),
        projections: vec![ProjectionSpec { name: "p_customer".into(), query: "SELECT * ORDER BY customer_id".into() }],
        indexes: vec![index("i_region", "region", "bloom_filter(0.01)"), index("i_score", "score", "minmax")],
        queries: vec![
            q("per_customer", "SELECT avg(score) FROM risk_assessments WHERE customer_id = 42", Some("p_customer")),
            q("by_region", "SELECT count() FROM risk_assessments WHERE region = 'eu'", None),
            q("high_score", "SELECT count() FROM risk_assessments WHERE score > 0.99", None),
        ],
        ..Default::default()
    };
    let spec = spec(&db, table);
    until_in_sync(&spec).await;
    let status = round(&spec, None).await;
    let reports = &status.tables[0].queries;
    eprintln!("{reports:#?}");
    let report = |name: &str| reports.iter().find(|r| r.name == name).unwrap();

    let per_customer = report("per_customer");
    assert_eq!(per_customer.projection.as_deref(), Some("p_customer"));
    assert_eq!(per_customer.expected_projection_used, Some(true));
    assert!(per_customer.primary_key.as_ref().unwrap().skipped_percent >= 90, "{per_customer:?}");

    let by_region = report("by_region");
    assert_eq!(by_region.projection, None);
    let region = by_region.indexes.iter().find(|i| i.name == "i_region").unwrap();
    assert!(region.granules.skipped_percent >= 50, "{region:?}");

    let high_score = report("high_score");
    let score = high_score.indexes.iter().find(|i| i.name == "i_score").unwrap();
    assert!(score.granules.skipped_percent <= 5, "a spread column skips little: {score:?}");
}

/// Conversions of a column, judged on its live type: `toDate` of a DateTime (the usual projection key) cannot fail
/// and is applied; `toUInt8` of a String throws on the first row it cannot parse, so it is refused, never sent,
/// while the rest of the table goes ahead.
#[tokio::test]
async fn a_conversion_is_applied_where_the_columns_type_cannot_fail_and_refused_where_it_can() {
    let (c, db) = common::fresh("conversions").await;
    c.query("CREATE TABLE t (k UInt64, s String, d DateTime) ENGINE = MergeTree ORDER BY k").execute().await.unwrap();
    c.query("INSERT INTO t VALUES (1, 'not a number', '2026-01-01 00:00:00')").execute().await.unwrap();
    let table = TableSpec {
        name: "t".into(),
        projections: vec![ProjectionSpec {
            name: "p_day".into(),
            query: "SELECT toDate(d) AS day, count() GROUP BY day".into(),
        }],
        indexes: vec![index("i_day", "toDate(d)", "minmax"), index("i_num", "toUInt8(s)", "set(10)")],
        ..Default::default()
    };
    let spec = spec(&db, table);
    let status = round(&spec, None).await;
    let t = &status.tables[0];
    let states: Vec<(&str, &str)> = t.objects.iter().map(|o| (o.name.as_str(), o.state.as_str())).collect();
    assert!(states.contains(&("i_num", "Refused")), "{states:?}");
    assert!(!states.iter().any(|(n, s)| *n != "i_num" && *s == "Refused"), "{states:?}");
    let message = t.message.as_deref().unwrap_or_default();
    assert!(message.contains("`toUInt8(s)` throws on a String value"), "{message}");
    // Inserts still work: nothing that could throw was materialised.
    c.query("INSERT INTO t VALUES (2, 'still not a number', '2026-01-02 00:00:00')").execute().await.unwrap();
    let indexes = c
        .query("SELECT name FROM system.data_skipping_indices WHERE database = ? AND table = 't' ORDER BY name")
        .bind(&db)
        .fetch_all::<String>()
        .await
        .unwrap();
    assert_eq!(indexes, ["i_day"], "i_num was never sent");
}
