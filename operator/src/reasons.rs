//! Every condition reason the operator writes, with what it means: the one list `docs/reference.md` is generated
//! from (`perf-operator reference`). Debug builds check each condition written against it, so a reason added in
//! the code without a line here fails the tests that reach it.

use perf_operator_api::condition::{
    ALERTS_READY, CACHE_READY, CANARY_READY, CLICKHOUSE_READY, DEGRADED, POLICIES_READY, POLICY_CANDIDATE_AGREES,
    POOLS_READY, PROGRESSING, RATE_LIMIT_READY, READY, SUSPENDED,
};

/// The status a reason comes with, and how the summary reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    True,
    /// True, with a Warning event: something people must know.
    Warning,
    False,
    /// False, counted as work in progress (`Ready` reason `Progressing`, not `ComponentsDegraded`).
    InProgress,
    Unknown,
}

impl Kind {
    /// The condition's `status`.
    pub fn status(self) -> &'static str {
        match self {
            Kind::True | Kind::Warning => "True",
            Kind::False | Kind::InProgress => "False",
            Kind::Unknown => "Unknown",
        }
    }

    /// How the reference table shows it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::True => "True",
            Kind::Warning => "True (warning)",
            Kind::False => "False",
            Kind::InProgress => "False (in progress)",
            Kind::Unknown => "Unknown",
        }
    }
}

/// One reason of one condition.
#[derive(Clone, Copy, Debug)]
pub struct Reason {
    pub condition: &'static str,
    pub kind: Kind,
    pub reason: &'static str,
    pub meaning: &'static str,
}

const fn r(condition: &'static str, kind: Kind, reason: &'static str, meaning: &'static str) -> Reason {
    Reason { condition, kind, reason, meaning }
}

use Kind::{False, InProgress, True, Unknown, Warning};

/// `Degraded` is True with the reason of the first failed component: this stands for all of them.
pub const COMPONENT_REASON: &str = "<the first failed component's reason>";

