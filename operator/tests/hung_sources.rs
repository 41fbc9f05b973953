//! A source that never answers costs its own component at most its deadline, and with a canary no more than the
//! step interval: the canary's step is applied in the same reconcile, and the hung sources are reported as such.

mod fixtures;

use fixtures::{ProfileExt, World, target_deployment};
use k8s_openapi::api::apps::v1::Deployment;
use perf_operator_api::{CanarySpec, PerformanceProfile};
use serde_json::json;
use std::net::TcpListener;

/// A TCP server that accepts connections and never answers (a hung ClickHouse or Prometheus). Kept open by the
/// returned listener; accepted sockets are held until the listener thread ends with the test process.
fn black_hole() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in accepting.incoming().flatten() {
            held.push(stream);
        }
    });
    (listener, url)
}

fn profile(hung: &str) -> PerformanceProfile {
    let mut p = fixtures::Profile::test().with_canary_stages(vec![10, 25, 50, 100]);
    p.spec.canary = Some(CanarySpec { step_interval: "2s".into(), ..p.spec.canary.unwrap() });
    p.spec.clickhouse = Some(
        serde_json::from_value(json!({"endpoint": hung, "database": "risk", "tables": [
            {"name": "events", "indexes": [{"name": "i", "expression": "model", "type": "minmax", "granularity": 1}]}
        ]}))
        .unwrap(),
    );
    p.spec.rate_limit = Some(
        serde_json::from_value(json!({
            "routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
            "prometheus": hung,
            "policy": {"builtin": "adaptive-rate-limit"}
        }))
        .unwrap(),
    );
    p
}

#[tokio::test]
async fn a_hung_clickhouse_and_prometheus_do_not_hold_back_the_canary() {
    let (_listener, hung) = black_hole();
    let world = World::with(profile(&hung), Some(target_deployment(3))).await;
    world.reconcile_settled().await.unwrap();
    world.api::<Deployment>().get("risk-api-primary").await.expect("the canary's step was applied");
    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "ClickHouseReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"), "{message}");
    assert!(message.contains("no answer within 2s"), "the step interval bounds the read: {message}");
    // The rate-limit policy decided without traffic (the spec's limits stand) instead of waiting for Prometheus.
    assert_eq!(World::condition(&p, "PoliciesReady").0, "True", "{:?}", World::condition(&p, "PoliciesReady"));
    let policies = serde_json::to_value(p.status.unwrap().policies).unwrap();
    assert_eq!(policies["rateLimit"]["observed"], json!({}), "{policies}");
}
