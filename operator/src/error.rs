//! Errors of the operator library, with a fixed snake_case category for metric labels.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API")]
    Kube(#[from] kube::Error),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("finalizer")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("serialization")]
    Serialization(#[from] serde_json::Error),
    #[error("{path}: {message}")]
    Manifest { path: String, message: String },
    #[error("io {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Leader(String),
    #[error("metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("a referenced source could not be read")]
    Unread(#[from] crate::decide::Unread),
    #[error("policies")]
    Policy(#[from] perf_policy_host::Error),
    #[error("canary")]
    Canary(#[source] Box<perf_canary::Error>),
    #[error("ClickHouse")]
    ClickHouse(#[source] Box<perf_clickhouse::Error>),
    #[error("{component}: {message}")]
    Component { component: &'static str, message: String },
    #[error("the reconcile did not finish within {0:?}; it is retried with backoff")]
    ReconcileTimeout(std::time::Duration),
    /// An object with the name the operator would give one of the profile's objects exists and is not the
    /// profile's: it is never taken over (its data would be lost).
    #[error("{kind} {name} exists and is not this profile's (no controller reference to it): rename or delete it")]
    NotOwned { kind: String, name: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bounded snake_case label for metrics; never free text.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Finalizer(_) => "finalizer",
            Error::Serialization(_) => "serialization",
            Error::Manifest { .. } => "manifest",
            Error::Io { .. } => "io",
            Error::Leader(_) => "leader",
            Error::Metrics(_) => "metrics",
            Error::Unread(e) => e.category(),
            Error::Policy(e) => e.category(),
            Error::Canary(e) => e.category(),
            Error::ClickHouse(e) => e.category(),
            Error::Component { component, .. } => component,
            Error::ReconcileTimeout(_) => "reconcile_timeout",
            Error::NotOwned { .. } => "not_owned",
        }
    }
}

/// An error with its sources, `: `-separated, for conditions and the CLI: our errors name the action and keep the
/// cause as their source.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // `#[error(transparent)]` and `{0}` formats repeat their source: say it once.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
