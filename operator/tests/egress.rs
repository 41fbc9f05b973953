//! Where a tenant can make the operator connect, and how much a server it names can make it read.
//!
//! - Hostile servers on 127.0.0.1 for the three clients that were unbounded: a RESP server whose `INFO` never ends,
//!   a PostgreSQL that streams its session start forever, a ClickHouse whose result never ends. Each read stops at
//!   the client's cap with an error that names it; what the server managed to send stays within the cap plus the
//!   kernel's socket buffers (so the operator's memory did not grow with it).
//! - A profile naming loopback, link-local or unlisted servers, or another namespace's ClickHouse database: refused
//!   by the reconcile before any connection (a listener sees none), every field named.

mod fixtures;

use fixtures::World;
use perf_egress::Egress;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Slack for what the kernel buffers between the two ends of a loopback connection (both sides' socket buffers).
const SOCKET_BUFFERS: u64 = 16 << 20;

/// A server on 127.0.0.1 that runs `speak` on each connection; counts connections and bytes sent.
struct Hostile {
    port: u16,
    connections: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

fn hostile(speak: fn(&mut TcpStream, &AtomicU64)) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connections, sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c, s) = (connections.clone(), sent.clone());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            std::thread::spawn(move || speak(&mut stream, &s));
        }
    });
    Hostile { port, connections, sent }
}

/// Writes `chunk` until the peer goes away or 60 s pass (a bound on the test, not on the operator).
fn endless(stream: &mut TcpStream, chunk: &[u8], sent: &AtomicU64) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < until && stream.write_all(chunk).is_ok() {
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
}

/// RESP: `+OK` to every command until `INFO`, then a bulk string that never ends.
fn endless_info(stream: &mut TcpStream, sent: &AtomicU64) {
    let mut buf = [0; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
        if text.contains("INFO") {
            let _ = stream.write_all(b"$1000000000000\r\n");
            return endless(stream, &[b'a'; 64 << 10], sent);
        }
        let commands = text.matches("\r\n*").count() + usize::from(text.starts_with('*'));
        for _ in 0..commands.max(1) {
            let _ = stream.write_all(b"+OK\r\n");
        }
    }
}

/// PostgreSQL: reads the startup message, says the password is fine, then sends parameters forever (a session
/// start is some hundreds of bytes).
fn endless_session_start(stream: &mut TcpStream, sent: &AtomicU64) {
    let mut len = [0; 4];
    if stream.read_exact(&mut len).is_err() {
        return;
    }
    let mut startup = vec![0; usize::try_from(u32::from_be_bytes(len)).unwrap_or(8).saturating_sub(4)];
    if stream.read_exact(&mut startup).is_err() {
        return;
    }
    let _ = stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
    let parameter: Vec<u8> = [&[b'S', 0, 0, 0, 8][..], b"a\0b\0"].concat();
    endless(stream, &parameter.repeat(8192), sent);
}

/// HTTP: `200` to any request, then a body that never ends (a string row whose length says a gigabyte).
fn endless_result(stream: &mut TcpStream, sent: &AtomicU64) {
    let mut buf = [0; 8192];
    let _ = stream.read(&mut buf);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&[0x80, 0x80, 0x80, 0x80, 0x04]);
    endless(stream, &[b'a'; 64 << 10], sent);
}

fn within_cap(server: &Hostile, cap: usize) {
    let sent = server.sent.load(Ordering::SeqCst);
    assert!(sent <= cap as u64 + SOCKET_BUFFERS, "the server sent {sent} bytes for a cap of {cap}");
}

#[tokio::test]
async fn an_endless_redis_info_is_cut_at_the_cap_and_named() {
    let server = hostile(endless_info);
    let address = format!("redis://127.0.0.1:{}", server.port);
    let read = perf_operator::redis_stats::fetch(&Egress::open(), &address, None, Duration::from_secs(20)).await;
    let limit = perf_operator::redis_stats::MAX_ANSWER_BYTES;
    assert!(
        matches!(&read, Err(perf_operator::redis_stats::RedisError::TooLarge { limit: l, .. }) if *l == limit),
        "{read:?}"
    );
    let error = read.unwrap_err();
    assert_eq!(perf_operator::decide::redis_server::reason(&error), "AnswerTooLarge");
    within_cap(&server, limit);
}

