//! A local HTTPS server for policy URLs, shared by this crate's fetch tests and the operator's
//! (`operator/tests/policy_fetch.rs` includes this file): a certificate for `localhost` from a test CA the client
//! is told to trust, the same body for every request, and a count of the requests answered.

// Each including test uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The running server: `https://localhost:{port}/`, its CA (PEM) and how many requests it answered.
pub struct Https {
    pub port: u16,
    pub ca: String,
    pub requests: Arc<AtomicUsize>,
}

impl Https {
    pub fn answered(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A TLS acceptor for `localhost` and 127.0.0.1, with a certificate from a fresh test CA; returns it and the CA (PEM).
pub fn acceptor(provider: CryptoProvider) -> (tokio_rustls::TlsAcceptor, String) {
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let leaf = CertificateParams::new(names).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

/// Reads a request's head (up to the blank line); None when the peer closed first.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Serves `body` to every request, one request per connection, with TLS from `provider`.
pub async fn serve(body: &'static [u8], provider: CryptoProvider) -> Https {
    let (acceptor, ca) = acceptor(provider);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                // Read the request's head, answer, close.
                if read_head(&mut tls).await.is_none() {
                    return;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Https { port, ca, requests }
}