/// In the order the reference lists them: summary conditions, then components in status order.
pub const REASONS: &[Reason] = &[
    r(READY, True, "AllComponentsReady", "every component is ready"),
    r(READY, InProgress, "Progressing", "no component failed and some are still working; the message lists them"),
    r(READY, False, "ComponentsDegraded", "a component failed; the message lists each as `<Condition>: <message>`"),
    r(
        READY,
        False,
        "InvalidSpec",
        "the spec breaks the CRD's rules or the operator's checks (fields named); nothing is applied",
    ),
    r(READY, False, "TargetHeld", "another profile holds the target (named in the message); nothing is applied"),
    r(READY, Unknown, "Suspended", "suspended before its first round (a later suspension keeps `Ready` as it was)"),
    r(PROGRESSING, True, "Working", "a component is still working; the message lists them"),
    r(PROGRESSING, False, "Idle", "no work in progress"),
    r(PROGRESSING, False, "InvalidSpec", "nothing is applied until the spec is fixed"),
    r(PROGRESSING, False, "TargetHeld", "nothing is applied while another profile holds the target"),
    r(PROGRESSING, False, "Suspended", "`spec.suspend` is true: nothing is applied, a canary run is frozen"),
    r(DEGRADED, False, "Healthy", "no component failed"),
    r(DEGRADED, True, COMPONENT_REASON, "a component failed: its reason (e.g. `Unreachable`, `RolledBack`)"),
    r(DEGRADED, True, "InvalidSpec", "the spec breaks the CRD's rules or the operator's checks"),
    r(DEGRADED, True, "TargetHeld", "another profile holds the target"),
    r(
        SUSPENDED,
        True,
        "Suspended",
        "`spec.suspend` is true (the condition is absent otherwise); `status.phase` is `Suspended`",
    ),
    r(CACHE_READY, True, "NotConfigured", "no `cache` section"),
    r(CACHE_READY, True, "RedisAvailable", "the provisioned Redis has an available replica"),
    r(CACHE_READY, True, "ExternalReachable", "the external Redis answered `INFO`"),
    r(CACHE_READY, InProgress, "WaitingForRedis", "the provisioned Redis has no available replica yet"),
    r(CACHE_READY, False, "Unreachable", "Redis did not answer (connection, DNS, TLS or timeout)"),
    r(CACHE_READY, False, "WrongPassword", "Redis refused the password"),
    r(CACHE_READY, False, "EndpointRefused", "the address is outside what the administrator allows profiles to reach"),
    r(CACHE_READY, False, "AnswerTooLarge", "Redis's answer was over the operator's bound (1 MiB)"),
    r(CACHE_READY, False, "PasswordUnavailable", "the external Redis's Secret or key is missing"),
    r(CACHE_READY, False, "OverMemory", "the external Redis is full with `noeviction`: writes are refused"),
    r(CACHE_READY, False, "NotObserved", "Redis or its Secret was not read this round"),
    r(CACHE_READY, False, "ObserveFailed", "the provisioned Redis's Secret could not be read"),
    r(CACHE_READY, False, "NoRandomness", "no password could be drawn (the system's random source failed)"),
    r(CACHE_READY, False, "ApplyFailed", "the Redis objects could not be applied"),
    r(POOLS_READY, True, "NotConfigured", "no `pools` section"),
    r(POOLS_READY, True, "Published", "the pool sizes are in the app contract"),
    r(
        POOLS_READY,
        Warning,
        "DeclaredAboveLive",
        "a declared `serverMaxConnections` is above what the live server allows",
    ),
    r(POOLS_READY, False, "Undersized", "a server's share is below what the declared load needs"),
    r(POOLS_READY, False, "Unreachable", "a server did not answer"),
    r(POOLS_READY, False, "WrongPassword", "a server refused the credentials"),
    r(POOLS_READY, False, "ServerRefused", "a server refused the query that reads its limits"),
    r(POOLS_READY, False, "EndpointRefused", "a server's address is outside what the administrator allows"),
    r(POOLS_READY, False, "AnswerTooLarge", "a server's answer was over the operator's bound"),
    r(POOLS_READY, False, "CredentialsUnavailable", "a server's Secret or key is missing"),
    r(POOLS_READY, False, "BadCaCertificate", "PostgreSQL's CA certificate could not be read"),
    r(POOLS_READY, False, "ObserveFailed", "the serving pods could not be counted"),
    r(CLICKHOUSE_READY, True, "NotConfigured", "no `clickhouse` section"),
    r(CLICKHOUSE_READY, True, "InSync", "every declared object is on every table"),
    r(CLICKHOUSE_READY, InProgress, "Applying", "statements are being applied"),
    r(CLICKHOUSE_READY, InProgress, "Materializing", "a projection or index is being materialised on old parts"),
    r(CLICKHOUSE_READY, False, "Failed", "a table failed: refused DDL, a failed mutation or a missing table"),
    r(CLICKHOUSE_READY, False, "InvalidSpec", "the SQL check refused the section (fields named)"),
    r(CLICKHOUSE_READY, False, "Unreachable", "ClickHouse did not answer"),
    r(CLICKHOUSE_READY, False, "CredentialsUnavailable", "ClickHouse's Secret or key is missing"),
    r(CLICKHOUSE_READY, False, "NotObserved", "ClickHouse was not read this round"),
    r(CANARY_READY, True, "NotConfigured", "no `canary` section"),
    r(CANARY_READY, True, "Stable", "no run: the primary serves"),
    r(CANARY_READY, True, "Promoted", "the last run promoted"),
    r(CANARY_READY, InProgress, "Initializing", "the primary is being set up"),
    r(CANARY_READY, InProgress, "WaitingForConfirmation", "a `confirm-rollout` webhook holds the run's start"),
    r(CANARY_READY, InProgress, "Progressing", "a run is under way"),
    r(CANARY_READY, InProgress, "Promoting", "the primary takes the new template"),
    r(CANARY_READY, InProgress, "Paused", "a run is paused (`kubectl perf canary pause`)"),
    r(CANARY_READY, False, "RolledBack", "the last run was rolled back (the message names the failed checks)"),
    r(CANARY_READY, False, "DeadlineExceeded", "the last run missed `progressDeadline`"),
    r(CANARY_READY, False, "Error", "the canary's workloads could not be read or written"),
    r(POLICIES_READY, True, "NotConfigured", "no policy named"),
    r(POLICIES_READY, True, "Evaluated", "the policies' decisions are published"),
    r(POLICIES_READY, False, "BadSettings", "the policy refused its settings; the fallback is published"),
    r(
        POLICIES_READY,
        False,
        "PolicyFailed",
        "an evaluation failed (trap, timeout, memory, bad output); the fallback is published",
    ),
    r(POLICIES_READY, False, "PinMismatch", "the component's digest is not the pinned one"),
    r(POLICIES_READY, False, "Unavailable", "the component could not be fetched or loaded"),
    r(
        POLICY_CANDIDATE_AGREES,
        True,
        "Agrees",
        "present while a candidate is declared; advisory, it never makes `Ready` false: every class or route of \
         each candidate is within `maxDifferencePercent` of the active policy's decision",
    ),
    r(
        POLICY_CANDIDATE_AGREES,
        False,
        "DiffersBeyondBound",
        "a candidate's decision is beyond `maxDifferencePercent` on some class or route (named in the message)",
    ),
    r(
        POLICY_CANDIDATE_AGREES,
        False,
        "Failed",
        "a candidate gave no decision (not loaded, bad settings, trap, timeout); the active policy is unaffected",
    ),
    r(ALERTS_READY, True, "NotConfigured", "not used: `spec.slo` always has defaults"),
    r(ALERTS_READY, True, "Applied", "the PrometheusRule holds the SLO alerts"),
    r(ALERTS_READY, True, "Planned", "`plan` only: the rule that would be applied"),
    r(ALERTS_READY, True, "Disabled", "`spec.slo.alerts.enabled` is false (a rule left is deleted)"),
    r(ALERTS_READY, Warning, "PrometheusRuleCrdMissing", "the cluster does not serve PrometheusRule"),
    r(ALERTS_READY, Warning, "Forbidden", "the operator may not manage PrometheusRules here (RBAC)"),
    r(ALERTS_READY, False, "QueryRefused", "a template is not limited to the profile's namespace, or is not PromQL"),
    r(ALERTS_READY, False, "InvalidLabels", "an `alertLabels` or `ruleLabels` key or value is invalid"),
    r(
        ALERTS_READY,
        False,
        "LabelNotAllowed",
        "a label name the administrator does not allow (`controller.alertLabels`)",
    ),
    r(ALERTS_READY, False, "ApplyFailed", "the rule's write or LIST failed"),
    r(ALERTS_READY, False, "DeleteFailed", "the rule of a disabled profile could not be deleted"),
    r(RATE_LIMIT_READY, True, "NotConfigured", "no `rateLimit` section"),
    r(
        RATE_LIMIT_READY,
        True,
        "Published",
        "enforcement `contract`: the limits are in the app contract, the app enforces them",
    ),
    r(RATE_LIMIT_READY, True, "Planned", "`plan` only: what would be applied for the gateway"),
    r(
        RATE_LIMIT_READY,
        True,
        "Enforced",
        "Envoy Gateway accepted the BackendTrafficPolicy, or the rate-limit service's ConfigMap holds the limits",
    ),
    r(
        RATE_LIMIT_READY,
        InProgress,
        "WaitingForGateway",
        "the BackendTrafficPolicy is applied; Envoy Gateway has not accepted this version yet",
    ),
    r(
        RATE_LIMIT_READY,
        False,
        "NoGatewayVerdict",
        "Envoy Gateway has said nothing of the policy's version for 5 minutes (no such HTTPRoute, a route on no \
         Gateway it runs, Envoy Gateway down); looked at again at each resync",
    ),
    r(
        RATE_LIMIT_READY,
        False,
        "NotAccepted",
        "Envoy Gateway did not accept the policy (the Gateway, its reason and message named)",
    ),
    r(
        RATE_LIMIT_READY,
        False,
        "Refused",
        "the API server refused the rendered object (Envoy Gateway's schema or CEL rules); not sent again until it changes",
    ),
    r(
        RATE_LIMIT_READY,
        False,
        "NotExpressible",
        "the decided limits cannot be expressed by the gateway (field named); the object applied before stays",
    ),
    r(
        RATE_LIMIT_READY,
        False,
        "CrdMissing",
        "the cluster does not serve BackendTrafficPolicy (Envoy Gateway's CRDs are not installed)",
    ),
    r(
        RATE_LIMIT_READY,
        False,
        "ApplyFailed",
        "the object could not be applied or deleted (API error, RBAC, an object of that name the profile does not own)",
    ),
];

