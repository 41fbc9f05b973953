//! Reaching a Prometheus as users run it: Debian's `prometheus` (or PROMETHEUS_BIN) with `--web.config.file`, TLS
//! from a test CA and basic auth; and, for what Prometheus itself cannot check (a bearer token, the tenant header of
//! Thanos, Mimir or Cortex), a small server that records what it was sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use perf_prometheus::{Access, Auth, MetricsSource, Prometheus, QueryError};
use perf_test_support::prometheus::{Process, Setup};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    /// Held for its drop, which stops Prometheus.
    _process: Process,
    url: String,
    ca: Vec<u8>,
}

const USER: &str = "ops";
const PASSWORD: &str = "correct horse";

/// A test CA and a server certificate for 127.0.0.1 and localhost: (CA PEM, certificate PEM, key PEM).
fn certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let leaf = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// Prometheus behind TLS and basic auth, answering once it is up.
async fn start() -> Server {
    let setup = Setup::new("access");
    let dir = setup.dir.clone();
    let (ca, cert, key) = certificates();
    std::fs::write(dir.join("server.crt"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\nbasic_auth_users:\n  {USER}: '{hash}'\n",
        dir.display()
    );
    std::fs::write(dir.join("web.yml"), web).unwrap();
    let web_config = format!("--web.config.file={}", dir.join("web.yml").display());
    let process = setup.start("global:\n  scrape_interval: 15s\n", &[web_config], "https");
    let server = Server { url: process.url.clone(), _process: process, ca: ca.into_bytes() };
    let started = Instant::now();
    let client = Prometheus::with_access(&server.url, Duration::from_secs(5), full(&server)).unwrap();
    while let Err(e) = client.query("vector(1)").await {
        assert!(started.elapsed() < Duration::from_secs(60), "Prometheus never answered: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
}

fn basic(user: &str, password: &str) -> Option<Auth> {
    Some(Auth::Basic { username: user.into(), password: password.into() })
}

fn full(server: &Server) -> Access {
    Access { auth: basic(USER, PASSWORD), ca_pem: Some(server.ca.clone()), headers: Vec::new() }
}

async fn ask(server: &Server, access: Access) -> Result<Option<f64>, QueryError> {
    Prometheus::with_access(&server.url, Duration::from_secs(5), access).unwrap().query("vector(42)").await
}

#[tokio::test]
async fn tls_and_basic_auth_against_a_real_prometheus() {
    let server = start().await;
    let at = server.url.trim_start_matches("https://").to_string();
    assert_eq!(ask(&server, full(&server)).await, Ok(Some(42.0)));
    // Each missing or wrong part says which kind of problem it is.
    let unauthorized = Err(QueryError::Unauthorized { at: at.clone(), status: 401 });
    assert_eq!(ask(&server, Access { auth: None, ..full(&server) }).await, unauthorized);
    assert_eq!(ask(&server, Access { auth: basic(USER, "wrong"), ..full(&server) }).await, unauthorized);
    assert_eq!(ask(&server, Access { auth: basic("nobody", PASSWORD), ..full(&server) }).await, unauthorized);
    let bearer = Access { auth: Some(Auth::Bearer(PASSWORD.into())), ..full(&server) };
    assert_eq!(ask(&server, bearer).await, unauthorized);
    // Without the CA the certificate is not trusted: a TLS failure, before any credential is sent.
    let untrusted = ask(&server, Access { ca_pem: None, ..full(&server) }).await;
    assert!(matches!(untrusted, Err(QueryError::Tls { .. })), "{untrusted:?}");
    // Another CA does not do either.
    let other = Access { ca_pem: Some(certificates().0.into_bytes()), ..full(&server) };
    assert!(matches!(ask(&server, other).await, Err(QueryError::Tls { .. })));
    // Plain HTTP to the TLS port: Prometheus answers 400, which is not the API.
    let plain = Prometheus::with_access(&server.url.replace("https", "http"), Duration::from_secs(5), full(&server));
    assert!(plain.unwrap().query("vector(1)").await.is_err());
    // The configuration read goes through the same access.
    let client = Prometheus::with_access(&server.url, Duration::from_secs(5), full(&server)).unwrap();
    assert_eq!(client.scrape_intervals().await.map(|s| s.global), Ok(Duration::from_secs(15)));
}

/// Answers the Prometheus API with 1 when the request carries `Authorization: Bearer t0ken` and
/// `X-Scope-OrgID: team-a`, 401 otherwise; records every request head.
async fn tenant_gateway() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let ok = head.contains("authorization: bearer t0ken\r\n") && head.contains("x-scope-orgid: team-a\r\n");
                seen.lock().unwrap().push(head);
                let body =
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#;
                let response = if ok {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn a_bearer_token_and_a_tenant_header_reach_the_gateway() {
    let (url, heads) = tenant_gateway().await;
    let query = |access: Access| {
        let url = url.clone();
        async move { Prometheus::with_access(&url, Duration::from_secs(5), access).unwrap().query("up").await }
    };
    let tenant = vec![("X-Scope-OrgID".to_string(), "team-a".to_string())];
    let token = Some(Auth::Bearer("t0ken".into()));
    assert_eq!(query(Access { auth: token.clone(), headers: tenant.clone(), ca_pem: None }).await, Ok(Some(1.0)));
    let status = |r: Result<Option<f64>, QueryError>| matches!(r, Err(QueryError::Unauthorized { status: 401, .. }));
    assert!(status(query(Access { auth: token.clone(), ..Access::default() }).await), "no tenant header");
    assert!(status(query(Access { headers: tenant.clone(), ..Access::default() }).await), "no token");
    // Every request carried the token only when asked to, and never a stray credential.
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 3);
    assert!(heads[0].contains("authorization: bearer t0ken") && heads[0].contains("x-scope-orgid: team-a"));
    assert!(!heads[2].contains("authorization"), "{}", heads[2]);
}

#[tokio::test]
async fn clients_are_shared_per_url_and_access_never_across_credentials() {
    let clients = perf_prometheus::Clients::default();
    let token = |t: &str| Access { auth: Some(Auth::Bearer(t.into())), ..Access::default() };
    let a = clients.get_with("http://p:9090", token("a")).unwrap();
    assert!(Arc::ptr_eq(&a, &clients.get_with("http://p:9090", token("a")).unwrap()));
    assert!(!Arc::ptr_eq(&a, &clients.get_with("http://p:9090", token("rotated")).unwrap()));
    assert!(!Arc::ptr_eq(&a, &clients.get("http://p:9090").unwrap()));
    // A bad header is refused when the client is built, naming the header.
    let bad = Access { headers: vec![("Host".into(), "evil".into())], ..Access::default() };
    let err = clients.get_with("http://p:9090", bad).unwrap_err().to_string();
    assert!(err.contains("\"Host\""), "{err}");
}
