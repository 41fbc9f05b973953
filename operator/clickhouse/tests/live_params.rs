//! Codec and index parameters against the real engine: every case `validate` accepts, the server accepts; every
//! case the server refuses, `validate` refuses (we may refuse more: our bounds are tighter than the server's).

mod common;

use perf_clickhouse::check::{codec, index_type};

/// (column, chain): edge parameters of every codec, on a column of a type the codec takes.
const CODECS: &[(&str, &str)] = &[
    ("s", "ZSTD"),
    ("s", "ZSTD()"),
    ("s", "ZSTD(0)"),
    ("s", "ZSTD(1)"),
    ("s", "ZSTD(-1)"),
    ("s", "ZSTD(-131072)"),
    ("s", "ZSTD(-131073)"),
    ("s", "ZSTD(22)"),
    ("s", "ZSTD(23)"),
    ("s", "ZSTD(9223372036854775807)"),
    ("s", "ZSTD(1, 2)"),
    ("s", "ZSTD(1, 20)"),
    ("s", "LZ4"),
    ("s", "LZ4(1)"),
    ("s", "LZ4HC"),
    ("s", "LZ4HC(0)"),
    ("s", "LZ4HC(1)"),
    ("s", "LZ4HC(12)"),
    ("s", "LZ4HC(13)"),
    ("s", "LZ4HC(-1)"),
    ("s", "LZ4HC(1, 2)"),
    ("s", "NONE"),
    ("s", "NONE(1)"),
    ("u64", "NONE, LZ4"),
    ("u64", "LZ4, NONE"),
    ("u64", "Delta, NONE"),
    ("u64", "Delta(0), LZ4"),
    ("u64", "Delta(1), LZ4"),
    ("u64", "Delta(2), LZ4"),
    ("u64", "Delta(3), LZ4"),
    ("u64", "Delta(4), LZ4"),
    ("u64", "Delta(8), LZ4"),
    ("u64", "Delta(16), LZ4"),
    ("u64", "Delta(1, 2), LZ4"),
    ("u64", "Delta, T64"),
    ("u64", "T64, Delta, LZ4"),
    ("u64", "Delta(8), Delta(8), LZ4"),
    ("f64", "Gorilla(1)"),
    ("f64", "Gorilla(2)"),
    ("f64", "Gorilla(3)"),
    ("f64", "Gorilla(4)"),
    ("f64", "Gorilla(8)"),
    ("f64", "Gorilla(16)"),
    ("f64", "Gorilla, Gorilla"),
    ("f64", "Gorilla, Delta, LZ4"),
    ("f64", "Delta, Gorilla, LZ4"),
    ("f64", "DoubleDelta, FPC"),
    ("f64", "FPC, Delta, LZ4"),
    ("f64", "FPC"),
    ("f64", "FPC(0)"),
    ("f64", "FPC(1)"),
    ("f64", "FPC(28)"),
    ("f64", "FPC(29)"),
    ("f64", "FPC(12, 2)"),
    ("f64", "FPC(12, 4)"),
    ("f64", "FPC(12, 8)"),
    ("f64", "FPC(12, 4, 1)"),
    ("f32", "FPC(12, 8)"),
    ("u64", "T64"),
    ("u64", "T64(1)"),
    ("u64", "T64, T64"),
    ("u64", "GCD"),
    ("u64", "GCD, LZ4"),
    ("u64", "GCD(1), LZ4"),
    ("u64", "GCD, GCD, LZ4"),
    ("u64", "DoubleDelta"),
    ("u64", "DoubleDelta(0)"),
    ("u64", "DoubleDelta(1)"),
    ("u64", "DoubleDelta(3)"),
    ("u64", "DoubleDelta(8)"),
    ("u64", "DoubleDelta(16)"),
    ("u64", "DoubleDelta(1, 2)"),
    ("u64", "DoubleDelta, ZSTD(1)"),
    ("u64", "LZ4HC(12), NONE"),
    ("d", "DoubleDelta, LZ4HC(9)"),
];