#[tokio::test]
async fn an_endless_postgres_session_start_is_cut_at_the_cap_and_named() {
    let server = hostile(endless_session_start);
    let pg: perf_operator_api::PostgresServer = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": server.port, "sslMode": "disable", "credentialsSecretRef": {"name": "db"}
    }))
    .unwrap();
    let target = perf_operator::postgres::Target::new(&pg, "app".into(), "pw".into(), None);
    let read = perf_operator::postgres::read_limits(&Egress::open(), &target, Duration::from_secs(20)).await;
    let limit = perf_operator::postgres::MAX_ANSWER_BYTES;
    assert!(
        matches!(&read, Err(perf_operator::postgres::PostgresError::TooLarge { limit: l, .. }) if *l == limit),
        "{read:?}"
    );
    within_cap(&server, limit);
}

#[tokio::test]
async fn an_endless_clickhouse_result_is_cut_at_the_cap_and_named() {
    let server = hostile(endless_result);
    let spec: perf_operator_api::clickhouse::ClickHouseSpec = serde_json::from_value(serde_json::json!({
        "endpoint": format!("http://127.0.0.1:{}", server.port), "database": "app", "tables": []
    }))
    .unwrap();
    let read = perf_clickhouse::observe_live(&perf_clickhouse::Http::open(), &spec, None).await;
    let limit = perf_clickhouse::MAX_ANSWER_BYTES;
    assert!(matches!(&read, Err(perf_clickhouse::Error::TooLarge { limit: l, .. }) if *l == limit), "{read:?}");
    assert_eq!(read.unwrap_err().category(), "AnswerTooLarge");
    within_cap(&server, limit);
}

/// A profile naming `host:port` for every kind of server.
fn naming_everything(host: &str, port: u16) -> perf_operator_api::PerformanceProfile {
    let mut profile = fixtures::Profile::test();
    let pin = "0".repeat(64);
    let spec = serde_json::json!({
        "targetRef": {"name": profile.spec.target_ref.name},
        "cache": {"redis": {"external": {"address": format!("redis://{host}:{port}")}},
                  "policy": {"url": {"url": format!("https://{host}:{port}/p.wasm"), "sha256": pin}}},
        "clickhouse": {"endpoint": format!("http://{host}:{port}"), "database": "app",
                       "tables": [{"name": "events", "codecs": [{"column": "ts", "codec": "ZSTD(3)"}]}]},
        "pools": {"postgres": {"min": 1, "max": 5,
                               "server": {"host": host, "port": port, "credentialsSecretRef": {"name": "db"}}}},
        "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
                      "prometheus": format!("http://{host}:{port}")},
    });
    profile.spec = serde_json::from_value(spec).unwrap();
    profile
}

const FIELDS: [&str; 5] = [
    "spec.cache.redis.external.address",
    "spec.cache.policy.url.url",
    "spec.clickhouse.endpoint",
    "spec.pools.postgres.server.host",
    "spec.rateLimit.prometheus",
];

#[tokio::test]
async fn reserved_servers_are_refused_before_any_connection_with_every_field_named() {
    let listener = hostile(|_, _| {});
    for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"] {
        let mut world = World::with(naming_everything(host, listener.port), None).await;
        Arc::get_mut(&mut world.ctx).expect("not shared yet").set_egress(Egress::default()).unwrap();
        world.reconcile_settled().await.unwrap();
        let (status, reason, message) = World::condition(&world.profile().await, "Degraded");
        assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"), "{host}: {message}");
        for field in FIELDS {
            assert!(message.contains(field), "{host}: {field} not named in {message}");
        }
        assert!(message.contains("a loopback address"), "{message}");
    }
    assert_eq!(listener.connections.load(Ordering::SeqCst), 0, "no connection was opened");
}

