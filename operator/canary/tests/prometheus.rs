//! End to end with a real Prometheus (tests/support/prometheus.rs) and an in-memory API server: runs judged on
//! metrics the test sets, on the wall clock with 3 s stages. Single analyses, by `canary analyze` and by the
//! operator's step, are judged case by case in tests/analysis.rs.

mod support;

use perf_operator_api::{CanaryPhase, CanaryStatus, CheckVerdict};
use std::time::Duration;
use support::*;

const GUARD: Duration = Duration::from_secs(120);

/// Initializes the canary of `web`, deploys `shop/web:2` and runs until the run is over.
async fn roll_out(prom: &PrometheusFixture, cluster: &Cluster) -> Vec<CanaryStatus> {
    for _ in 0..2 {
        cluster.reconcile_at(prom.metrics(), jiff::Timestamp::now()).await;
    }
    assert_eq!(cluster.status().await.phase, CanaryPhase::Idle);
    cluster.deploy("shop/web:2").await;
    cluster.run_until_over(prom.metrics(), GUARD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_walks_10_25_50_100_and_is_promoted() {
    let prom = PrometheusFixture::start().await;
    prom.serve(NS, "web", Behaviour::healthy()).await;
    let cluster = Cluster::with(profile("web", "3s"), "shop/web:1", vec![]).await;

    let history = roll_out(&prom, &cluster).await;
    let last = history.last().unwrap();
    assert_eq!(weights_walked(&history), [10, 25, 50, 100]);
    assert_eq!(last.phase, CanaryPhase::Succeeded);
    assert_eq!(
        (cluster.image("web-primary").await, cluster.replicas("web-canary").await),
        ("shop/web:2".to_string(), 0)
    );
    let p99 = last.analyses[0].checks.iter().find(|c| c.name == "p99-latency").unwrap();
    assert!(p99.verdict == CheckVerdict::Pass && p99.value.unwrap() < 150.0, "{p99:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_a_p99_of_400ms_is_rolled_back_at_the_first_stage() {
    let prom = PrometheusFixture::start().await;
    prom.serve(NS, "web", Behaviour::slow(Duration::from_millis(400))).await;
    let cluster = Cluster::with(profile("web", "3s"), "shop/web:1", vec![]).await;

    let history = roll_out(&prom, &cluster).await;
    let last = history.last().unwrap();
    assert_eq!((last.phase, last.stage.as_deref()), (CanaryPhase::RolledBack, Some("1/4")));
    assert_eq!(weights_walked(&history), [10]);
    let p99 = last.analyses[0].checks.iter().find(|c| c.name == "p99-latency").unwrap();
    assert!(p99.verdict == CheckVerdict::Fail && p99.value.unwrap() > 300.0, "{p99:?}");
    assert_eq!(
        (cluster.image("web-primary").await, cluster.replicas("web-canary").await),
        ("shop/web:1".to_string(), 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_5_percent_errors_is_rolled_back_at_the_first_stage() {
    let prom = PrometheusFixture::start().await;
    prom.serve(NS, "web", Behaviour::erroring(0.05)).await;
    let cluster = Cluster::with(profile("web", "3s"), "shop/web:1", vec![]).await;

    let history = roll_out(&prom, &cluster).await;
    let last = history.last().unwrap();
    assert_eq!((last.phase, last.stage.as_deref()), (CanaryPhase::RolledBack, Some("1/4")));
    let errors = last.analyses[0].checks.iter().find(|c| c.name == "error-rate").unwrap();
    assert!(errors.verdict == CheckVerdict::Fail && errors.value.unwrap() > 1.0, "{errors:?}");
    assert_eq!(cluster.image("web-primary").await, "shop/web:1");
}