/// Whether `(condition, status, reason)` is in [`REASONS`]. `Degraded` True takes any component's False reason.
pub fn documented(condition: &str, status: &str, reason: &str) -> bool {
    let listed = |c: &str, s: &str, reason: &str| {
        REASONS.iter().any(|r| r.condition == c && r.kind.status() == s && r.reason == reason)
    };
    listed(condition, status, reason)
        || (condition == DEGRADED
            && status == "True"
            && REASONS.iter().any(|r| r.kind.status() == "False" && r.reason == reason && r.condition != DEGRADED))
}

/// Debug builds: every condition written is documented here (see the module's doc).
pub fn debug_check(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) {
    for c in conditions {
        debug_assert!(
            documented(&c.type_, &c.status, &c.reason),
            "condition {} {} reason {} is not in operator/src/reasons.rs (docs/reference.md is generated from it)",
            c.type_,
            c.status,
            c.reason
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_listed_once_per_condition_and_status() {
        for (i, a) in REASONS.iter().enumerate() {
            let twice = REASONS[i + 1..]
                .iter()
                .any(|b| (b.condition, b.kind.status(), b.reason) == (a.condition, a.kind.status(), a.reason));
            assert!(!twice, "{} {} {} listed twice", a.condition, a.kind.status(), a.reason);
            assert!(a.reason.chars().all(|c| c.is_ascii_alphanumeric()) || a.reason == COMPONENT_REASON, "{a:?}");
        }
    }

    #[test]
    fn degraded_takes_a_components_failure_reason_and_nothing_else() {
        assert!(documented(DEGRADED, "True", "RolledBack"));
        assert!(documented(DEGRADED, "True", "TargetHeld"));
        assert!(!documented(DEGRADED, "True", "Healthy"));
        assert!(!documented(DEGRADED, "True", "Made-up"));
        assert!(!documented(CACHE_READY, "True", "Unreachable"));
    }
}
