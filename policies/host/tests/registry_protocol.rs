//! The registry protocol's edges a stock registry does not show, against a scripted HTTPS server on 127.0.0.1:
//! redirects (to the same host: followed; to another host: refused unless the administrator lists it; loops), a
//! registry that never answers, and Bearer tokens from the challenge's realm.

#[path = "support/https.rs"]
mod https;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use perf_policy_host::BUILTIN_ADAPTIVE_TTL;
use perf_policy_host::registry::{Credentials, RegistryClient, RegistryRef, Want, pull};
use perf_policy_host::source::sha256_hex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A response: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Serves `route(path, authorization)` over TLS; returns the port, the CA, and the requests seen (path and
/// authorization).
async fn scripted(
    route: impl Fn(&str, Option<&str>, u16) -> Answer + Send + Sync + 'static,
) -> (u16, String, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let (acceptor, ca) = https::acceptor(rustls::crypto::aws_lc_rs::default_provider());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (route, log) = (Arc::new(route), seen.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, route, log) = (acceptor.clone(), route.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Some(head) = https::read_head(&mut tls).await else { return };
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let authorization = head
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")))
                    .map(|(_, v)| v.trim().to_string());
                log.lock().unwrap().push((path.clone(), authorization.clone()));
                let (status, headers, body) = route(&path, authorization.as_deref(), port);
                let mut response =
                    format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                for (k, v) in headers {
                    response.push_str(&format!("{k}: {v}\r\n"));
                }
                response.push_str("\r\n");
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, ca, seen)
}

fn manifest(component: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": format!("sha256:{}", sha256_hex(b"{}")), "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": format!("sha256:{}", sha256_hex(component)), "size": component.len()}],
    })
    .to_string()
    .into_bytes()
}

/// A signature manifest whose layer's digest walks out of the blob path.
fn evil_signature() -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha256_hex(b"{}")), "size": 2},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": format!("sha256:../../../cdn/{}", "a".repeat(50)),
            "size": 10,
            "annotations": {"dev.cosignproject.cosign/signature": "AAAA"},
        }],
    })
    .to_string()
    .into_bytes()
}

fn redirect(to: String) -> Answer {
    (307, vec![("Location".into(), to)], Vec::new())
}

