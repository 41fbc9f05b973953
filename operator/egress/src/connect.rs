//! Resolving and connecting under an [`Egress`]: the addresses a name resolves to are screened before the first
//! byte leaves, so a name that points at a reserved address (or leaves the allowed networks) is never reached.

use crate::allow::{Egress, Kind, Refusal};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("cannot resolve {host}")]
    Dns {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {host}:{port}")]
    Io {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// The addresses of `host` (a name or an address) at `port` that `egress` lets `kind` reach.
pub async fn resolve(egress: &Egress, kind: Kind, host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|source| ConnectError::Dns { host: host.to_string(), source })?
        .collect();
    Ok(egress.screen(kind, host, &found)?)
}

/// A TCP connection to `host:port`, to the first allowed address that answers.
pub async fn connect(egress: &Egress, kind: Kind, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in resolve(egress, kind, host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are small and answers awaited: no batching delay.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    let source = last.unwrap_or_else(|| std::io::Error::other("no address"));
    Err(ConnectError::Io { host: host.to_string(), port, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reserved_address_is_refused_before_connecting_and_an_allowed_one_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let denied = Egress::default();
        let refused = connect(&denied, Kind::Redis, "localhost", port).await.unwrap_err();
        assert!(matches!(refused, ConnectError::Refused(Refusal::Reserved { .. })), "{refused:?}");
        let accepted = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "nothing reached the listener");

        let allowed = Egress::new(&[], &["127.0.0.0/8".into()], vec![]).unwrap();
        connect(&allowed, Kind::Redis, "localhost", port).await.unwrap();
        connect(&allowed, Kind::Redis, "127.0.0.1", port).await.unwrap();
    }

    #[tokio::test]
    async fn an_unknown_name_is_a_dns_error() {
        let e = resolve(&Egress::default(), Kind::Prometheus, "nothing.invalid", 80).await.unwrap_err();
        assert!(matches!(e, ConnectError::Dns { .. }), "{e:?}");
    }
}
