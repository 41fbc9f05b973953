//! Errors of the ClickHouse component.

/// What went wrong; `category()` is the fixed label for metrics and event reasons.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec field failed validation; nothing was sent to the server.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The server could not be reached (connection refused, DNS, TLS).
    #[error("ClickHouse at {endpoint} is unreachable: {message}")]
    Unreachable { endpoint: String, message: String },
    /// The server answered with an authentication error.
    #[error("ClickHouse rejected the credentials: {message}")]
    Unauthorized { message: String },
    /// A statement was rejected by the server.
    #[error("statement `{statement}` failed: {message}")]
    Statement { statement: String, message: String },
    /// A statement or query did not finish in time.
    #[error("statement `{statement}` timed out after {seconds} s")]
    Timeout { statement: String, seconds: u64 },
}

impl Error {
    /// Fixed, low-cardinality category for metric labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "InvalidSpec",
            Error::Unreachable { .. } => "Unreachable",
            Error::Unauthorized { .. } => "Unauthorized",
            Error::Statement { .. } => "StatementFailed",
            Error::Timeout { .. } => "Timeout",
        }
    }

    /// Whether every later statement would fail the same way (server gone, credentials refused, no answer in
    /// time): sending stops there instead of waiting out each statement. A refused statement does not stop it.
    pub fn stops_round(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Unauthorized { .. } | Error::Timeout { .. })
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    /// Maps a client error for `statement` sent to `endpoint`.
    pub(crate) fn from_client(endpoint: &str, statement: &str, err: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match err {
            E::Network(e) => Error::Unreachable { endpoint: endpoint.to_string(), message: chain(e.as_ref()) },
            E::BadResponse(text) => {
                let message = short(&text);
                // 516 AUTHENTICATION_FAILED, 192-194 unknown user / wrong password / required password.
                if ["Code: 516", "Code: 192", "Code: 193", "Code: 194"].iter().any(|c| message.contains(c)) {
                    Error::Unauthorized { message }
                } else {
                    Error::Statement { statement: statement.to_string(), message }
                }
            }
            other => Error::Statement { statement: statement.to_string(), message: short(&other.to_string()) },
        }
    }
}

/// hyper says "client error (Connect)"; the cause (connection refused, DNS) is further down the chain.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    short(&parts.join(": "))
}

/// Server messages carry a stack trace after a blank line; status wants the first paragraph, bounded.
pub(crate) fn short(text: &str) -> String {
    const MAX: usize = 1000;
    let first = text.split("\n\n").next().unwrap_or(text).trim();
    let first = first.split(" (version ").next().unwrap_or(first);
    if first.len() <= MAX {
        return first.to_string();
    }
    let mut end = MAX;
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &first[..end])
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
