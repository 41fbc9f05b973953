use super::*;
use rstest::rstest;

/// Hostile projection queries: each refused, naming the construct.
#[rstest]
#[case::table_function_url("SELECT * FROM url('http://evil/x', CSV)", "FROM is not allowed")]
#[case::url_in_subquery("SELECT model, (SELECT count() FROM url('http://evil')) GROUP BY model", "subqueries")]
#[case::remote("SELECT count() FROM remote('h', db.t)", "FROM is not allowed")]
#[case::file_fn("SELECT model, file('/etc/passwd') GROUP BY model", "function `file`")]
#[case::s3("SELECT * FROM s3('https://b/x')", "FROM is not allowed")]
#[case::other_database("SELECT * FROM other_db.secrets", "FROM is not allowed")]
#[case::in_subquery("SELECT model WHERE model IN (SELECT name FROM system.users)", "WHERE")]
#[case::in_subquery_select("SELECT model IN (SELECT name FROM system.users) GROUP BY model", "IN is allowed")]
#[case::exists("SELECT EXISTS (SELECT 1) GROUP BY model", "subqueries")]
#[case::dict_get("SELECT dictGet('d', 'x', toUInt64(1)) GROUP BY model", "function `dictGet`")]
#[case::join_get("SELECT joinGet('j', 'v', 1)", "function `joinGet`")]
#[case::qualified_fn("SELECT default.f(model)", "qualified")]
#[case::qualified_column("SELECT other.secret.col", "qualified names")]
#[case::join("SELECT * FROM t JOIN u ON t.a = u.a", "FROM is not allowed")]
#[case::settings("SELECT model ORDER BY model SETTINGS max_threads = 1", "SETTINGS")]
#[case::format("SELECT model FORMAT JSON", "not valid SQL")]
#[case::union("SELECT model UNION ALL SELECT model", "one plain SELECT")]
#[case::with("WITH 1 AS x SELECT x", "not valid SQL")]
#[case::with_cte("WITH t AS (SELECT 1) SELECT * FROM t", "WITH")]
#[case::two_statements("SELECT 1; DROP TABLE t", "`;`")]
#[case::line_comment("SELECT model -- x\nGROUP BY model", "comments")]
#[case::block_comment("SELECT model /* ) */ GROUP BY model", "comments")]
#[case::hash_comment("SELECT model # x", "comments")]
#[case::unbalanced("SELECT lower(model GROUP BY model", "not valid SQL")]
#[case::escape_parens("SELECT model) DROP PROJECTION p (SELECT 1", "not valid SQL")]
#[case::parameters("SELECT {x:String}", "query parameters")]
#[case::heredoc("SELECT $$x$$", "`$` strings")]
#[case::backslash("SELECT model = 'a\\\\b' GROUP BY model", "no escapes")]
#[case::escaped_backtick("SELECT `a\\` , url('http://evil/x') AS `b` GROUP BY model", "no escapes")]
#[case::escaped_quote("SELECT model = 'x\\' , url('http://evil/x') , 'y' GROUP BY model", "no escapes")]
#[case::doubled_backtick("SELECT `a``b` GROUP BY model", "quoted name")]
#[case::double_quoted_odd("SELECT \"a b\" GROUP BY model", "quoted name")]
#[case::quoted_alias("SELECT model AS `x'y` GROUP BY model", "quoted name")]
#[case::control_char("SELECT model\u{0}GROUP BY model", "no escapes or control characters")]
#[case::window("SELECT sum(x) OVER (PARTITION BY y)", "OVER")]
#[case::lambda("SELECT arrayMap(x -> x, arr)", "`->` is not allowed")]
#[case::not_select("DELETE FROM events WHERE 1", "expected a SELECT")]
#[case::insert("INSERT INTO t VALUES (1)", "expected a SELECT")]
#[case::limit("SELECT model ORDER BY model LIMIT 1", "LIMIT")]
#[case::rollup("SELECT model, count() GROUP BY model WITH ROLLUP", "GROUP BY")]
#[case::get_setting("SELECT getSetting('max_threads')", "function `getSetting`")]
#[case::now("SELECT now()", "function `now`")]
#[case::empty("   ", "must not be empty")]
#[case::into_outfile("SELECT model INTO OUTFILE '/tmp/x'", "not")]
fn hostile_projections_are_refused(#[case] text: &str, #[case] expected: &str) {
    let err = projection("spec.p.query", text).unwrap_err().to_string();
    assert!(err.starts_with("spec.p.query: "), "{err}");
    assert!(err.contains(expected), "{text:?}: {err} should contain {expected:?}");
}

#[rstest]
#[case::semicolon("latency_ms; DROP TABLE x", "`;`")]
#[case::second_command("latency_ms TYPE minmax GRANULARITY 1, DROP INDEX other", "after the expression")]
#[case::top_level_comma("latency_ms, model", "after the expression")]
#[case::aggregate("sum(latency_ms)", "aggregate function `sum`")]
#[case::url("length(url('http://evil'))", "function `url`")]
#[case::subquery("(SELECT 1)", "subqueries")]
#[case::in_table("model IN other_db.t", "qualified names")]
#[case::cast("CAST(x AS String)", "conversion functions")]
#[case::double_colon("x::UInt8", "conversion functions")]
#[case::global_in("model GLOBAL IN (1, 2)", "GLOBAL IN")]
#[case::non_ascii_column("modèl", "not")]
#[case::placeholder("model = ?", "not")]
#[case::dollar_param("model = $1", "not")]
#[case::control_char("model = 'a\u{7}'", "control characters")]
fn hostile_expressions_are_refused(#[case] text: &str, #[case] expected: &str) {
    let err = expression("spec.x", text).unwrap_err().to_string();
    assert!(err.starts_with("spec.x: "), "{err}");
    assert!(err.contains(expected), "{text:?}: {err} should contain {expected:?}");
}

