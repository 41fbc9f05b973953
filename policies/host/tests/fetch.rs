//! The URL source over real TLS: a local HTTPS server, with a certificate from a test CA the client is told to
//! trust, serves a component; the pinned download loads and evaluates, and a wrong pin or an oversized body is
//! refused.

#[path = "support/https.rs"]
mod https;

use std::time::Duration;

use perf_policy_host::source::{fetch, http_client, http_client_trusting, sha256_hex};
use perf_policy_host::{BUILTIN_ADAPTIVE_TTL, HostConfig, PolicyHost, Source, World};

/// Serves `body` on `https://localhost:PORT/`; returns the port and the CA certificate (PEM).
async fn serve(body: &'static [u8]) -> (u16, String) {
    let server = https::serve(body, rustls::crypto::aws_lc_rs::default_provider()).await;
    (server.port, server.ca)
}

#[tokio::test]
async fn a_pinned_component_is_fetched_over_tls_loaded_and_evaluated() {
    let (port, ca) = serve(BUILTIN_ADAPTIVE_TTL).await;
    let url = format!("https://localhost:{port}/adaptive-ttl.wasm");
    let pin = sha256_hex(BUILTIN_ADAPTIVE_TTL);
    let client = http_client_trusting(Duration::from_secs(10), ca.as_bytes()).unwrap();

    let bytes = fetch(&client, &url, &pin, 1 << 20).await.unwrap();
    let host = PolicyHost::new(HostConfig::default()).unwrap();
    let policy = host.load(World::Cache, Source::Pinned { bytes: &bytes, sha256: &pin }).unwrap();
    let input = serde_json::from_str(include_str!("../../examples/cache-input.json")).unwrap();
    assert_eq!(policy.evaluate_cache(&input).unwrap().classes.len(), 10);

    // The right bytes under another pin are refused, as is a body over the size cap.
    let other = sha256_hex(b"another component");
    assert_eq!(fetch(&client, &url, &other, 1 << 20).await.unwrap_err().category(), "digest_mismatch");
    let err = fetch(&client, &url, &pin, 1024).await.unwrap_err();
    assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_is_refused() {
    let (port, _ca) = serve(BUILTIN_ADAPTIVE_TTL).await;
    let url = format!("https://localhost:{port}/adaptive-ttl.wasm");
    let client = http_client(Duration::from_secs(10)).unwrap();
    let err = fetch(&client, &url, &sha256_hex(BUILTIN_ADAPTIVE_TTL), 1 << 20).await.unwrap_err();
    assert_eq!(err.category(), "fetch", "{err}");
}

#[test]
fn an_extra_ca_bundle_without_a_certificate_is_refused() {
    let err = http_client_trusting(Duration::from_secs(1), b"not a certificate").unwrap_err();
    assert!(err.to_string().contains("extra CA certificates") && err.to_string().contains("PEM"), "{err}");
    assert!(http_client_trusting(Duration::from_secs(1), b"\n").is_ok());
}
