//! Tiny local HTTP servers standing where Prometheus should be: a fixed answer (401, 404, a login page), a black
//! hole that accepts and never answers, and a proxy that delays every answer of a real Prometheus.

use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use std::time::Duration;
use tokio::net::TcpListener;

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// Answers every request with `status`, `content_type` and `body`; returns its base URL.
pub async fn fixed(status: u16, content_type: &'static str, body: &'static str) -> String {
    let (listener, url) = listen().await;
    let status = StatusCode::from_u16(status).unwrap();
    let router = axum::Router::new()
        .fallback(move || std::future::ready((status, [(header::CONTENT_TYPE, content_type)], body)));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Accepts connections and never sends a byte; returns its base URL.
pub async fn black_hole() -> String {
    let (listener, url) = listen().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// Forwards `/api/v1/query` to `upstream` after `delay`; returns its base URL.
pub async fn delaying(upstream: &str, delay: Duration) -> String {
    let (listener, url) = listen().await;
    let client = reqwest::Client::new();
    let target = format!("{upstream}/api/v1/query");
    let router = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |RawQuery(query): RawQuery| {
            let (client, target) = (client.clone(), target.clone());
            async move {
                tokio::time::sleep(delay).await;
                let url = format!("{target}?{}", query.unwrap_or_default());
                match client.get(url).send().await {
                    Ok(r) => (StatusCode::from_u16(r.status().as_u16()).unwrap(), r.text().await.unwrap_or_default()),
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}