#[test]
fn huge_and_deep_input_is_refused_before_parsing_costs_anything() {
    let long = format!("SELECT {} GROUP BY model", "model, ".repeat(20_000));
    assert!(projection("q", &long).unwrap_err().to_string().contains("at most 8192"));
    let deep = format!("{}x{}", "(".repeat(5_000), ")".repeat(5_000));
    let err = expression("e", &deep[..4096.min(deep.len())]).unwrap_err().to_string();
    assert!(err.starts_with("e: "), "{err}");
    let nested = format!("{}x{}", "abs(".repeat(200), ")".repeat(200));
    assert!(expression("e", &nested).unwrap_err().to_string().contains("nested more than"));
}

#[rstest]
#[case("SELECT model, avg(score), count() GROUP BY model", "SELECT model, avg(score), count() GROUP BY model", &["model", "score"])]
#[case("select model,AVG(score) as s group by model", "SELECT model, AVG(score) AS s GROUP BY model", &["model", "score"])]
#[case("SELECT * ORDER BY customer_id", "SELECT * ORDER BY customer_id", &["customer_id"])]
#[case("SELECT toStartOfHour(ts) AS h, quantile(0.99)(latency) GROUP BY h", "SELECT toStartOfHour(ts) AS h, quantile(0.99)(latency) GROUP BY h", &["latency", "ts"])]
#[case("SELECT model, sumIf(x, y > 1), uniq(z) GROUP BY model", "SELECT model, sumIf(x, y > 1), uniq(z) GROUP BY model", &["model", "x", "y", "z"])]
#[case("SELECT `model`, count(*) GROUP BY `model`", "SELECT `model`, count(*) GROUP BY `model`", &["model"])]
fn projections_render_from_the_tree(#[case] text: &str, #[case] sql: &str, #[case] columns: &[&str]) {
    let c = projection("q", text).unwrap();
    assert_eq!(c.sql, sql);
    assert_eq!(c.columns.iter().map(String::as_str).collect::<Vec<_>>(), columns);
}

#[rstest]
#[case("latency_ms", "latency_ms")]
#[case("lower( model )", "lower(model)")]
#[case("(latency_ms+1)*2", "(latency_ms + 1) * 2")]
#[case("`model` = 'a;b -- c'", "`model` = 'a;b -- c'")]
#[case("(model, latency_ms)", "(model, latency_ms)")]
#[case("multiIf(x > 1, 'a', 'b')", "multiIf(x > 1, 'a', 'b')")]
#[case("model = 'it''s'", "model = 'it''s'")]
#[case("cityHash64(user_id) % 16", "cityHash64(user_id) % 16")]
#[case("toString(x)", "toString(x)")]
#[case("mapKeys(attributes)", "mapKeys(attributes)")]
#[case("tags[1]", "tags[1]")]
fn expressions_render_from_the_tree(#[case] text: &str, #[case] sql: &str) {
    assert_eq!(expression("e", text).unwrap().sql, sql);
}

#[rstest]
#[case(
    "SELECT avg(score) FROM risk WHERE customer_id = 42",
    "SELECT avg(score) FROM `db`.`risk` WHERE customer_id = 42"
)]
#[case(
    "SELECT count() FROM db.risk WHERE region = 'eu' LIMIT 10",
    "SELECT count() FROM `db`.`risk` WHERE region = 'eu' LIMIT 10"
)]
fn representative_queries_read_their_own_table(#[case] text: &str, #[case] sql: &str) {
    assert_eq!(query("q", text, "db", "risk").unwrap().sql, sql);
}

#[rstest]
#[case::other_table("SELECT * FROM secrets", "this table only")]
#[case::other_db("SELECT * FROM other.risk", "this table only")]
#[case::table_function("SELECT * FROM url('http://x')", "table functions")]
#[case::join("SELECT * FROM risk JOIN secrets USING (id)", "JOIN")]
#[case::subquery_from("SELECT * FROM (SELECT * FROM secrets)", "subqueries")]
#[case::subquery_where("SELECT * FROM risk WHERE id IN (SELECT id FROM secrets)", "IN is allowed")]
#[case::settings("SELECT * FROM risk SETTINGS max_threads = 1000", "SETTINGS")]
#[case::no_from("SELECT 1", "this table only")]
#[case::comma_join("SELECT * FROM risk, secrets", "this table only")]
fn representative_queries_reaching_elsewhere_are_refused(#[case] text: &str, #[case] expected: &str) {
    let err = query("q", text, "db", "risk").unwrap_err().to_string();
    assert!(err.contains(expected), "{text:?}: {err} should contain {expected:?}");
}

#[test]
fn plainly_quoted_names_are_accepted_and_sent_as_checked() {
    let checked = projection("spec.p.query", "SELECT `model`, count() GROUP BY \"model\"").unwrap();
    assert!(checked.columns.contains("model"), "{checked:?}");
    let index = expression("spec.i.expression", "lower(`model`)").unwrap();
    assert_eq!(index.columns.into_iter().collect::<Vec<_>>(), ["model"]);
}
