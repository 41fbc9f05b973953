//! Projection speed-up on the real engine: 10 million generated rows, the declared projection applied through
//! rounds of `perf_clickhouse` (observe_live, decide, apply), then the query it serves timed with and without the projection in one run.
//!
//! Run: `eval "$(tests/support/start-clickhouse.sh start)"; cargo bench -p perf-clickhouse --bench projection`

use clickhouse::Client;
use perf_clickhouse::{apply, decide, observe_live, outcome};
use perf_operator_api::clickhouse::{ClickHouseSpec, ProjectionSpec, TableSpec};
use perf_operator_api::status::ClickHouseStatus;
use std::time::{Duration, Instant};

const ROWS: u64 = 10_000_000;
const REPEATS: usize = 7;
// avg() is rounded: the projection sums in another order, so the last float bits may differ.
const QUERY: &str =
    "SELECT model, count(), round(avg(score), 6), max(latency_ms) FROM events GROUP BY model ORDER BY model";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("CLICKHOUSE_URL").map_err(|_| {
        anyhow::anyhow!("CLICKHOUSE_URL not set: run tests/support/start-clickhouse.sh (or tests/run.sh)")
    })?;
    let db = format!("bench_projection_{}", std::process::id());
    let admin = Client::default().with_url(url.as_str());
    admin.query(&format!("CREATE DATABASE {db}")).execute().await?;
    let client = admin.clone().with_database(db.as_str());
    client
        .query("CREATE TABLE events (timestamp DateTime, model String, score Float64, latency_ms UInt32) ENGINE = MergeTree ORDER BY timestamp")
        .execute()
        .await?;
    let t = Instant::now();
    client
        .query(&format!(
            "INSERT INTO events SELECT toDateTime('2026-01-01 00:00:00') + intDiv(number, 100), \
             concat('model-', toString(number % 50)), (number * 7919 % 10000) / 10000.0, number * 31 % 2000 \
             FROM numbers({ROWS})"
        ))
        .execute()
        .await?;
    println!("generated {ROWS} rows in {:.2} s", t.elapsed().as_secs_f64());

    let spec = ClickHouseSpec {
        endpoint: url.clone(),
        database: db.clone(),
        tables: vec![TableSpec {
            name: "events".into(),
            projections: vec![ProjectionSpec {
                name: "p_model_stats".into(),
                query: "SELECT model, count(), avg(score), max(latency_ms) GROUP BY model".into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let t = Instant::now();
    let mut status = round(&spec, None).await?;
    while !outcome(&status).ready {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "not in sync: {}", outcome(&status).message);
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = round(&spec, Some(&status)).await?;
    }
    println!("projection added and materialised by the operator's rounds in {:.2} s", t.elapsed().as_secs_f64());

    let plan: Vec<String> = client.query(&format!("EXPLAIN {QUERY}")).fetch_all().await?;
    let read_from = plan.iter().find(|l| l.contains("ReadFrom")).map_or("?", |l| l.trim());
    println!("EXPLAIN with projection: {read_from}");

    let (mut without, mut with) = (Vec::new(), Vec::new());
    // Server-side time from X-ClickHouse-Summary: the engine alone, without HTTP and the test adapter.
    let (mut server_without, mut server_with) = (Vec::new(), Vec::new());
    let (mut rows_without, mut rows_with) = (0, 0);
    let mut answers = Vec::new();
    for _ in 0..REPEATS {
        // Alternate so drift on a shared machine hits both sides alike.
        let sides = [
            (0, &mut without, &mut server_without, &mut rows_without),
            (1, &mut with, &mut server_with, &mut rows_with),
        ];
        for (use_projection, times, server, rows) in sides {
            let sql = format!("{QUERY} SETTINGS optimize_use_projections = {use_projection}");
            let t = Instant::now();
            let mut cursor = client.query(&sql).fetch_bytes("TabSeparated")?;
            let body = cursor.collect().await?;
            times.push(t.elapsed());
            *rows = cursor.summary().and_then(|s| s.read_rows()).unwrap_or(0);
            server.push(Duration::from_nanos(cursor.summary().and_then(|s| s.elapsed_ns()).unwrap_or(0)));
            answers.push(body);
        }
    }
    anyhow::ensure!(answers.windows(2).all(|w| w[0] == w[1]), "results differ with and without the projection");
    let (m0, m1) = (median(&mut without), median(&mut with));
    println!("query: {QUERY}");
    println!("without projection: median {:>8.2} ms over {REPEATS} runs, rows read {rows_without}", ms(m0));
    println!("with projection:    median {:>8.2} ms over {REPEATS} runs, rows read {rows_with}", ms(m1));
    let (s0, s1) = (median(&mut server_without), median(&mut server_with));
    println!("server-side (X-ClickHouse-Summary elapsed): without {:.2} ms, with {:.2} ms", ms(s0), ms(s1));
    if !s1.is_zero() {
        println!("server-side speed-up: {:.1}x", ms(s0) / ms(s1));
    }
    println!(
        "end-to-end speed-up: {:.1}x (latency -{:.1} %), rows read ratio {:.0}x",
        ms(m0) / ms(m1),
        100.0 * (1.0 - ms(m1) / ms(m0)),
        rows_without as f64 / rows_with.max(1) as f64
    );
    admin.query(&format!("DROP DATABASE {db}")).execute().await?;
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One round as the controller runs it.
async fn round(spec: &ClickHouseSpec, previous: Option<&ClickHouseStatus>) -> anyhow::Result<ClickHouseStatus> {
    let live = observe_live(&perf_clickhouse::Http::open(), spec, None).await?;
    Ok(apply(&perf_clickhouse::Http::open(), spec, None, decide(spec, &live, previous)?).await)
}
