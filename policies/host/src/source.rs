//! Where policy components come from: built into the binary, bytes pinned by sha256 (the operator reads a
//! ConfigMap's `binaryData`), or an HTTPS URL pinned by sha256. The digest is checked before anything is compiled.

use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Error, Result, World};

/// `adaptive-ttl`, built from `policies/guests/adaptive-ttl` by `policies/build.sh`.
pub const BUILTIN_ADAPTIVE_TTL: &[u8] = include_bytes!("../../builtin/adaptive-ttl.wasm");
/// `adaptive-rate-limit`, built from `policies/guests/adaptive-rate-limit` by `policies/build.sh`.
pub const BUILTIN_ADAPTIVE_RATE_LIMIT: &[u8] = include_bytes!("../../builtin/adaptive-rate-limit.wasm");

/// Built-in policies: name, world, component.
pub const BUILTINS: [(&str, World, &[u8]); 2] = [
    ("adaptive-ttl", World::Cache, BUILTIN_ADAPTIVE_TTL),
    ("adaptive-rate-limit", World::RateLimit, BUILTIN_ADAPTIVE_RATE_LIMIT),
];

/// Default cap on a fetched component.
pub const DEFAULT_MAX_FETCH_BYTES: usize = 16 << 20;

/// A component to load.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// A built-in policy by name (see [`BUILTINS`]).
    Builtin(&'a str),
    /// Component bytes and the sha256 they must have (64 lower-case hex characters).
    Pinned { bytes: &'a [u8], sha256: &'a str },
}

impl<'a> Source<'a> {
    /// The bytes and their verified digest.
    pub(crate) fn verified(self) -> Result<(&'a [u8], String)> {
        match self {
            Source::Builtin(name) => {
                let index = BUILTINS
                    .iter()
                    .position(|(n, _, _)| *n == name)
                    .ok_or_else(|| Error::UnknownBuiltin(name.into()))?;
                Ok((BUILTINS[index].2, builtin_digests()[index].clone()))
            }
            Source::Pinned { bytes, sha256 } => Ok((bytes, verify_sha256(bytes, sha256)?)),
        }
    }
}

/// Digests of [`BUILTINS`], computed once (hashing 80 KiB on every reconcile would cost more than evaluating).
fn builtin_digests() -> &'static [String; 2] {
    static DIGESTS: OnceLock<[String; 2]> = OnceLock::new();
    DIGESTS.get_or_init(|| BUILTINS.map(|(_, _, bytes)| sha256_hex(bytes)))
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the pin's form and that `bytes` have that digest; returns the digest.
pub fn verify_sha256(bytes: &[u8], expected: &str) -> Result<String> {
    check_pin(expected)?;
    let actual = sha256_hex(bytes);
    if actual == expected { Ok(actual) } else { Err(Error::DigestMismatch { expected: expected.to_string(), actual }) }
}

pub(crate) fn check_pin(pin: &str) -> Result<()> {
    if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(Error::BadPin(pin.to_string()))
    }
}

/// An HTTP client for [`fetch`]: HTTPS only (redirects included), rustls with the platform's roots, bounded time.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    http_client_trusting(timeout, b"")
}

/// [`http_client`] that also trusts the CA certificates in `roots_pem` (a PEM bundle; empty for none), for
/// policies served from behind a private CA.
pub fn http_client_trusting(timeout: Duration, roots_pem: &[u8]) -> Result<reqwest::Client> {
    http_client_reaching(timeout, roots_pem, perf_egress::Egress::open())
}

/// [`http_client_trusting`] under the administrator's egress rule: names are screened when resolved, addresses in
/// redirects before they are followed (the caller judges the first URL's address, [`perf_egress::http::literal`]).
pub fn http_client_reaching(
    timeout: Duration,
    roots_pem: &[u8],
    egress: perf_egress::Egress,
) -> Result<reqwest::Client> {
    let redirects = perf_egress::http::redirects(egress.clone(), perf_egress::Kind::Policy, 3);
    bounded_client(timeout, roots_pem, egress, redirects)
}