#[tokio::test]
async fn servers_outside_the_administrators_list_are_refused_and_listed_ones_are_reached() {
    let (listener, redis) = (hostile(|_, _| {}), hostile(|_, _| {}));
    // Entries without a kind limit every kind; Redis has one of its own besides.
    let rule = ["redis=127.0.0.1".to_string(), "*.db.internal".to_string()];
    let egress = Egress::new(&rule, &["127.0.0.0/8".into()], vec![]).expect("an egress rule");
    let mut profile = naming_everything("127.0.0.1", listener.port);
    let cache = profile.spec.cache.as_mut().unwrap();
    cache.redis.external.as_mut().unwrap().address = format!("redis://127.0.0.1:{}", redis.port);
    let mut world = World::with(profile, None).await;
    Arc::get_mut(&mut world.ctx).expect("not shared yet").set_egress(egress).unwrap();
    world.reconcile_settled().await.unwrap();
    let (_, reason, message) = World::condition(&world.profile().await, "Degraded");
    assert_eq!(reason, "InvalidSpec", "{message}");
    assert!(!message.contains("spec.cache.redis.external.address"), "Redis is listed: {message}");
    for field in &FIELDS[1..] {
        assert!(message.contains(field) && message.contains("(--egress-allow)"), "{field}: {message}");
    }
    assert_eq!(listener.connections.load(Ordering::SeqCst), 0, "no connection was opened");

    // With the others' entries, every server is reached (the listener answers nothing: each is unreachable).
    let all = ["redis=127.0.0.1".to_string(), "127.0.0.0/8".to_string()];
    let egress = Egress::new(&all, &["127.0.0.0/8".into()], vec![]).expect("an egress rule");
    let mut world = World::with(naming_everything("127.0.0.1", listener.port), None).await;
    Arc::get_mut(&mut world.ctx).expect("not shared yet").set_egress(egress).unwrap();
    world.reconcile_settled().await.unwrap();
    let (_, reason, message) = World::condition(&world.profile().await, "Degraded");
    assert_ne!(reason, "InvalidSpec", "{message}");
    assert!(listener.connections.load(Ordering::SeqCst) >= 3, "Redis, ClickHouse and the policy URL were tried");
}

#[tokio::test]
async fn another_namespaces_clickhouse_database_is_refused_before_any_connection() {
    let listener = hostile(|_, _| {});
    let mut profile = fixtures::Profile::test();
    profile.spec.clickhouse = Some(
        serde_json::from_value(serde_json::json!({
            "endpoint": format!("http://127.0.0.1:{}", listener.port), "database": "team_b",
            "tables": [{"name": "events", "codecs": [{"column": "ts", "codec": "ZSTD(3)"}]}]
        }))
        .unwrap(),
    );
    let mut world = World::with(profile, None).await;
    let ctx = Arc::get_mut(&mut world.ctx).expect("not shared yet");
    ctx.scope.clickhouse_databases = vec!["{namespace}".into(), "{namespace}_*".into()];
    world.reconcile_settled().await.unwrap();
    let (_, reason, message) = World::condition(&world.profile().await, "Degraded");
    assert_eq!(reason, "InvalidSpec", "{message}");
    assert!(message.contains("spec.clickhouse.database") && message.contains("`team_b`"), "{message}");
    assert!(message.contains(&format!("namespace {}", fixtures::NS)), "{message}");
    assert_eq!(listener.connections.load(Ordering::SeqCst), 0, "no connection was opened");
}

#[tokio::test]
async fn a_prometheus_name_that_resolves_to_a_reserved_address_is_refused_at_connect() {
    let listener = hostile(|_, _| {});
    // The name passes the check on names; what it resolves to (loopback) is refused before a connection.
    let url = format!("http://localhost:{}", listener.port);
    let access = perf_prometheus::Access::default();
    let prometheus = perf_prometheus::Prometheus::reaching(&url, Duration::from_secs(5), access, &Egress::default())
        .expect("a client");
    use perf_prometheus::MetricsSource;
    let answer = prometheus.query("up").await;
    assert!(
        matches!(&answer, Err(perf_prometheus::QueryError::EndpointRefused { reason, .. }) if reason.contains("a loopback address")),
        "{answer:?}"
    );
    // Written as an address, it is refused before a client exists.
    let literal = format!("http://127.0.0.1:{}", listener.port);
    let built =
        perf_prometheus::Prometheus::reaching(&literal, Duration::from_secs(5), Default::default(), &Egress::default());
    assert!(matches!(built, Err(perf_prometheus::Error::Refused { .. })), "{:?}", built.err());
    assert_eq!(listener.connections.load(Ordering::SeqCst), 0, "no connection was opened");
}
