//! What the checker accepts, the server reads the same way; and nothing reaches a URL. A table of quoting and
//! escaping cases in every position (column, alias, string, function name, table name), each through the checker;
//! every accepted one through the server's own parser ([`perf_clickhouse::proof`]), which must read it as the
//! checker did. Then hostile pieces aimed at a listener on 127.0.0.1 go through everything a reconcile and
//! `plan --clickhouse` do (validate, observe with the proof and EXPLAIN, decide, apply): the listener sees no
//! connection, while the same URL sent straight to the server does reach it (the control).

mod common;

use perf_clickhouse::check::reread::Piece;
use perf_clickhouse::{Http, apply, decide, observe_live, plan_ddl, validate};
use perf_operator_api::clickhouse::{ClickHouseSpec, IndexSpec, ProjectionSpec, RepresentativeQuery, TableSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a case's text goes.
#[derive(Clone, Copy, Debug)]
enum At {
    Index,
    Projection,
    Query,
}

/// (position, text): `{P}` is replaced by the listener's port.
const CASES: &[(At, &str)] = &[
    // column names
    (At::Index, "`a`"),
    (At::Index, "\"a\""),
    (At::Index, "`a``b`"),
    (At::Index, "\"a\"\"b\""),
    (At::Index, "`a\\`b`"),
    (At::Index, "`a\\\\`"),
    (At::Index, "`ü`"),
    (At::Index, "ü"),
    (At::Index, "`a.b`"),
    (At::Index, "a.b"),
    (At::Index, "`a`.`b`"),
    (At::Index, "`a b`"),
    (At::Index, "`select`"),
    (At::Index, "`ASC`"),
    (At::Index, "`1a`"),
    (At::Index, "`a\u{0}`"),
    // string literals
    (At::Index, "s = 'it''s'"),
    (At::Index, "s = 'a\\'b'"),
    (At::Index, "s = 'a\\\\'"),
    (At::Index, "s = '\\0'"),
    (At::Index, "s = '\u{0}'"),
    (At::Index, "s = 'ü€𝄞'"),
    (At::Index, "s = 'a -- b'"),
    (At::Index, "s = '/* x */'"),
    (At::Index, "s = 'a;b'"),
    (At::Index, "s = '$$x$$'"),
    (At::Index, "s = '{x:String}'"),
    (At::Index, "s = '`'"),
    (At::Index, "s = '\"'"),
    (At::Index, "s = ''''"),
    (At::Index, "s = 'a' || 'b'"),
    (At::Index, "s = $$x$$"),
    (At::Index, "s = $t$x$t$"),
    (At::Index, "s = \"x\""),
    (At::Index, "s /* ' */ = 'x'"),
    (At::Index, "s = 'x' -- '"),
    // numbers and other literals
    (At::Index, "a = 0x10"),
    (At::Index, "a = 1e3"),
    (At::Index, "a = 1.0"),
    (At::Index, "a = -1"),
    (At::Index, "a = 18446744073709551615"),
    (At::Index, "a = 18446744073709551616"),
    (At::Index, "a = inf"),
    (At::Index, "a = x'41'"),
    (At::Index, "a = true AND s IS NOT NULL"),
    // function names
    (At::Index, "`lower`(s)"),
    (At::Index, "\"lower\"(s)"),
    (At::Index, "LOWER(s)"),
    (At::Index, "`url`('http://127.0.0.1:{P}/f')"),
    // operators the server rewrites
    (At::Index, "a BETWEEN 1 AND 2"),
    (At::Index, "CASE WHEN a > 1 THEN 'x' ELSE s END"),
    (At::Index, "t > d - INTERVAL 1 DAY"),
    (At::Index, "tags[1] = 'x' AND m['k'] = 'y'"),
    (At::Index, "NOT a = 1"),
    (At::Index, "a IN (1, 2) AND s NOT LIKE 'x%'"),
    (At::Index, "position(s, 'x') > 0"),
    (At::Index, "substring(s, 1, 2)"),
    (At::Index, "tupleElement(tp, 1)"),
    // aliases
    (At::Projection, "SELECT a AS `x`, count() GROUP BY a"),
    (At::Projection, "SELECT a AS \"x\", count() GROUP BY a"),
    (At::Projection, "SELECT a AS x, count() GROUP BY x"),
    (At::Projection, "SELECT a AS `x``y` GROUP BY a"),
    (At::Projection, "SELECT a AS `x\\`y` GROUP BY a"),
    (At::Projection, "SELECT a AS `from`, count() GROUP BY a"),
    (At::Projection, "SELECT a AS `x.y` GROUP BY a"),
    (At::Projection, "SELECT a, s ORDER BY (a, s)"),
    (At::Projection, "SELECT * ORDER BY a DESC"),
    (At::Projection, "SELECT * ORDER BY a ASC"),
    (At::Projection, "SELECT a, avg(v) AS `avg`, quantile(0.5)(v) GROUP BY a"),
    // table names in a representative query
    (At::Query, "SELECT count() FROM t WHERE s = 'x'"),
    (At::Query, "SELECT count() FROM `t` WHERE s = 'x''y'"),
    (At::Query, "SELECT count() FROM {DB}.t"),
    (At::Query, "SELECT count() FROM `{DB}`.`t`"),
    (At::Query, "SELECT count() FROM \"{DB}\".\"t\""),
    (At::Query, "SELECT count() FROM `{DB}.t`"),
    (At::Query, "SELECT count() FROM t AS `x`"),
    (At::Query, "SELECT a AS `n`, count() FROM t GROUP BY a ORDER BY `n` LIMIT 5"),
];

/// Hostile pieces aimed at the listener: each must be refused (checker or proof) and nothing may connect.
const HOSTILE: &[(At, &str)] = &[
    (
        At::Projection,
        "SELECT `a\\` , (SELECT count() FROM url('http://127.0.0.1:{P}/p1', CSV, 'x String')) AS `b` GROUP BY a",
    ),
    (
        At::Projection,
        "SELECT `a``, (SELECT count() FROM url('http://127.0.0.1:{P}/p2', CSV, 'x String')) AS ``b` GROUP BY a",
    ),
    (
        At::Projection,
        "SELECT a AS `/*`, (SELECT count() FROM url('http://127.0.0.1:{P}/p3', CSV, 'x String')) AS `*/` GROUP BY a",
    ),
    (
        At::Projection,
        "SELECT a, $$x$$, (SELECT count() FROM url('http://127.0.0.1:{P}/p4', CSV, 'x String')) GROUP BY a",
    ),
    (At::Index, "s = 'x\\' OR (SELECT count() FROM url('http://127.0.0.1:{P}/i1', CSV, 'x String')) > 0 OR s = \\''"),
    (At::Index, "`s\\` = 1 OR (SELECT count() FROM s3('http://127.0.0.1:{P}/b/i2', CSV, 'x String')) > 0 OR `x`"),
    (At::Index, "s = \"x\\\" OR (SELECT count() FROM remote('127.0.0.1:{P}', system.one)) > 0 OR \\\"\""),
    (
        At::Query,
        "SELECT count() FROM t WHERE s = 'x\\' UNION ALL SELECT count() FROM url('http://127.0.0.1:{P}/q1', CSV, 'x String') WHERE '\\'",
    ),
    (At::Query, "SELECT count() FROM url('http://127.0.0.1:{P}/q2', CSV, 'x String')"),
    (
        At::Query,
        "SELECT count() FROM t WHERE a IN (SELECT count() FROM url('http://127.0.0.1:{P}/q3', CSV, 'x String'))",
    ),
    (At::Query, "SELECT count() FROM remote('127.0.0.1:{P}', system.tables)"),
    (
        At::Query,
        "SELECT count() FROM t WHERE s = 'x' -- ' UNION ALL SELECT count() FROM url('http://127.0.0.1:{P}/q4')",
    ),
    (
        At::Query,
        "SELECT count() FROM t WHERE s = `x\\` OR (SELECT count() FROM url('http://127.0.0.1:{P}/q5', CSV, 'x String'))`",
    ),
];

const COLUMNS: &str = "a UInt64, s String, v Float64, t DateTime, d DateTime, tags Array(String), \
    m Map(String, String), tp Tuple(UInt8, UInt8), `ü` UInt8";

fn spec(db: &str, cases: &[(At, String)]) -> ClickHouseSpec {
    let mut table = TableSpec { name: "t".into(), ..Default::default() };
    for (i, (at, text)) in cases.iter().enumerate() {
        let name = format!("c{i}");
        match at {
            At::Index => table.indexes.push(IndexSpec {
                name,
                expression: text.clone(),
                index_type: "minmax".into(),
                granularity: 1,
            }),
            At::Projection => table.projections.push(ProjectionSpec { name, query: text.clone() }),
            At::Query => table.queries.push(RepresentativeQuery { name, query: text.clone(), expect_projection: None }),
        }
    }
    ClickHouseSpec { endpoint: common::url(), database: db.into(), tables: vec![table], ..Default::default() }
}

/// The checker's verdict on one case alone.
fn accepted(db: &str, case: &(At, String)) -> Result<(), String> {
    validate::desired(&spec(db, std::slice::from_ref(case))).map(drop).map_err(|e| e.to_string())
}

/// A listener on 127.0.0.1 that counts connections and answers each with one CSV row (a server that got no
/// answer would retry, and the control would take minutes).
async fn listener() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = l.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nx\n").await;
            });
        }
    });
    (port, seen)
}

