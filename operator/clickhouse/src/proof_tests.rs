use super::*;
use crate::validate::DesiredQuery;

fn table() -> DesiredTable {
    DesiredTable {
        name: "t".into(),
        projections: vec![DesiredProjection {
            name: "p".into(),
            query: "SELECT * ORDER BY (s, k)".into(),
            columns: Default::default(),
        }],
        indexes: vec![DesiredIndex {
            name: "i".into(),
            expression: "lower(s) = 'it''s'".into(),
            index_type: "minmax".into(),
            granularity: 1,
            columns: Default::default(),
        }],
        queries: vec![DesiredQuery {
            name: "q".into(),
            sql: "SELECT count() FROM `db`.`t` WHERE k = 1".into(),
            expect_projection: None,
            columns: Default::default(),
        }],
        ..Default::default()
    }
}

/// The formatter's answers as ClickHouse 26.9 gives them, with `rewrite` applied to the statements' pieces.
fn answers(rewrite: impl Fn(&str) -> String) -> Formatted {
    let mut f = Formatted::new();
    let mut put = |k: &str, v: &str| f.insert(k.to_string(), v.to_string());
    put("SELECT * ORDER BY (s, k)", "SELECT * ORDER BY (s, k) ASC");
    put(
        "ALTER TABLE `db`.`t` ADD PROJECTION `p` (SELECT * ORDER BY (s, k))",
        &rewrite("ALTER TABLE db.t (ADD PROJECTION p (SELECT * ORDER BY s, k))"),
    );
    put(
        "ALTER TABLE `db`.`t` ADD PROJECTION `p` (SELECT perf_operator_reread_placeholder)",
        "ALTER TABLE db.t (ADD PROJECTION p (SELECT perf_operator_reread_placeholder))",
    );
    put("SELECT lower(s) = 'it''s'", "SELECT lower(s) = 'it\\'s'");
    put(
        "ALTER TABLE `db`.`t` ADD INDEX `i` lower(s) = 'it''s' TYPE minmax GRANULARITY 1",
        &rewrite("ALTER TABLE db.t (ADD INDEX i lower(s) = 'it\\'s' TYPE minmax GRANULARITY 1)"),
    );
    put(
        "ALTER TABLE `db`.`t` ADD INDEX `i` perf_operator_reread_placeholder TYPE minmax GRANULARITY 1",
        "ALTER TABLE db.t (ADD INDEX i perf_operator_reread_placeholder TYPE minmax GRANULARITY 1)",
    );
    put("SELECT count() FROM `db`.`t` WHERE k = 1", "SELECT count() FROM db.t WHERE k = 1");
    put(
        "EXPLAIN json = 1, indexes = 1, projections = 1 SELECT count() FROM `db`.`t` WHERE k = 1",
        &rewrite("EXPLAIN json = 1, indexes = 1, projections = 1 SELECT count() FROM db.t WHERE k = 1"),
    );
    put(
        "EXPLAIN json = 1, indexes = 1, projections = 1 SELECT perf_operator_reread_placeholder",
        "EXPLAIN json = 1, indexes = 1, projections = 1 SELECT perf_operator_reread_placeholder",
    );
    f
}

#[test]
fn every_text_asked_is_answered_and_read_the_same() {
    let t = table();
    let f = answers(str::to_string);
    for text in texts("db", &t) {
        assert!(f.contains_key(&text), "not in the fixture: {text}");
    }
    let r = readings("db", &t, &f);
    assert_eq!(r.len(), 3);
    assert!(r.values().all(Result::is_ok), "{r:#?}");
}

#[test]
fn a_statement_read_differently_or_not_at_all_refuses_its_piece() {
    let t = table();
    let r =
        readings("db", &t, &answers(|s| s.replace("k = 1", "k = 2").replace("= 'it", "= 'at").replace("s, k", "k, s")));
    assert!(
        r.values().all(|v| v.as_ref().is_err_and(|e| e.starts_with("the server reads this differently"))),
        "{r:#?}"
    );
    let r = readings("db", &t, &Formatted::new());
    assert!(r.values().all(|v| v.as_ref().is_err_and(|e| e.contains("its parser refuses"))), "{r:#?}");
}
