//! Time from the first bad scrape to the rollback decision at step intervals of 5, 30 and 60 s, measured side by
//! side in one run against a real Prometheus (1 s scrapes): with the quick checks within a step (the default
//! cadence, two scrape intervals, read from Prometheus's configuration) against the goal of two scrape intervals,
//! and without them (`checkInterval: 0s`) against their floor, one scrape plus one step interval.
//!
//! Run: `cargo bench -p perf-canary --bench rollback_latency` (needs the `prometheus` binary, see
//! tests/support/install-prometheus.sh). The canary starts healthy; when its first stage begins holding it starts
//! failing 5 % of requests, so the next full analysis is a whole step interval away (the worst alignment);
//! `failureLimit: 1`, so the first failed check is the decision.

#[path = "../tests/support/mod.rs"]
mod support;

use perf_operator_api::CanaryPhase;
use std::time::{Duration, Instant};
use support::*;

const SCRAPE: Duration = Duration::from_secs(1);
const RUNS: usize = 3;

async fn one_run(prom: &PrometheusFixture, target: &str, step: Duration, quick: bool) -> Duration {
    prom.serve(NS, target, Behaviour::healthy()).await;
    let mut spec = profile(target, &format!("{}s", step.as_secs()));
    if let Some(canary) = spec.spec.canary.as_mut() {
        canary.analysis.failure_limit = 1;
        canary.analysis.check_interval = (!quick).then(|| "0s".to_string());
    }
    let cluster = Cluster::with(spec, "shop/app:1", vec![]).await;
    for _ in 0..2 {
        cluster.reconcile_at(prom.metrics(), jiff::Timestamp::now()).await;
    }
    cluster.deploy("shop/app:2").await;
    let mut turned_bad = false;
    loop {
        let reconciled = cluster.reconcile_at(prom.metrics(), jiff::Timestamp::now()).await;
        match reconciled.status.phase {
            CanaryPhase::Progressing if !turned_bad => {
                prom.set_canary(target, Behaviour::erroring(0.05));
                turned_bad = true;
            }
            CanaryPhase::RolledBack => {
                let decided = Instant::now();
                let first_bad = prom.first_scrape_after_change().unwrap_or(decided);
                return decided.duration_since(first_bad);
            }
            CanaryPhase::Succeeded | CanaryPhase::Failed => {
                panic!("run ended {:?}, expected a rollback", reconciled.status)
            }
            _ => {}
        }
        tokio::time::sleep(reconciled.requeue_after.min(Duration::from_millis(100))).await;
    }
}

/// The median of `RUNS` runs, each printed.
async fn median(prom: &PrometheusFixture, step_secs: u64, quick: bool, runs: usize) -> Duration {
    let step = Duration::from_secs(step_secs);
    let (mode, goal) = if quick { ("quick", 2 * SCRAPE) } else { ("step only", SCRAPE + step) };
    let mut measured = Vec::new();
    for i in 0..runs {
        let one = one_run(prom, &format!("app{step_secs}{}x{i}", if quick { "q" } else { "s" }), step, quick).await;
        println!(
            "{:>5}s {:>10} {:>9.2}s {:>9.2}s {:>7.2}",
            step_secs,
            mode,
            one.as_secs_f64(),
            goal.as_secs_f64(),
            one.as_secs_f64() / goal.as_secs_f64()
        );
        measured.push(one);
    }
    measured.sort();
    measured[runs / 2]
}

#[tokio::main]
async fn main() {
    let prom = PrometheusFixture::start().await;
    println!("rollback decision latency (first bad scrape -> RolledBack), scrape interval {SCRAPE:?}");
    println!("goal: quick checks 2 scrape intervals; step only: 1 scrape + 1 step interval (its floor)");
    println!("{:>6} {:>10} {:>10} {:>10} {:>7}", "step", "mode", "measured", "goal", "ratio");
    let mut summary = Vec::new();
    for step_secs in [5, 30, 60] {
        let quick = median(&prom, step_secs, true, RUNS).await;
        // Without quick checks a run costs a whole step: three at 5 s, one each at 30 and 60 s.
        let runs = if step_secs == 5 { RUNS } else { 1 };
        let step_only = median(&prom, step_secs, false, runs).await;
        summary.push((step_secs, quick, step_only));
    }
    println!("median decision time, quick checks vs step only (same run):");
    for (step_secs, quick, step_only) in summary {
        println!(
            "  step {step_secs:>2}s: {:.2}s vs {:.2}s ({:.1}x faster); quick / goal {:.2}",
            quick.as_secs_f64(),
            step_only.as_secs_f64(),
            step_only.as_secs_f64() / quick.as_secs_f64(),
            quick.as_secs_f64() / (2 * SCRAPE).as_secs_f64()
        );
    }
}
