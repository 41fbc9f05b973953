//! TLS of the PostgreSQL read, as libpq's `sslmode` means it: `disable` none; `prefer` and `require` encrypt
//! without checking the certificate (libpq checks none in those modes); `verify-full` checks the chain against the
//! profile's CA (or the public web roots) and the host name. rustls with ring, the provider kube uses, given
//! explicitly so the read does not depend on the process-wide default.

use perf_operator_api::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use thiserror::Error;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Error)]
pub enum CaError {
    #[error("no PEM certificate in it")]
    NoCertificate,
    #[error("a PEM certificate in it does not parse")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("rustls refused it")]
    Rustls(#[source] rustls::Error),
}

/// The connector for `mode`; None for `disable`. `ca_pem`: the CA bundle for `verify-full`.
pub fn connector(mode: SslMode, ca_pem: Option<&str>) -> Result<Option<MakeRustlsConnect>, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(CaError::Rustls)?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider.signature_verification_algorithms)))
            .with_no_client_auth(),
        SslMode::VerifyFull => builder.with_root_certificates(roots(ca_pem)?).with_no_client_auth(),
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The CA bundle's certificates, or the public web roots without one.
fn roots(ca_pem: Option<&str>) -> Result<RootCertStore, CaError> {
    let Some(pem) = ca_pem else { return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }) };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.map_err(CaError::Pem)?).map_err(CaError::Rustls)?;
    }
    if roots.is_empty() { Err(CaError::NoCertificate) } else { Ok(roots) }
}

/// `prefer` and `require`: the channel is encrypted and the handshake's signatures are checked, but whoever holds
/// the certificate is not (libpq's meaning of these modes; `verify-full` is there for that).
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_bundle_without_a_certificate_is_refused_before_connecting() {
        assert!(connector(SslMode::Disable, None).unwrap().is_none());
        assert!(connector(SslMode::VerifyFull, None).unwrap().is_some(), "public web roots");
        let none = connector(SslMode::VerifyFull, Some("not a certificate")).err();
        assert!(matches!(none, Some(CaError::NoCertificate)), "{none:?}");
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(connector(SslMode::VerifyFull, Some(broken)).is_err());
    }
}
