//! TLS set-up shared by every client in the process.

/// Installs ring as rustls's process-wide crypto provider, once, before any client is built. kube builds its
/// TLS configuration from the process default, and with both ring (kube) and aws-lc-rs (reqwest) compiled in,
/// rustls refuses to guess: without this the operator panicked on its first request to a real API server.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
