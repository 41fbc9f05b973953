use super::*;
use perf_operator_api::clickhouse::{CodecSpec, IndexSpec, ProjectionSpec};
use rstest::rstest;

#[rstest]
#[case::semicolon("latency_ms; DROP TABLE x", "`;` is not allowed")]
#[case::line_comment("latency_ms -- x", "comments are not allowed")]
#[case::block_comment("latency_ms /* x */", "comments are not allowed")]
#[case::hash_comment("latency_ms # x", "comments are not allowed")]
#[case::unbalanced_open("lower(model", "unbalanced `(`")]
#[case::unbalanced_close("lower(model))", "unbalanced `)`")]
#[case::mismatched("lower(model]", "unbalanced `]`")]
#[case::open_quote("model = 'x", "unterminated '")]
#[case::open_backtick("`model", "unterminated `")]
#[case::parameters("{x:String}", "query parameters")]
#[case::heredoc("$$x$$", "heredoc")]
#[case::second_command("latency_ms TYPE minmax GRANULARITY 1, DROP INDEX other", "`TYPE` is not allowed")]
#[case::top_level_comma("latency_ms, model", "top-level `,`")]
#[case::empty("   ", "must not be empty")]
#[case::non_ascii("modèl", "unexpected character")]
fn bad_expressions_are_rejected(#[case] text: &str, #[case] expected: &str) {
    let err = expression("spec.x", text).unwrap_err().to_string();
    assert!(err.starts_with("spec.x: "), "{err}");
    assert!(err.contains(expected), "{err} should contain {expected}");
}

#[rstest]
#[case("latency_ms", "latency_ms")]
#[case("lower( model )", "lower ( model )")]
#[case("(latency_ms+1)*2", "( latency_ms + 1 ) * 2")]
#[case("`model` = 'a;b -- c'", "model = 'a;b -- c'")]
#[case("(model, latency_ms)", "( model , latency_ms )")]
#[case("multiIf(x > 1, 'a', 'b')", "multiif ( x > 1 , 'a' , 'b' )")]
fn good_expressions_normalise(#[case] text: &str, #[case] canonical: &str) {
    assert_eq!(expression("f", text).unwrap(), canonical);
}

#[rstest]
#[case::not_select("DELETE FROM events", "expected a single SELECT")]
#[case::from("SELECT model FROM other GROUP BY model", "`FROM` is not allowed")]
#[case::union("SELECT model UNION ALL SELECT 1", "`UNION` is not allowed")]
#[case::settings("SELECT model ORDER BY model SETTINGS x = 1", "`SETTINGS` is not allowed")]
#[case::escape_parens("SELECT model) DROP PROJECTION p (SELECT 1", "unbalanced `)`")]
#[case::two_statements("SELECT 1; SELECT 2", "`;` is not allowed")]
fn bad_projection_queries_are_rejected(#[case] text: &str, #[case] expected: &str) {
    let err = projection_query("q", text).unwrap_err().to_string();
    assert!(err.contains(expected), "{err} should contain {expected}");
}

#[test]
fn projection_queries_compare_as_the_server_stores_them() {
    let ours = projection_query("q", "select model,AVG(score) , count()  group by model").unwrap();
    let server = normalise_live("SELECT model, avg(score), count() GROUP BY model");
    assert_eq!(ours, server);
    // A subquery inside brackets may use FROM; the server decides whether it is allowed.
    assert!(projection_query("q", "SELECT model, (SELECT 1 FROM numbers(1)) GROUP BY model").is_ok());
}

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

#[rstest]
#[case("DoubleDelta, ZSTD(1)", "DoubleDelta, ZSTD(1)")]
#[case("doubledelta,zstd(3)", "DoubleDelta, ZSTD(3)")]
#[case("Gorilla, LZ4", "Gorilla, LZ4")]
#[case("Delta(4), ZSTD(1, 2)", "Delta(4), ZSTD(1, 2)")]
#[case("T64", "T64")]
fn codecs_render_in_server_spelling(#[case] text: &str, #[case] rendered: &str) {
    assert_eq!(codec("c", text).unwrap(), rendered);
}

#[rstest]
#[case("AES_128_GCM_SIV")]
#[case("ZSTD(1)) , DROP COLUMN x")]
#[case("ZSTD(1.5)")]
#[case("")]
#[case("Delta; DROP TABLE x")]
fn bad_codecs_are_rejected(#[case] text: &str) {
    assert!(codec("spec.c.codec", text).unwrap_err().to_string().starts_with("spec.c.codec: "));
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
