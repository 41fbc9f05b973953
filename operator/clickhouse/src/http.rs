//! The HTTP client for every ClickHouse the process reaches: connections go only where the administrator's egress
//! rule allows (checked on the addresses a name resolves to, at connect), and each answer is bounded in bytes.

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use perf_egress::{Bounded, Egress, Kind};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Bytes one answer may bring. The system tables of a database with some thousands of columns and the EXPLAIN
/// reports are some megabytes at most; a server streaming more (a hostile or broken one) is cut off here.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Idle pooled connections are closed after this long (the clickhouse crate's own default).
const POOL_IDLE: Duration = Duration::from_secs(2);

/// A `clickhouse::Client` over connections made by [`Connector`].
pub(crate) fn client(egress: Egress) -> clickhouse::Client {
    let connector = Connector { egress: Arc::new(egress) };
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(POOL_IDLE);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider());
    match tls {
        Ok(tls) => {
            let https = tls.https_or_http().enable_http1().wrap_connector(connector);
            clickhouse::Client::with_http_client(builder.build(https))
        }
        // Only a provider without a TLS 1.2/1.3 suite fails here (ring has them). Still through the egress rule:
        // plain HTTP works, an https:// endpoint fails to connect.
        Err(e) => {
            tracing::error!(error = %e, "no TLS for ClickHouse: https endpoints cannot be reached");
            clickhouse::Client::with_http_client(builder.build(connector))
        }
    }
}

/// Opens TCP connections for hyper under the egress rule, answers bounded by [`MAX_ANSWER_BYTES`].
#[derive(Clone)]
struct Connector {
    egress: Arc<Egress>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Wire;
    type Error = perf_egress::ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Wire, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let egress = self.egress.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
            let stream = perf_egress::connect(&egress, Kind::ClickHouse, &host, port).await?;
            Ok(Wire(TokioIo::new(Bounded::new(stream, MAX_ANSWER_BYTES))))
        })
    }
}

/// One connection, as hyper reads and writes it.
struct Wire(TokioIo<Bounded<TcpStream>>);

impl Connection for Wire {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Wire {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Wire {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