/// The client of every policy download (URL and registry sources): HTTPS only, the platform's roots plus
/// `roots_pem`, `timeout` per request, names screened by `egress` when resolved, redirects as `redirects` says.
pub(crate) fn bounded_client(
    timeout: Duration,
    roots_pem: &[u8],
    egress: perf_egress::Egress,
    redirects: reqwest::redirect::Policy,
) -> Result<reqwest::Client> {
    use perf_egress::{Kind, http};
    let bad = |detail: String| Error::Input { what: "extra CA certificates".into(), detail };
    let roots = reqwest::Certificate::from_pem_bundle(roots_pem).map_err(|e| bad(e.to_string()))?;
    // A bundle that holds no certificate would silently trust nothing extra.
    if roots.is_empty() && !roots_pem.trim_ascii().is_empty() {
        return Err(bad("expected PEM certificates (-----BEGIN CERTIFICATE-----), found none".into()));
    }
    roots
        .into_iter()
        .fold(reqwest::Client::builder(), reqwest::ClientBuilder::add_root_certificate)
        .https_only(true)
        .timeout(timeout)
        .connect_timeout(timeout)
        .dns_resolver(http::Screened::new(egress, Kind::Policy))
        .redirect(redirects)
        .build()
        .map_err(|e| Error::Internal(format!("building the HTTP client: {e}")))
}

/// `error` and its sources in one line: reqwest's own message only says "error sending request", the reason (a
/// refused address, DNS, TLS) is further down.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Reads at most `max` bytes of a response body; more is an error naming `what` and the limit.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
    what: &str,
) -> std::result::Result<Vec<u8>, String> {
    let too_large = || format!("{what} is larger than {max} bytes");
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| causes(&e))? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Downloads a component over HTTPS, at most `max_bytes`, and checks it against `sha256` before returning it.
/// Load the result with [`Source::Pinned`] and the same pin.
pub async fn fetch(client: &reqwest::Client, url: &str, sha256: &str, max_bytes: usize) -> Result<Vec<u8>> {
    let fail = |detail: String| Error::Fetch { url: url.to_string(), detail };
    if !url.starts_with("https://") {
        return Err(fail("only https:// URLs are allowed".into()));
    }
    // Refuse a malformed pin before any traffic.
    check_pin(sha256)?;
    let response = client.get(url).send().await.map_err(|e| fail(causes(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP status {}", response.status())));
    }
    let body = read_capped(response, max_bytes, "the component").await.map_err(fail)?;
    verify_sha256(&body, sha256)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_checked_in_form_and_value() {
        let digest = sha256_hex(b"component");
        assert_eq!(verify_sha256(b"component", &digest).unwrap(), digest);
        assert_eq!(verify_sha256(b"other", &digest).unwrap_err().category(), "digest_mismatch");
        assert_eq!(verify_sha256(b"component", &digest.to_uppercase()).unwrap_err().category(), "bad_source");
        assert_eq!(verify_sha256(b"component", "abc").unwrap_err().category(), "bad_source");
    }

    #[test]
    fn fetch_refuses_plain_http_and_bad_pins_before_any_traffic() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = http_client(Duration::from_secs(1)).unwrap();
        let pin = sha256_hex(b"component");
        let err = runtime.block_on(fetch(&client, "http://127.0.0.1:9/p.wasm", &pin, 1024)).unwrap_err();
        assert!(matches!(err, Error::Fetch { ref detail, .. } if detail.contains("https")), "{err}");
        let err = runtime.block_on(fetch(&client, "https://127.0.0.1:9/p.wasm", "nope", 1024)).unwrap_err();
        assert_eq!(err.category(), "bad_source", "{err}");
    }

    #[test]
    fn builtins_resolve_by_name() {
        assert!(Source::Builtin("adaptive-ttl").verified().is_ok());
        assert_eq!(Source::Builtin("nope").verified().unwrap_err().category(), "bad_source");
    }
}
