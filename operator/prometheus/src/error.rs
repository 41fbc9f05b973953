//! Why a query gave no value, in words an on-call engineer can act on: which of connection refused, DNS, TLS,
//! timeout, wrong URL, missing credentials or a rejected query it was. Messages stay short and never carry the
//! encoded request URL (reqwest's own messages do: hundreds of percent-encoded characters of PromQL).

use std::error::Error as StdError;
use std::time::Duration;

/// What kind of trouble a [`QueryError`] is, which decides what a caller does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Prometheus is down, slow or cannot be reached (refused, DNS, TLS, timeout, 5xx): hold and try again.
    Unreachable,
    /// Something answered, but not a Prometheus API we may read (401/403, 404, an HTML page): fix the URL or the
    /// credentials; retrying changes nothing.
    Endpoint,
    /// Prometheus understood the request and refused the query, or its answer can never be one value: the check
    /// can never succeed as written.
    Query,
}

/// Why a query gave no value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus unreachable: connection refused by {at}")]
    Refused { at: String },
    #[error("Prometheus unreachable: cannot resolve host {host} (DNS)")]
    Dns { host: String },
    #[error("Prometheus unreachable: TLS handshake with {at} failed: {reason}")]
    Tls { at: String, reason: String },
    #[error("Prometheus unreachable: no answer from {at} within {after:?}")]
    Timeout { at: String, after: Duration },
    #[error("Prometheus unreachable: connection to {at} failed: {reason}")]
    Connection { at: String, reason: String },
    #[error("Prometheus unreachable: {at} answered HTTP {status}: {message}")]
    Server { at: String, status: u16, message: String },
    #[error("HTTP {status} from {at}: missing or wrong credentials")]
    Unauthorized { at: String, status: u16 },
    #[error("HTTP 404 from {at}: no Prometheus API at this URL (wrong URL or path prefix?)")]
    NotFound { at: String },
    #[error("{at} is not a Prometheus API: it answered {what} (wrong URL?)")]
    NotPrometheus { at: String, what: String },
    #[error("HTTP {status} from {at}: a redirect, which is not followed (point the URL at the Prometheus API itself)")]
    Redirected { at: String, status: u16 },
    #[error("{at} answered more than {limit} bytes, more than any answer this client reads (wrong URL?)")]
    TooLarge { at: String, limit: usize },
    /// The administrator's egress rule refuses the server: nothing was sent.
    #[error("Prometheus at {at} may not be reached: {reason}")]
    EndpointRefused { at: String, reason: String },
    #[error("Prometheus rejected the query ({error_type}): {message}")]
    Rejected { error_type: String, message: String },
    #[error("query returned {0} series, expected one (aggregate it, e.g. with sum())")]
    ManySeries(usize),
}

impl QueryError {
    /// What kind of trouble this is.
    pub fn trouble(&self) -> Trouble {
        match self {
            QueryError::Refused { .. }
            | QueryError::Dns { .. }
            | QueryError::Tls { .. }
            | QueryError::Timeout { .. }
            | QueryError::Connection { .. }
            | QueryError::Server { .. } => Trouble::Unreachable,
            QueryError::Unauthorized { .. }
            | QueryError::NotFound { .. }
            | QueryError::NotPrometheus { .. }
            | QueryError::Redirected { .. }
            | QueryError::TooLarge { .. }
            | QueryError::EndpointRefused { .. } => Trouble::Endpoint,
            QueryError::Rejected { .. } | QueryError::ManySeries(_) => Trouble::Query,
        }
    }

    /// Prometheus itself is down or failing (not the query): callers hold rather than judge on it.
    pub fn is_outage(&self) -> bool {
        self.trouble() == Trouble::Unreachable
    }

    /// Fixed label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self.trouble() {
            Trouble::Unreachable => "unreachable",
            Trouble::Endpoint => "endpoint",
            Trouble::Query => "query",
        }
    }
}

/// Classifies a transport error of a request to `at` (host and port) sent with `timeout`, by walking its causes:
/// reqwest's own message only says "error sending request for url (...)".
pub(crate) fn transport(error: &reqwest::Error, at: &str, host: &str, timeout: Duration) -> QueryError {
    let at = at.to_string();
    if let Some(reason) = causes(error).find_map(refusal) {
        return QueryError::EndpointRefused { at, reason };
    }
    if let Some(reason) = causes(error).find_map(tls_reason) {
        return QueryError::Tls { at, reason };
    }
    if error.is_timeout() || causes(error).any(|e| io_kind(e) == Some(std::io::ErrorKind::TimedOut)) {
        return QueryError::Timeout { at, after: timeout };
    }
    // hyper-util labels a failed lookup "dns error" (its ConnectError carries no kind to match on).
    if causes(error).any(|e| e.to_string() == "dns error") {
        return QueryError::Dns { host: host.to_string() };
    }
    if causes(error).any(|e| io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused)) {
        return QueryError::Refused { at };
    }
    let reason = causes(error).last().map_or_else(|| "connection failed".to_string(), |e| e.to_string());
    QueryError::Connection { at, reason }
}

/// `error` and its sources, including the error an `io::Error` wraps (its `source()` skips it).
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        let inner = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|e| e as _);
        next = inner.or_else(|| current.source());
        Some(current)
    })
}

fn io_kind(error: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    error.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
}

fn refusal(error: &(dyn StdError + 'static)) -> Option<String> {
    match error.downcast_ref::<perf_egress::ConnectError>() {
        Some(perf_egress::ConnectError::Refused(r)) => Some(r.to_string()),
        _ => None,
    }
}

fn tls_reason(error: &(dyn StdError + 'static)) -> Option<String> {
    error.downcast_ref::<rustls::Error>().map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_one_kind_and_a_short_message() {
        let refused = QueryError::Refused { at: "127.0.0.1:9".into() };
        assert_eq!((refused.trouble(), refused.category()), (Trouble::Unreachable, "unreachable"));
        assert_eq!(refused.to_string(), "Prometheus unreachable: connection refused by 127.0.0.1:9");
        assert!(QueryError::Server { at: "p:9090".into(), status: 503, message: "overloaded".into() }.is_outage());
        let unauthorized = QueryError::Unauthorized { at: "p:9090".into(), status: 401 };
        assert_eq!(unauthorized.trouble(), Trouble::Endpoint);
        assert!(!unauthorized.is_outage());
        let rejected = QueryError::Rejected { error_type: "bad_data".into(), message: "parse error".into() };
        assert_eq!(rejected.trouble(), Trouble::Query);
        assert_eq!(QueryError::ManySeries(2).category(), "query");
    }

    #[test]
    fn causes_reach_the_error_inside_an_io_error() {
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        let reasons: Vec<String> = causes(&tls).filter_map(tls_reason).collect();
        assert_eq!(reasons, [rustls::Error::DecryptError.to_string()]);
    }
}
