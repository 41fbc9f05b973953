//! A TCP proxy on 127.0.0.1 in front of the API server, for one operator process: [`Proxy::cut`] closes every
//! connection and refuses new ones (that process has lost its API access while the others keep theirs), and
//! [`Proxy::restore`] lets it through again. TLS passes through untouched (the serving certificate names
//! 127.0.0.1, whatever the port).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Forwards a port of its own to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (cut, connections) = (cut.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap_or_else(|p| p.into_inner()).push(task);
                }
            })
        };
        Self { addr, cut, connections, accept }
    }

    /// The server URL a kubeconfig names to go through the proxy.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The address of the API server the admin KUBECONFIG names.
pub fn api_server() -> SocketAddr {
    let (ok, server, err) =
        crate::kubectl(&["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    assert!(ok, "kubectl config view: {err}");
    let host = server.trim().trim_start_matches("https://").trim_end_matches('/');
    host.parse().unwrap_or_else(|e| panic!("the API server {server:?} is not an address: {e}"))
}
