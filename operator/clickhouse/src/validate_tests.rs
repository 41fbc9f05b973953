use super::*;
use perf_operator_api::clickhouse::{CodecSpec, IndexSpec, ProjectionSpec};
use rstest::rstest;

#[rstest]
#[case("minmax", "minmax")]
#[case("bloom_filter(0.01)", "bloom_filter(0.01)")]
#[case("ngrambf_v1(3,256, 2, 0)", "ngrambf_v1(3, 256, 2, 0)")]
#[case("set(100)", "set(100)")]
fn index_types_from_the_allow_list(#[case] text: &str, #[case] rendered: &str) {
    assert_eq!(index_type("t", text).unwrap(), rendered);
}

#[rstest]
#[case("hypothesis")]
#[case("minmax GRANULARITY 1, DROP INDEX x")]
#[case("bloom_filter(x)")]
#[case("bloom_filter(0.01")]
#[case("set(inf)")]
fn unknown_index_types_are_rejected(#[case] text: &str) {
    let err = index_type("spec.t.type", text).unwrap_err().to_string();
    assert!(err.contains("is not an index type"), "{err}");
}

fn spec_with(table: TableSpec) -> ClickHouseSpec {
    ClickHouseSpec {
        endpoint: "http://127.0.0.1:1".into(),
        database: "db".into(),
        tables: vec![table],
        ..Default::default()
    }
}

#[test]
fn errors_name_the_field() {
    let index = IndexSpec { name: "i".into(), expression: "a;".into(), index_type: "minmax".into(), granularity: 1 };
    let table = TableSpec { name: "events".into(), indexes: vec![index], ..Default::default() };
    let err = desired(&spec_with(table)).unwrap_err();
    assert_eq!(err.category(), "InvalidSpec");
    assert!(err.to_string().starts_with("spec.clickhouse.tables[0].indexes[0].expression: "), "{err}");

    let p = |n: &str| ProjectionSpec { name: n.into(), query: "SELECT 1".into() };
    let x = IndexSpec { name: "p".into(), expression: "a".into(), index_type: "minmax".into(), granularity: 1 };
    let table = TableSpec { name: "events".into(), projections: vec![p("p")], indexes: vec![x], ..Default::default() };
    let err = desired(&spec_with(table)).unwrap_err().to_string();
    assert!(err.contains("indexes[0].name") && err.contains("used twice"), "{err}");

    let c = CodecSpec { column: "bad-name".into(), codec: "ZSTD".into() };
    let table = TableSpec { name: "events".into(), codecs: vec![c], ..Default::default() };
    assert!(desired(&spec_with(table)).unwrap_err().to_string().contains("codecs[0].column"));

    let table = TableSpec { name: "events`; x".into(), ..Default::default() };
    assert!(desired(&spec_with(table)).unwrap_err().to_string().contains("tables[0].name"));
}

#[test]
fn every_problem_is_listed_with_its_field() {
    let index = IndexSpec {
        name: "i".into(),
        expression: "x IN (SELECT 1)".into(),
        index_type: "minmax".into(),
        granularity: 1,
    };
    let projection = ProjectionSpec { name: "p".into(), query: "SELECT * FROM url('http://x')".into() };
    let codec = CodecSpec { column: "c".into(), codec: "ZSTD, Delta".into() };
    let table = TableSpec {
        name: "events".into(),
        projections: vec![projection],
        indexes: vec![index],
        codecs: vec![codec],
        ..Default::default()
    };
    let fields: Vec<String> = problems(&spec_with(table))
        .iter()
        .map(|e| e.to_string().split(':').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.clickhouse.tables[0].projections[0].query",
            "spec.clickhouse.tables[0].indexes[0].expression",
            "spec.clickhouse.tables[0].codecs[0].codec",
        ]
    );
}

#[test]
fn the_servers_own_databases_are_refused_whatever_their_case() {
    for database in ["system", "System", "information_schema", "INFORMATION_SCHEMA"] {
        let spec = ClickHouseSpec { database: database.into(), ..spec_with(TableSpec::default()) };
        let problems: Vec<String> = problems(&spec).iter().map(ToString::to_string).collect();
        assert!(
            problems.iter().any(|p| p.starts_with("spec.clickhouse.database: ") && p.contains("server's own")),
            "{database}: {problems:?}"
        );
    }
    assert!(!is_server_database("system_events"));
}
