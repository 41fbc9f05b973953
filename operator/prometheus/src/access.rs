//! How a client reaches a Prometheus that is not open to anyone: credentials (a bearer token or basic auth), a
//! private CA, and extra headers (the tenant header of Thanos, Mimir or Cortex). Built from a profile's Secret and
//! ConfigMap by the operator, or from files by `canary analyze`.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Error;

/// Credentials sent with every request.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic { username: String, password: String },
}

/// Everything but the URL that a request to Prometheus needs. The default is an open Prometheus.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub auth: Option<Auth>,
    /// PEM certificates trusted in addition to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Extra request headers, in order.
    pub headers: Vec<(String, String)>,
}

/// Headers the client sets itself, or that would change what the request means: never taken from a profile.
const RESERVED: [&str; 6] =
    ["authorization", "host", "content-length", "content-type", "transfer-encoding", "connection"];

/// Headers that select a tenant of a multi-tenant Prometheus (Mimir, Cortex and Loki; Thanos; Grafana's
/// organisation): set by the operator's administrator only (`--prometheus-tenant-header`), never by a profile.
const TENANT_HEADERS: [&str; 3] = ["x-scope-orgid", "thanos-tenant", "x-grafana-org-id"];

/// Whether `name` selects a tenant: one of the well-known tenant headers, or `configured` (the administrator's).
pub fn selects_tenant(name: &str, configured: Option<&str>) -> bool {
    let name = name.trim().to_ascii_lowercase();
    TENANT_HEADERS.contains(&name.as_str()) || configured.is_some_and(|c| c.trim().eq_ignore_ascii_case(&name))
}

impl Access {
    /// Identifies this access among clients of one URL without keeping the secrets in the key.
    pub(crate) fn fingerprint(&self) -> String {
        if *self == Access::default() {
            return String::new();
        }
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        match &self.auth {
            None => field(b"none"),
            Some(Auth::Bearer(token)) => {
                field(b"bearer");
                field(token.as_bytes());
            }
            Some(Auth::Basic { username, password }) => {
                field(b"basic");
                field(username.as_bytes());
                field(password.as_bytes());
            }
        }
        field(self.ca_pem.as_deref().unwrap_or_default());
        for (name, value) in &self.headers {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        hex::encode(hash.finalize())
    }

    /// The client builder with the CA and headers applied; credentials are added per request (see [`Access::apply`]).
    pub(crate) fn configure(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, Error> {
        if let Some(pem) = &self.ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("the CA bundle is not PEM certificates: {e}")))?;
            if roots.is_empty() {
                return Err(invalid(
                    "the CA bundle holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            builder = roots.into_iter().fold(builder, reqwest::ClientBuilder::add_root_certificate);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            let (name, value) = header(name, value)?;
            headers.append(name, value);
        }
        Ok(builder.default_headers(headers))
    }

    /// Adds the credentials to one request.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            None => request,
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            Some(Auth::Basic { username, password }) => request.basic_auth(username, Some(password)),
        }
    }
}

/// Checks one extra header: a valid name that is not reserved, a value of visible characters.
pub fn header(name: &str, value: &str) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), Error> {
    let parsed = reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(format!("header name {name:?} is not a valid HTTP header name")))?;
    if RESERVED.contains(&parsed.as_str()) {
        return Err(invalid(format!(
            "header {name:?} is set by the operator itself; credentials go in the Secret (token, or username and password)"
        )));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(format!("the value of header {name:?} has control characters")));
    }
    let mut value = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| invalid(format!("the value of header {name:?} is not a valid HTTP header value")))?;
    // Tenant ids are not secrets, but a header may carry an API key: keep it out of debug output either way.
    value.set_sensitive(true);
    Ok((parsed, value))
}

fn invalid(reason: String) -> Error {
    Error::InvalidAccess { reason }
}

/// Never prints a credential.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("auth", &self.auth)
            .field("ca", &self.ca_pem.as_ref().map(|pem| format!("{} bytes of PEM", pem.len())))
            .field("headers", &self.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_headers_are_known_whatever_their_case() {
        for name in ["X-Scope-OrgID", "x-scope-orgid", " THANOS-TENANT", "X-Grafana-Org-Id"] {
            assert!(selects_tenant(name, None), "{name}");
        }
        assert!(!selects_tenant("X-Team", None));
        assert!(selects_tenant("x-team", Some("X-Team")));
        assert!(!selects_tenant("X-Other", Some("X-Team")));
    }

    #[test]
    fn headers_are_checked_by_name_and_value() {
        assert!(header("X-Scope-OrgID", "tenant-a").is_ok());
        for (name, value, expected) in [
            ("Authorization", "Bearer x", "set by the operator itself"),
            ("host", "evil", "set by the operator itself"),
            ("bad name", "x", "not a valid HTTP header name"),
            ("", "x", "not a valid HTTP header name"),
            ("X-Org", "a\r\nInjected: 1", "control characters"),
            ("X-Org", "a\u{7f}", "control characters"),
        ] {
            let err = header(name, value).unwrap_err().to_string();
            assert!(err.contains(expected), "{name:?}={value:?}: {err}");
        }
    }

    #[test]
    fn fingerprints_tell_accesses_apart_without_holding_secrets() {
        let open = Access::default();
        let token = |t: &str| Access { auth: Some(Auth::Bearer(t.into())), ..Access::default() };
        assert_eq!(open.fingerprint(), "");
        assert_ne!(token("a").fingerprint(), token("b").fingerprint());
        assert_eq!(token("a").fingerprint(), token("a").fingerprint());
        assert!(!token("s3cret").fingerprint().contains("s3cret"));
        // Field boundaries count: ("ab", "c") is not ("a", "bc").
        let basic = |u: &str, p: &str| Access {
            auth: Some(Auth::Basic { username: u.into(), password: p.into() }),
            ..Access::default()
        };
        assert_ne!(basic("ab", "c").fingerprint(), basic("a", "bc").fingerprint());
    }

    #[test]
    fn debug_output_never_shows_credentials() {
        let access = Access {
            auth: Some(Auth::Basic { username: "ops".into(), password: "hunter2".into() }),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            headers: vec![("X-Api-Key".into(), "k3y".into())],
        };
        let shown = format!("{access:?} {:?}", Auth::Bearer("t0ken".into()));
        for secret in ["hunter2", "k3y", "t0ken"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("ops") && shown.contains("X-Api-Key"), "{shown}");
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let access = Access { ca_pem: Some(b"not pem".to_vec()), ..Access::default() };
        let err = access.configure(reqwest::Client::builder()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("CA bundle"), "{err}");
    }
}
