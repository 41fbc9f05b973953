//! Against Debian's real PostgreSQL: the limits the pools are capped by, read live, in every `sslMode`, and each
//! failure told apart. `tests/run.sh` starts a throwaway cluster with `max_connections=37` and
//! `superuser_reserved_connections=3` (so a reading is not a default) and TLS from its own CA, and exports
//! POSTGRES_URL (an ordinary role) and POSTGRES_CA_FILE.

mod fixtures;

use fixtures::postgres_server as server;
use perf_operator::postgres::{self, PostgresError, Target};
use perf_operator_api::{PostgresServer, SslMode};
use serde_json::json;
use std::time::Duration;

fn ca() -> String {
    let path = std::env::var("POSTGRES_CA_FILE").expect("POSTGRES_CA_FILE not set: run the suite with tests/run.sh");
    std::fs::read_to_string(path).unwrap()
}

fn target(ssl_mode: SslMode, password: Option<&str>, ca: Option<String>) -> Target {
    let (host, port, user, real) = server();
    let spec: PostgresServer = serde_json::from_value(json!({
        "host": host, "port": port, "credentialsSecretRef": {"name": "db"}, "sslMode": ssl_mode
    }))
    .unwrap();
    Target::new(&spec, user, password.unwrap_or(&real).to_string(), ca)
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_live_limits_are_read_in_every_ssl_mode() {
    for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
        let limits =
            postgres::read_limits(&perf_egress::Egress::open(), &target(mode, None, None), TIMEOUT).await.unwrap();
        assert_eq!((limits.max_connections, limits.superuser_reserved_connections), (37, 3), "{mode:?}");
        // PostgreSQL 15 (Debian 12) has no reserved_connections; 16 and later say 0 unless set.
        assert!(limits.reserved_connections.unwrap_or(0) == 0, "{limits:?}");
        assert_eq!(limits.available(), 34);
        assert!(limits.connections_in_use >= 1, "the read's own connection is a client backend: {limits:?}");
    }
    let verified =
        postgres::read_limits(&perf_egress::Egress::open(), &target(SslMode::VerifyFull, None, Some(ca())), TIMEOUT)
            .await
            .unwrap();
    assert_eq!(verified.max_connections, 37);
}

#[tokio::test]
async fn a_certificate_no_known_ca_signed_is_refused_under_verify_full() {
    // Without caSecretRef, verify-full checks against the public web roots, which did not sign the test CA.
    let e = postgres::read_limits(&perf_egress::Egress::open(), &target(SslMode::VerifyFull, None, None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, PostgresError::Unreachable { .. }), "{e:?}");
    let text = perf_operator::error::chain(&e);
    assert!(text.contains("TLS") || text.contains("certificate"), "{text}");
    let bad = postgres::read_limits(
        &perf_egress::Egress::open(),
        &target(SslMode::VerifyFull, None, Some("no PEM here".into())),
        TIMEOUT,
    )
    .await;
    assert!(matches!(bad, Err(PostgresError::Ca { .. })), "{bad:?}");
}

#[tokio::test]
async fn a_wrong_password_is_told_apart_and_never_shown() {
    let e = postgres::read_limits(
        &perf_egress::Egress::open(),
        &target(SslMode::Disable, Some("not-the-password"), None),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PostgresError::WrongPassword { .. }), "{e:?}");
    let text = perf_operator::error::chain(&e);
    assert!(text.contains("password authentication failed") && !text.contains("not-the-password"), "{text}");
    let (_, _, _, real) = server();
    assert!(!text.contains(&real), "{text}");
}

#[tokio::test]
async fn no_server_and_a_silent_server_are_unreachable_and_a_timeout() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut t = target(SslMode::Disable, None, None);
    t.port = free;
    let e = postgres::read_limits(&perf_egress::Egress::open(), &t, TIMEOUT).await.unwrap_err();
    // No connection at all (refused at connect): unreachable, as a failed session start is.
    assert!(matches!(e, PostgresError::Connect { .. }) && e.category() == "unreachable", "{e:?}");
    // Accepts the connection, never answers: bounded by the timeout, not by the server.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    t.port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let e = postgres::read_limits(&perf_egress::Egress::open(), &t, Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(e, PostgresError::Timeout { .. } | PostgresError::Unreachable { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// A TCP proxy on loopback to the suite's PostgreSQL that counts the connections it accepts.
async fn counting_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let (host, port, _, _) = server();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let upstream = format!("{host}:{port}");
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (local, accepted)
}

#[tokio::test]
async fn profiles_sharing_a_server_read_its_limits_once_per_ttl_and_a_failure_is_not_kept() {
    use perf_operator::controller::limits::PostgresCache;
    use std::sync::atomic::Ordering;
    let (port, accepted) = counting_proxy().await;
    let via_proxy =
        |password: Option<&str>| Target { port, host: "127.0.0.1".into(), ..target(SslMode::Disable, password, None) };
    let cache = PostgresCache::default();
    // Eight rounds at once (profiles resyncing together): one connection, the others wait for its answer.
    let shared = via_proxy(None);
    let open = perf_egress::Egress::open();
    let reads = futures::future::join_all((0..8).map(|_| cache.read(&open, &shared, TIMEOUT))).await;
    for limits in reads {
        assert_eq!(limits.unwrap().max_connections, 37);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for eight rounds");
    cache.read(&perf_egress::Egress::open(), &via_proxy(None), TIMEOUT).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "within the TTL the answer is reused");
    // Other credentials are another entry, and a failure is not kept: each round tries again.
    for _ in 0..2 {
        let e =
            cache.read(&perf_egress::Egress::open(), &via_proxy(Some("not-the-password")), TIMEOUT).await.unwrap_err();
        assert!(matches!(e, PostgresError::WrongPassword { .. }), "{e:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
