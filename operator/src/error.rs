//! Errors of the operator library, with a fixed category for metric labels and event reasons.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    #[error("{path}: {message}")]
    Manifest { path: String, message: String },
    #[error("io {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Leader(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{component}: {message}")]
    Component { component: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bounded label for metrics and events; never free text.
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
            Error::Component { component, .. } => component,
        }
    }
}
