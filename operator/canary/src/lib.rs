//! Canary rollouts judged on Prometheus: state machine, analysis, traffic.
//!
//! Model (as in Flagger): the operator keeps `<target>-primary`, which serves the stable template, and
//! `<target>-canary`, which runs the target's current template; the target Deployment itself is scaled to zero and
//! only carries the template (and keeps any HPA on it inert, see [`objects`]). One step is
//! [`observe`] (cluster, and Prometheus when an analysis is due) -> [`decide`] (pure, clock passed in: the
//! [`machine`] step and the [`objects`] to write) -> [`apply`] (server-side apply of what differs); the caller
//! writes the [`Step`]'s status and condition and emits its events. The Prometheus client is `perf_prometheus`.

pub mod access_args;
pub mod analysis;
pub mod analyze;
pub mod cadence;
pub mod cli;
pub mod command;
pub mod gather;
pub mod history;
pub mod hooks;
pub mod machine;
pub mod objects;
pub mod reconcile;
pub mod scope;
pub mod selectors;
pub mod split;
pub mod template_source;
pub mod templates;
pub mod view;

pub use analysis::{
    Analysis, Answer, Asking, MetricsSource, Prometheus, QueryContext, QueryError, QueryFuture, Trouble,
};
pub use cli::{CanaryCommand, Schedule, plan_schedule, run};
pub use machine::{CanaryCondition, CanaryEvent, EventKind, Health};
pub use reconcile::{Observation, Sources, Step, TargetHpa, apply, decide, finalize, observe};

/// Errors of the canary component.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("profile has no canary section")]
    NotConfigured,
    #[error("{field}: {message}")]
    InvalidSpec { field: String, message: String },
    #[error("target Deployment {namespace}/{name} not found")]
    TargetNotFound { namespace: String, name: String },
    #[error("{action}")]
    Kube {
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("HTTPRoute {route}: {message}")]
    Route { route: String, message: String },
    /// Transparent: the client's own error already says what failed and keeps the cause as its source.
    #[error(transparent)]
    Prometheus(#[from] perf_prometheus::Error),
    #[error("cannot read {path}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a PerformanceProfile: {message}")]
    ParseProfile { path: String, message: String },
    #[error("cannot encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write output")]
    Output(#[source] std::io::Error),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Fixed label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::NotConfigured | Error::InvalidSpec { .. } => "spec",
            Error::TargetNotFound { .. } => "target",
            Error::Kube { .. } => "kube",
            Error::Route { .. } => "route",
            Error::Prometheus(e) => e.category(),
            Error::ReadFile { .. } | Error::ParseProfile { .. } => "input",
            Error::Encode { .. } | Error::Output(_) => "internal",
        }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source: Box::new(source) }
    }
}
