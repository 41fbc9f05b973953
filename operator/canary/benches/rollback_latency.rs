//! Time from the first bad scrape to the rollback decision, against the floor: one scrape interval (1 s) plus one
//! analysis interval (the step interval), measured side by side in one run against a real Prometheus.
//!
//! Run: `cargo bench -p perf-canary --bench rollback_latency` (needs the `prometheus` binary, see
//! tests/support/install-prometheus.sh). The canary starts healthy; when its first stage begins holding it starts
//! failing 5 % of requests, so the next analysis is a full step interval away (the worst alignment);
//! `failureLimit: 1`, so the first failed check is the decision. Ratio < 1: decided within the floor.

#[path = "../tests/support/mod.rs"]
mod support;

use perf_operator_api::CanaryPhase;
use std::time::{Duration, Instant};
use support::*;

const SCRAPE: Duration = Duration::from_secs(1);
const RUNS: usize = 3;

async fn one_run(prom: &PrometheusFixture, target: &str, step: Duration) -> Duration {
    prom.serve(NS, target, Behaviour::healthy()).await;
    let mut spec = profile(target, &format!("{}s", step.as_secs()));
    if let Some(canary) = spec.spec.canary.as_mut() {
        canary.analysis.failure_limit = 1;
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

#[tokio::main]
async fn main() {
    let prom = PrometheusFixture::start().await;
    println!("rollback decision latency (first bad scrape -> RolledBack), {RUNS} runs per step interval");
    println!("{:>6} {:>10} {:>10} {:>7}", "step", "measured", "floor", "ratio");
    for step_secs in [3, 5] {
        let step = Duration::from_secs(step_secs);
        let floor = SCRAPE + step;
        let mut runs = Vec::new();
        for i in 0..RUNS {
            let measured = one_run(&prom, &format!("app{step_secs}x{i}"), step).await;
            println!(
                "{:>5}s {:>9.2}s {:>9.2}s {:>7.2}",
                step_secs,
                measured.as_secs_f64(),
                floor.as_secs_f64(),
                measured.as_secs_f64() / floor.as_secs_f64()
            );
            runs.push(measured);
        }
        runs.sort();
        let median = runs[RUNS / 2];
        println!(
            "median {step_secs}s: {:.2}s vs floor {:.2}s: ratio {:.2}",
            median.as_secs_f64(),
            floor.as_secs_f64(),
            median.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
