//! What one reconcile observed, as data: every source's answer or why it has none. The controller's `observe`
//! fills it from live servers, `plan` from files or example values; [`super::decide`] reads nothing else.

use crate::postgres::{PostgresError, PostgresLimits};
use crate::redis_stats::{RedisError, RedisStats};
use perf_clickhouse::limits::ServerLimits as ClickHouseLimits;
use perf_clickhouse::{Credentials, LiveSchema};
use perf_policy_host::{Policy, RouteTraffic};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// One source's answer.
pub type Read<T> = Result<T, Unread>;

/// Why a source has no answer this round.
#[derive(Debug, Error)]
pub enum Unread {
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("{what}")]
    Kube {
        what: String,
        #[source]
        source: Arc<kube::Error>,
    },
    #[error("Secret {namespace}/{name} {problem}")]
    Secret { namespace: String, name: String, problem: SecretProblem },
    #[error("ConfigMap {namespace}/{name} {problem}")]
    ConfigMap { namespace: String, name: String, problem: SecretProblem },
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error("{0}")]
    Policy(#[from] PolicyUnavailable),
    #[error("Prometheus")]
    Prometheus(#[source] perf_prometheus::Error),
    #[error(transparent)]
    ClickHouse(perf_clickhouse::Error),
    #[error("canary")]
    Canary(#[source] perf_canary::Error),
    #[error("no randomness for the Redis password")]
    Randomness(#[source] getrandom::Error),
    #[error("not observed: {0}")]
    NotObserved(&'static str),
    /// A failure given in `plan`'s observations file, as a reconcile would have met it.
    #[error("{what} (as observed): {message}")]
    Given { what: &'static str, message: String },
}

/// What is wrong with a referenced Secret (or ConfigMap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretProblem {
    NotFound,
    MissingKey(String),
    NotUtf8(String),
}

impl std::fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretProblem::NotFound => write!(f, "not found"),
            SecretProblem::MissingKey(key) => write!(f, "has no key {key:?}"),
            SecretProblem::NotUtf8(key) => write!(f, "key {key:?} is not UTF-8"),
        }
    }
}

/// Why a policy component could not be had.
#[derive(Debug, Error)]
pub enum PolicyUnavailable {
    /// The component's digest is not the profile's pin (a ConfigMap edited in place, or a wrong pin).
    #[error("{message}")]
    PinMismatch { message: String },
    #[error("{message}")]
    Source { message: String },
    #[error("{0} ({cat})", cat = .0.category())]
    Host(#[source] perf_policy_host::Error),
    /// Refused at an earlier load, as the profile's status records (`status.policies.*.refused`): not compiled
    /// again.
    #[error(
        "{} ({category}) (refused at {}, remembered in status until the pin changes)",
        .refused.message,
        .refused.at.0
    )]
    Refused { refused: perf_operator_api::RefusedComponent, category: &'static str },
}

impl Unread {
    /// Fixed snake_case label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Unread::Timeout { .. } => "timeout",
            Unread::Kube { .. } => "kube",
            Unread::Secret { .. } => "secret",
            Unread::ConfigMap { .. } => "config_map",
            Unread::Redis(_) => "redis",
            Unread::Postgres(e) => e.category(),
            Unread::Policy(PolicyUnavailable::PinMismatch { .. }) => "digest_mismatch",
            Unread::Policy(PolicyUnavailable::Source { .. }) => "source",
            Unread::Policy(PolicyUnavailable::Host(e)) => e.category(),
            Unread::Policy(PolicyUnavailable::Refused { category, .. }) => category,
            Unread::Prometheus(_) => "prometheus",
            Unread::ClickHouse(e) => e.category(),
            Unread::Canary(e) => e.category(),
            Unread::Randomness(_) => "randomness",
            Unread::NotObserved(_) => "not_observed",
            Unread::Given { .. } => "given",
        }
    }

    /// The message with every source, for conditions.
    pub fn chain(&self) -> String {
        crate::error::chain(self)
    }
}

/// A provisioned Redis as seen in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvisionedRedis {
    /// Password in its Secret; None before the Secret exists.
    pub password: Option<String>,
    /// The rest of its credentials in the Secret: the previous password during a rotation's grace, the rotation
    /// answered and when (see `components::redis_auth`).
    pub previous: Option<String>,
    pub rotation: Option<String>,
    pub rotated_at: Option<String>,
    /// The exporter user's password.
    pub exporter: Option<String>,
    /// Whether its workload (the Deployment, or the StatefulSet of a persistent Redis) has an available replica.
    pub available: bool,
    /// The Redis workloads that exist, of either kind (one is left behind when persistence is turned on or off).
    pub live: Vec<crate::components::Retired>,
}

/// ClickHouse as read this round.
pub struct ClickHouseObserved {
    pub credentials: Option<Credentials>,
    pub live: LiveSchema,
}

/// Everything a decision needs. A field is `None` when the profile does not use that source.
#[derive(Default)]
pub struct Observed {
    /// Pods serving the app: the primary's with a canary (the target is scaled to zero), else the target's; None
    /// when neither exists.
    pub serving: Option<Read<Option<u32>>>,
    /// `maxReplicas` of an HPA aimed at the target; None inside when there is none.
    pub autoscaling: Option<Read<Option<u32>>>,
    /// Provisioned Redis: its Secret's password and whether it is available.
    pub provisioned_redis: Option<Read<ProvisionedRedis>>,
    /// A password for a provisioned Redis whose Secret does not exist yet (drawn in observe, so decide is pure).
    pub new_password: Option<Read<String>>,
    /// A password for the exporter of a provisioned Redis whose Secret holds none yet: drawn apart from the app's.
    pub new_exporter_password: Option<Read<String>>,
    /// `INFO` of the profile's Redis (provisioned or external).
    pub redis: Option<Read<RedisStats>>,
    pub cache_policy: Option<Read<Arc<Policy>>>,
    pub rate_limit_policy: Option<Read<Arc<Policy>>>,
    /// The candidates beside them (`candidate`), loaded as their own tenant: never an instance of the active
    /// policy's.
    pub cache_candidate: Option<Read<Arc<Policy>>>,
    pub rate_limit_candidate: Option<Read<Arc<Policy>>>,
    /// Traffic per route; a route without complete data is absent.
    pub traffic: Option<Read<BTreeMap<String, RouteTraffic>>>,
    pub clickhouse: Option<Read<ClickHouseObserved>>,
    pub canary: Option<Read<perf_canary::Observation>>,
    /// Limits of the PostgreSQL that `pools.postgres.server` names.
    pub postgres_limits: Option<Read<PostgresLimits>>,
    /// Limits of the profile's ClickHouse, read when it has a ClickHouse pool.
    pub clickhouse_limits: Option<Read<ClickHouseLimits>>,
    /// How long a policy's decision holds before the policy is evaluated again (the operator's evaluation
    /// interval); None: at every round, as `plan` does.
    pub policy_every: Option<std::time::Duration>,
}