fn fill(cases: &[(At, &str)], port: u16, db: &str) -> Vec<(At, String)> {
    cases.iter().map(|(at, t)| (*at, t.replace("{P}", &port.to_string()).replace("{DB}", db))).collect()
}

#[tokio::test]
async fn what_the_checker_accepts_the_server_reads_the_same_and_nothing_reaches_a_url() {
    let (c, db) = common::fresh("reread").await;
    c.query(&format!("CREATE TABLE t ({COLUMNS}) ENGINE = MergeTree ORDER BY a")).execute().await.unwrap();
    let (port, seen) = listener().await;

    // The quoting table: every accepted case is read the same by the server (alone and in its statement).
    let cases = fill(CASES, port, &db);
    let accepted_cases: Vec<(At, String)> = cases.iter().filter(|c| accepted(&db, c).is_ok()).cloned().collect();
    let table = spec(&db, &accepted_cases);
    let desired = validate::desired(&table).unwrap();
    let live = observe_live(&Http::open(), &table, None).await.unwrap();
    let t = &live.tables["t"];
    let piece = |at: At| match at {
        At::Index => Piece::Expression,
        At::Projection => Piece::Projection,
        At::Query => Piece::Query { database: db.clone(), table: "t".into() },
    };
    let sent = |i: usize, at: At| {
        let name = format!("c{i}");
        match at {
            At::Index => desired[0].indexes.iter().find(|x| x.name == name).map(|x| x.expression.clone()),
            At::Projection => desired[0].projections.iter().find(|p| p.name == name).map(|p| p.query.clone()),
            At::Query => desired[0].queries.iter().find(|q| q.name == name).map(|q| q.sql.clone()),
        }
        .unwrap()
    };
    let mut read_differently = Vec::new();
    for (i, (at, text)) in accepted_cases.iter().enumerate() {
        if let Some(refusal) = t.reread_refusal(&piece(*at), &sent(i, *at)) {
            read_differently.push(format!("{at:?} {text:?}: {refusal}"));
        }
    }
    let refused: Vec<String> =
        cases.iter().filter_map(|c| accepted(&db, c).err().map(|e| format!("{:?} {:?}: {e}", c.0, c.1))).collect();
    eprintln!(
        "{} cases: {} accepted, {} refused by the checker:\n{}",
        cases.len(),
        accepted_cases.len(),
        refused.len(),
        refused.join("\n")
    );
    assert!(read_differently.is_empty(), "accepted but read differently by the server: {read_differently:#?}");

    // Hostile pieces: through validate, plan, the observe (proof and EXPLAIN) and apply of a reconcile.
    let hostile = fill(HOSTILE, port, &db);
    for case in &hostile {
        let spec = spec(&db, std::slice::from_ref(case));
        let Ok(_) = accepted(&db, case) else { continue };
        let live = observe_live(&Http::open(), &spec, None).await.unwrap();
        let plan = plan_ddl(&spec, Some(&live)).unwrap();
        assert!(plan.ddl.is_empty() && !plan.refused.is_empty(), "{case:?} is planned: {plan:?}");
        apply(&Http::open(), &spec, None, decide(&spec, &live, None).unwrap()).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the listener was reached");

    // The control: the same URL sent straight to the server reaches the listener.
    let direct = format!("SELECT count() FROM url('http://127.0.0.1:{port}/control', CSV, 'x String')");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), c.query(&direct).execute()).await;
    assert!(seen.load(Ordering::SeqCst) > 0, "the control did not reach the listener: the test proves nothing");
}