/// Index types with edge parameters, on a String column (every type takes one).
const INDEX_TYPES: &[&str] = &[
    "minmax",
    "minmax(1)",
    "set(0)",
    "set(1)",
    "set(-1)",
    "set(1.5)",
    "set(100000)",
    "set(100001)",
    "set",
    "set(1, 2)",
    "bloom_filter",
    "bloom_filter()",
    "bloom_filter(0)",
    "bloom_filter(1)",
    "bloom_filter(0.5)",
    "bloom_filter(0.0001)",
    "bloom_filter(0.00001)",
    "bloom_filter(1e-300)",
    "bloom_filter(-0.1)",
    "bloom_filter(0.01, 2)",
    "ngrambf_v1(3, 256, 2, 0)",
    "ngrambf_v1(0, 256, 2, 0)",
    "ngrambf_v1(1, 1, 1, 0)",
    "ngrambf_v1(8, 256, 2, 0)",
    "ngrambf_v1(9, 256, 2, 0)",
    "ngrambf_v1(3, 0, 2, 0)",
    "ngrambf_v1(3, 1048576, 16, 0)",
    "ngrambf_v1(3, 2000000000, 2, 0)",
    "ngrambf_v1(3, 256, 0, 0)",
    "ngrambf_v1(3, 256, 1000, 0)",
    "ngrambf_v1(3, 256, 2, -1)",
    "ngrambf_v1(3, 256, 2, 18446744073709551615)",
    "ngrambf_v1(3, 256, 2)",
    "ngrambf_v1(3.5, 256, 2, 0)",
    "tokenbf_v1(256, 2, 0)",
    "tokenbf_v1(0, 2, 0)",
    "tokenbf_v1(256, 0, 0)",
    "tokenbf_v1(256, 17, 0)",
    "tokenbf_v1(256, 2)",
    "tokenbf_v1(256.5, 2, 0)",
];

const GRANULARITIES: &[u32] = &[0, 1, 1000, 1001, 1_000_000];

/// A case where we accept what the server refuses; the other direction (stricter than the server) is counted.
struct Tally {
    disagreements: Vec<String>,
    stricter: Vec<String>,
    cases: usize,
}

impl Tally {
    fn record(&mut self, case: String, ours: Result<(), String>, server: Result<(), String>) {
        self.cases += 1;
        match (ours, server) {
            (Ok(()), Err(e)) => self.disagreements.push(format!("{case}: we accept, the server refuses: {e}")),
            (Err(e), Ok(())) => self.stricter.push(format!("{case}: {e}")),
            _ => {}
        }
    }
}

#[tokio::test]
async fn codec_and_index_parameters_validate_accepts_are_accepted_by_the_server() {
    let (c, _db) = common::fresh("params").await;
    c.query("CREATE TABLE t (id UInt64, u64 UInt64, f64 Float64, f32 Float32, s String, d DateTime64(3)) ENGINE = MergeTree ORDER BY id")
        .execute()
        .await
        .unwrap();
    let types = [("u64", "UInt64"), ("f64", "Float64"), ("f32", "Float32"), ("s", "String"), ("d", "DateTime64(3)")];
    let mut tally = Tally { disagreements: Vec::new(), stricter: Vec::new(), cases: 0 };
    for (column, chain) in CODECS {
        let data_type = types.iter().find(|(c, _)| c == column).map(|(_, t)| *t).unwrap_or_default();
        let ours = codec::parse(chain).and_then(|p| codec::chain_rules(&p).and_then(|()| codec::fits(&p, data_type)));
        let server = c.query(&format!("ALTER TABLE t MODIFY COLUMN {column} CODEC({chain})")).execute().await;
        if server.is_ok() {
            c.query(&format!("ALTER TABLE t MODIFY COLUMN {column} REMOVE CODEC")).execute().await.unwrap();
        }
        tally.record(format!("CODEC({chain}) on {data_type}"), ours, server.map_err(|e| e.to_string()));
    }
    for t in INDEX_TYPES {
        let ours = index_type::check(t).map(drop);
        tally.record(format!("TYPE {t}"), ours, add_index(&c, t, 1).await);
    }
    for g in GRANULARITIES {
        let ours = index_type::granularity(*g);
        tally.record(format!("GRANULARITY {g}"), ours, add_index(&c, "minmax", *g).await);
    }
    eprintln!(
        "{} cases; {} refused by us only (our bounds):\n{}",
        tally.cases,
        tally.stricter.len(),
        tally.stricter.join("\n")
    );
    assert!(tally.disagreements.is_empty(), "{:#?}", tally.disagreements);
}

async fn add_index(c: &clickhouse::Client, index_type: &str, granularity: u32) -> Result<(), String> {
    let sql = format!("ALTER TABLE t ADD INDEX ix s TYPE {index_type} GRANULARITY {granularity}");
    let server = c.query(&sql).execute().await.map_err(|e| e.to_string());
    if server.is_ok() {
        c.query("ALTER TABLE t DROP INDEX ix").execute().await.unwrap();
    }
    server
}