/// The script: `p` redirects its manifest within the host and its blob to `localhost` (another host name for the
/// same server); `away` redirects its manifest to `localhost`; `loop` redirects to itself; `tok` wants a Bearer
/// token from `/token`, which wants Basic credentials; `plain` names a realm over plain HTTP.
fn route(path: &str, authorization: Option<&str>, port: u16) -> Answer {
    let component = BUILTIN_ADAPTIVE_TTL;
    let layer = format!("sha256:{}", sha256_hex(component));
    let ok =
        |body: Vec<u8>| (200, vec![("Content-Type".into(), "application/vnd.oci.image.manifest.v1+json".into())], body);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u:p"));
    match path {
        "/v2/p/manifests/v1" => redirect("/v2/p/manifests/real".into()),
        "/v2/p/manifests/real" | "/v2/tok/manifests/real" => ok(manifest(component)),
        p if p == format!("/v2/p/blobs/{layer}") => redirect(format!("https://localhost:{port}/cdn/{layer}")),
        p if p == format!("/cdn/{layer}") || p == format!("/v2/tok/blobs/{layer}") => (200, vec![], component.to_vec()),
        "/v2/evil/manifests/v1" => ok(manifest(component)),
        p if p == format!("/v2/evil/manifests/sha256-{}.sig", sha256_hex(&manifest(component))) => ok(evil_signature()),
        "/v2/away/manifests/v1" => redirect(format!("https://localhost:{port}/v2/p/manifests/real")),
        "/v2/loop/manifests/v1" => redirect("/v2/loop/manifests/v1".into()),
        "/v2/tok/manifests/v1" | "/v2/plain/manifests/v1" if authorization != Some("Bearer t0ken") => {
            let realm = if path.starts_with("/v2/tok") {
                format!("https://127.0.0.1:{port}/token")
            } else {
                format!("http://127.0.0.1:{port}/token")
            };
            let challenge = format!(r#"Bearer realm="{realm}",service="test",scope="repository:tok:pull""#);
            (401, vec![("WWW-Authenticate".into(), challenge)], Vec::new())
        }
        "/v2/tok/manifests/v1" => redirect("/v2/tok/manifests/real".into()),
        p if p.starts_with("/token?") && authorization == Some(basic.as_str()) => {
            (200, vec![], br#"{"token": "t0ken"}"#.to_vec())
        }
        p if p.starts_with("/token?") => (401, vec![], Vec::new()),
        _ => (404, vec![], Vec::new()),
    }
}

fn client(ca: &str, redirect_hosts: &[&str]) -> RegistryClient {
    let hosts: Vec<String> = redirect_hosts.iter().map(|h| h.to_string()).collect();
    RegistryClient::new(Duration::from_secs(5), ca.as_bytes(), perf_egress::Egress::open(), &hosts).unwrap()
}

fn want(credentials: Option<&Credentials>) -> Want<'_> {
    Want { pin: None, credentials, max_bytes: 16 << 20, keys: &[] }
}

#[tokio::test]
async fn redirects_to_the_same_host_are_followed_and_to_another_only_when_listed() {
    let (port, ca, seen) = scripted(route).await;
    let r = |repo: &str| RegistryRef::parse(&format!("registry://127.0.0.1:{port}/{repo}:v1")).unwrap();

    let err = pull(&client(&ca, &[]), &r("p"), want(None)).await.unwrap_err();
    assert_eq!(err.category(), "fetch", "{err}");
    assert!(err.to_string().contains("redirected to another host, localhost"), "{err}");
    assert!(!seen.lock().unwrap().iter().any(|(p, _)| p.starts_with("/cdn/")), "the other host was never asked");

    let pulled = pull(&client(&ca, &["LOCALHOST"]), &r("p"), want(None)).await.unwrap();
    assert_eq!(pulled.component, BUILTIN_ADAPTIVE_TTL);

    let err = pull(&client(&ca, &[]), &r("away"), want(None)).await.unwrap_err();
    assert!(err.to_string().contains("redirected to another host, localhost"), "{err}");
    let err = pull(&client(&ca, &[]), &r("loop"), want(None)).await.unwrap_err();
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
}

#[tokio::test]
async fn a_bearer_token_is_fetched_from_the_realm_with_the_credentials() {
    let (port, ca, seen) = scripted(route).await;
    let r = |repo: &str| RegistryRef::parse(&format!("registry://127.0.0.1:{port}/{repo}:v1")).unwrap();
    let c = Credentials { username: "u".into(), password: "p".into() };
    let pulled = pull(&client(&ca, &[]), &r("tok"), want(Some(&c))).await.unwrap();
    assert_eq!(pulled.sha256, sha256_hex(BUILTIN_ADAPTIVE_TTL));
    let token_request = seen.lock().unwrap().iter().find(|(p, _)| p.starts_with("/token?")).cloned().unwrap();
    assert!(
        token_request.0.contains("service=test") && token_request.0.contains("scope=repository%3Atok%3Apull"),
        "{token_request:?}"
    );

    let wrong = Credentials { username: "u".into(), password: "nope".into() };
    let err = pull(&client(&ca, &[]), &r("tok"), want(Some(&wrong))).await.unwrap_err();
    assert!(err.to_string().contains("credentials refused"), "{err}");
    let err = pull(&client(&ca, &[]), &r("plain"), want(Some(&c))).await.unwrap_err();
    assert!(err.to_string().contains("only https"), "{err}");
}

#[tokio::test]
async fn a_registry_that_never_answers_is_given_up_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, answering nothing (not even the TLS handshake).
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let silent = RegistryClient::new(Duration::from_millis(500), b"", perf_egress::Egress::open(), &[]).unwrap();
    let r = RegistryRef::parse(&format!("registry://127.0.0.1:{port}/p:v1")).unwrap();
    let err = pull(&silent, &r, want(None)).await.unwrap_err();
    assert_eq!(err.category(), "fetch", "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn a_digest_the_registry_writes_is_checked_before_it_becomes_a_path() {
    let (port, ca, seen) = scripted(route).await;
    let r = RegistryRef::parse(&format!("registry://127.0.0.1:{port}/evil:v1")).unwrap();
    let pem = rcgen::KeyPair::generate().unwrap().public_key_pem();
    let keys = [perf_policy_host::registry::cosign::PublicKey::from_pem(&pem, "key").unwrap()];
    let want = Want { pin: None, credentials: None, max_bytes: 16 << 20, keys: &keys };
    let err = pull(&client(&ca, &[]), &r, want).await.unwrap_err();
    assert!(err.to_string().contains("is not sha256: and 64 hex characters"), "{err}");
    assert!(
        !seen.lock().unwrap().iter().any(|(p, _)| p.contains("..") || p.starts_with("/cdn/")),
        "{:?}",
        seen.lock().unwrap()
    );
}
