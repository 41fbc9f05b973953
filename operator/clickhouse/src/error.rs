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
    /// The round's deadline passed before this statement started: it is sent next round.
    #[error("not sent: this round's deadline of {seconds} s passed; it is sent next round")]
    RoundDeadline { seconds: u64 },
    /// The administrator's egress rule refuses the endpoint: nothing was sent.
    #[error("ClickHouse at {endpoint}: {reason}")]
    EndpointRefused { endpoint: String, reason: String },
    /// An answer was larger than [`crate::MAX_ANSWER_BYTES`]: cut off.
    #[error("ClickHouse at {endpoint}: an answer was larger than {limit} bytes and was cut off")]
    TooLarge { endpoint: String, limit: usize },
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
            Error::EndpointRefused { .. } => "EndpointRefused",
            Error::RoundDeadline { .. } => "Timeout",
            Error::TooLarge { .. } => "AnswerTooLarge",
        }
    }

    /// Whether every later statement would fail the same way (server gone, credentials refused, no answer in
    /// time): sending stops there instead of waiting out each statement. A refused statement does not stop it.
    pub fn stops_round(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::Unauthorized { .. }
                | Error::Timeout { .. }
                | Error::EndpointRefused { .. }
                | Error::TooLarge { .. }
                | Error::RoundDeadline { .. }
        )
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    /// Maps a client error for `statement` sent to `endpoint`.
    pub(crate) fn from_client(endpoint: &str, statement: &str, err: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match err {
            E::Network(e) => network(endpoint, e.as_ref()),
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

/// A failed exchange: refused by the egress rule, an answer cut off, or the server unreachable.
fn network(endpoint: &str, err: &(dyn std::error::Error + 'static)) -> Error {
    let endpoint = endpoint.to_string();
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(perf_egress::ConnectError::Refused(r)) = e.downcast_ref::<perf_egress::ConnectError>() {
            return Error::EndpointRefused { endpoint, reason: r.to_string() };
        }
        next = e.source();
    }
    match perf_egress::too_large(err) {
        Some(limit) => Error::TooLarge { endpoint, limit },
        None => Error::Unreachable { endpoint, message: chain(err) },
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
