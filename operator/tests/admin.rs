//! The admin server as the kubelet and Prometheus see it: `/readyz` on a standby and on the leader, and the
//! `perf_operator_leader` gauge. Readiness is independent of leadership (as controller-runtime's), so both replicas
//! of the Deployment become Ready and a rolling update completes.

use perf_operator::leader::{self, LeaseConfig};
use perf_operator::telemetry::{self, Metrics, Replica};
use std::sync::Arc;
use std::time::Duration;

/// An admin server on a free local port: its base URL and the replica it reports.
async fn admin() -> (String, Replica) {
    let metrics = Arc::new(Metrics::new().unwrap());
    let replica = Replica::new(&metrics);
    let listener = telemetry::bind_admin("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(telemetry::serve_admin(listener, metrics, replica.clone()));
    (base, replica)
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of `perf_operator_leader` in `/metrics`.
async fn leader_gauge(base: &str) -> String {
    let (_, text) = get(base, "/metrics").await;
    let line = text.lines().find(|l| l.starts_with("perf_operator_leader ")).unwrap_or_else(|| panic!("{text}"));
    line.trim_start_matches("perf_operator_leader ").to_string()
}

#[tokio::test]
async fn a_starting_replica_is_live_but_not_ready() {
    let (base, _replica) = admin().await;
    assert_eq!(get(&base, "/healthz").await.0, 200);
    assert_eq!(get(&base, "/readyz").await, (503, "not ready".into()));
    assert_eq!(leader_gauge(&base).await, "0");
}

#[tokio::test]
async fn a_standby_waiting_for_the_lease_is_ready_and_not_leader() {
    let (base, replica) = admin().await;
    replica.standby();
    assert_eq!(get(&base, "/readyz").await, (200, "ready".into()));
    assert_eq!(leader_gauge(&base).await, "0");
}

#[tokio::test]
async fn the_leader_is_ready_once_its_controller_has_started() {
    let (base, replica) = admin().await;
    replica.leading();
    assert_eq!(leader_gauge(&base).await, "1");
    assert_eq!(get(&base, "/readyz").await.0, 503, "the controller has not started");
    replica.started();
    assert_eq!(get(&base, "/readyz").await.0, 200);
}

#[tokio::test]
async fn a_standby_that_wins_the_lease_stays_ready() {
    let (base, replica) = admin().await;
    replica.standby();
    replica.leading();
    assert_eq!((get(&base, "/readyz").await.0, leader_gauge(&base).await), (200, "1".into()));
}

#[tokio::test]
async fn a_stopping_replica_is_neither_ready_nor_leader() {
    let (base, replica) = admin().await;
    replica.leading();
    replica.started();
    replica.stopping();
    assert_eq!((get(&base, "/readyz").await.0, leader_gauge(&base).await), (503, "0".into()));
}

#[tokio::test]
async fn of_two_replicas_one_leads_and_the_other_waits_as_a_ready_standby() {
    let client = kube_fake_client::ClientBuilder::new().build().await.unwrap();
    let config = |holder: &str| LeaseConfig {
        namespace: "perf-operator".into(),
        name: "perf-operator-leader".into(),
        holder: holder.into(),
        ttl: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
    };
    let (leader_base, first) = admin().await;
    let (lock, _) = leader::acquire(client.clone(), &config("replica-a"), &first).await.unwrap();
    assert_eq!(leader_gauge(&leader_base).await, "1");
    assert_eq!(get(&leader_base, "/readyz").await.0, 503, "ready once its controller has started");

    let (standby_base, second) = admin().await;
    let waiting = {
        let (client, config, second) = (client.clone(), config("replica-b"), second.clone());
        tokio::spawn(async move { leader::acquire(client, &config, &second).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !second.is_ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&standby_base, "/readyz").await.0, 200, "a standby is ready while it waits");
    assert_eq!(leader_gauge(&standby_base).await, "0");
    assert!(!waiting.is_finished(), "and still waits for the lease");
    waiting.abort();
    drop(lock);
}

/// An API server that takes connections and never answers; it lives as long as the listener.
fn black_hole() -> (std::net::TcpListener, kube::Client) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    (listener, client)
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_stops_at_its_renew_deadline_before_the_lease_expires() {
    // Time is the runtime's own here (paused, advanced when every task waits): the bound is exact, not a race.
    perf_operator::tls::install_crypto_provider();
    let (_server, client) = black_hole();
    let config = LeaseConfig {
        namespace: "perf-operator".into(),
        name: "perf-operator-leader".into(),
        holder: "replica-a".into(),
        ttl: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
    };
    let lock = kube_leader_election::LeaseLock::new(
        client,
        &config.namespace,
        kube_leader_election::LeaseLockParams {
            holder_id: config.holder.clone(),
            lease_name: config.name.clone(),
            lease_ttl: config.ttl,
        },
    );
    let started = tokio::time::Instant::now();
    let reason = leader::hold(&lock, &config, started).await;
    let took = started.elapsed();
    assert!(reason.to_string().contains("not renewed within"), "{reason}");
    // A hung renewal is cut at what is left of the deadline: the leader has stopped before a standby may act.
    assert!(took <= config.renew_deadline, "stopped after {took:?}, the renew deadline is {:?}", config.renew_deadline);
    assert!(took < config.ttl, "stopped after {took:?}, when the lease ({:?}) could already be taken", config.ttl);
}
