use super::*;
use rstest::rstest;

fn q() -> Piece {
    Piece::Query { database: "db".into(), table: "t".into() }
}

/// What the server's formatter writes for what we send (taken from ClickHouse 26.9): the same reading.
#[rstest]
#[case(Piece::Expression, "v = 1. AND s <> 'it''s'", "(v = 1.) AND (s != 'it\\'s')")]
#[case(Piece::Expression, "a || b || c", "concat(a, b, c)")]
#[case(Piece::Expression, "y NOT BETWEEN 1 AND 2", "(y < 1) OR (y > 2)")]
#[case(Piece::Expression, "y BETWEEN 1 AND 2 AND z", "((y >= 1) AND (y <= 2)) AND z")]
#[case(Piece::Expression, "CASE WHEN a THEN 1 ELSE 2 END", "multiIf(a, 1, 2)")]
#[case(Piece::Expression, "CASE WHEN a THEN 1 END", "multiIf(a, 1, NULL)")]
#[case(Piece::Expression, "x[1][2]", "(x[1])[2]")]
#[case(Piece::Expression, "a AND (b AND c)", "a AND (b AND c)")]
#[case(Piece::Expression, "1e3 + 1.0 + -(1)", "(1000. + 1.) + -(1)")]
#[case(Piece::Expression, "LOWER(`s`)", "lower(s)")]
#[case(Piece::Expression, "(k, v)", "(k, v)")]
#[case(Piece::Expression, "t > now_col - INTERVAL 1 DAY", "t > (now_col - toIntervalDay(1))")]
#[case(Piece::Projection, "SELECT * ORDER BY (s, k)", "SELECT * ORDER BY s, k")]
#[case(Piece::Projection, "SELECT * ORDER BY (s, k)", "SELECT * ORDER BY (s, k) ASC")]
#[case(Piece::Projection, "SELECT k, AVG(v) AS a GROUP BY k", "SELECT k, avg(v) AS a GROUP BY k")]
#[case(
    q(),
    "SELECT count() FROM `db`.`t` WHERE x IN (1, 2) LIMIT 10",
    "SELECT count() FROM db.t WHERE x IN (1, 2) LIMIT 10"
)]
fn the_servers_rewrites_read_the_same(#[case] piece: Piece, #[case] sent: &str, #[case] formatted: &str) {
    assert_eq!(same(&piece, sent, Some(formatted)), Ok(()), "{sent} / {formatted}");
}

/// A server that reads something else: refused, saying so.
#[rstest]
#[case(Piece::Expression, "a = 'x'", "a = 'y'", "it reads")]
#[case(Piece::Expression, "a AND b OR c", "a AND (b OR c)", "it reads")]
#[case(Piece::Expression, "lower(a)", "lower(a) = url('http://evil')", "which the checker refuses")]
#[case(Piece::Expression, "a = 'x'", "a = 'x\\n'", "escape the checker did not write")]
#[case(Piece::Expression, "a = 1", "a = 1.", "it reads")]
#[case(Piece::Projection, "SELECT a AS `b`", "SELECT a AS c", "it reads")]
#[case(Piece::Projection, "SELECT k ORDER BY k DESC", "SELECT k ORDER BY k ASC", "it reads")]
#[case(q(), "SELECT count() FROM `db`.`t`", "SELECT count() FROM other.t", "which the checker refuses")]
fn a_different_reading_is_refused(
    #[case] piece: Piece,
    #[case] sent: &str,
    #[case] formatted: &str,
    #[case] expected: &str,
) {
    let err = same(&piece, sent, Some(formatted)).unwrap_err();
    assert!(err.starts_with("the server reads this differently: "), "{err}");
    assert!(err.contains(expected), "{err} should contain {expected:?}");
}

#[test]
fn a_text_the_server_cannot_parse_is_refused() {
    let err = same(&Piece::Expression, "a", None).unwrap_err();
    assert!(err.contains("its parser refuses"), "{err}");
}

#[test]
fn only_a_quote_inside_a_string_is_unescaped() {
    assert_eq!(unescape("s = 'it\\'s' AND `a` = 1").as_deref(), Ok("s = 'it''s' AND `a` = 1"));
    assert!(unescape("`we\\`ird` = 1").is_err());
    assert!(unescape("s = 'a\\\\b'").is_err());
    assert!(unescape("a \\ b").is_err());
}
