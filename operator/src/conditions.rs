//! Conditions and phase, computed by pure functions; the status write is skipped when nothing changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use perf_operator_api::condition;
use perf_operator_api::{PerformanceProfileSpec, PerformanceProfileStatus};
use serde_json::{Value, json};

/// A condition before timestamps: what a component reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: String,
    pub message: String,
    /// Work is still under way (rolling out, materialising, waiting for pods).
    pub progressing: bool,
    /// Ready, with something people must know (a declared limit above the live one): a Warning event.
    pub warning: bool,
    /// Information beside the components (a policy candidate's verdict): never makes `Ready` false, never a
    /// Warning event.
    pub advisory: bool,
}

impl Report {
    fn new(type_: &'static str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        let (progressing, warning, advisory) = (false, false, false);
        Self { type_, ok, reason: reason.into(), message: message.into(), progressing, warning, advisory }
    }
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, true, reason, message)
    }
    pub fn failed(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, false, reason, message)
    }
    pub fn progressing(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { progressing: true, ..Self::new(type_, false, reason, message) }
    }
    /// Ready, with a warning: the condition stays True and its transitions are Warning events.
    pub fn warning(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { warning: true, ..Self::new(type_, true, reason, message) }
    }
    /// An advisory condition (see [`Report::advisory`]): true or false, it leaves `Ready` as the components say.
    pub fn advisory(type_: &'static str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Self { advisory: true, ..Self::new(type_, ok, reason, message) }
    }
    /// The condition a component reports when its section is absent.
    pub fn not_configured(type_: &'static str) -> Self {
        Self::ok(type_, "NotConfigured", "section not set in the profile")
    }
}

/// Builds `Ready`, `Progressing`, `Degraded` and the component conditions. A condition whose status did not change
/// keeps its `lastTransitionTime`, so an unchanged profile yields an identical status.
pub fn conditions(previous: &[Condition], reports: &[Report], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let degraded: Vec<&Report> = reports.iter().filter(|r| !r.ok && !r.progressing && !r.advisory).collect();
    let progressing: Vec<&Report> = reports.iter().filter(|r| r.progressing).collect();
    let summary =
        |rs: &[&Report]| rs.iter().map(|r| format!("{}: {}", r.type_, r.message)).collect::<Vec<_>>().join("; ");
    let ready = if !degraded.is_empty() {
        Report::failed(condition::READY, "ComponentsDegraded", summary(&degraded))
    } else if !progressing.is_empty() {
        Report::progressing(condition::READY, "Progressing", summary(&progressing))
    } else {
        Report::ok(condition::READY, "AllComponentsReady", "all components are ready")
    };
    let prog = if progressing.is_empty() {
        Report::failed(condition::PROGRESSING, "Idle", "no work in progress")
    } else {
        Report::ok(condition::PROGRESSING, "Working", summary(&progressing))
    };
    let degr = if degraded.is_empty() {
        Report::failed(condition::DEGRADED, "Healthy", "no component failed")
    } else {
        Report::ok(condition::DEGRADED, &degraded[0].reason, summary(&degraded))
    };
    let conditions: Vec<Condition> =
        [ready, prog, degr].iter().chain(reports).map(|r| to_condition(previous, r, generation, now)).collect();
    crate::reasons::debug_check(&conditions);
    conditions
}

fn to_condition(previous: &[Condition], r: &Report, generation: Option<i64>, now: &Time) -> Condition {
    let status = if r.ok { "True" } else { "False" }.to_string();
    let since = previous
        .iter()
        .find(|c| c.type_ == r.type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: r.type_.to_string(),
        status,
        reason: r.reason.clone(),
        message: r.message.chars().take(1024).collect(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// Why a round applies nothing.
#[derive(Clone, Copy, Debug)]
pub enum Hold<'a> {
    /// The spec is refused; the message names the fields.
    Invalid(&'a str),
    /// Another profile holds the target; the message names it.
    TargetHeld(&'a str),
    /// `spec.suspend` is true.
    Suspended,
}

/// The message of a suspended profile's conditions.
pub const SUSPENDED_MESSAGE: &str =
    "spec.suspend is true: nothing is applied and a canary run is frozen where it is; set it to false to resume";

/// Conditions of a round that applies nothing. A refused spec or a held target: not ready, degraded, the message
/// saying why. Suspended: the conditions stay as the last round left them (what was applied is still there), with
/// `Suspended` true and `Progressing` false.
pub fn held(previous: &[Condition], hold: Hold<'_>, generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let (reason, message, progressing) = match hold {
        Hold::Invalid(message) => ("InvalidSpec", message, "nothing is applied until the spec is fixed"),
        Hold::TargetHeld(message) => (
            crate::controller::claims::TARGET_HELD,
            message,
            "nothing is applied while another profile holds the target",
        ),
        Hold::Suspended => return suspended(previous, generation, now),
    };
    let reports = [
        Report::failed(condition::READY, reason, message),
        Report::failed(condition::PROGRESSING, reason, progressing),
        Report::ok(condition::DEGRADED, reason, message),
    ];
    let conditions: Vec<Condition> = reports.iter().map(|r| to_condition(previous, r, generation, now)).collect();
    crate::reasons::debug_check(&conditions);
    conditions
}

fn suspended(previous: &[Condition], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let replaced = [condition::PROGRESSING, condition::SUSPENDED];
    let mut conditions: Vec<Condition> =
        previous.iter().filter(|c| !replaced.contains(&c.type_.as_str())).cloned().collect();
    let reports = [
        Report::failed(condition::PROGRESSING, "Suspended", SUSPENDED_MESSAGE),
        Report::ok(condition::SUSPENDED, "Suspended", SUSPENDED_MESSAGE),
    ];
    let first = !conditions.iter().any(|c| c.type_ == condition::READY);
    let mut written: Vec<Condition> = reports.iter().map(|r| to_condition(previous, r, generation, now)).collect();
    if first {
        // Suspended before its first round: nothing was ever applied, so nothing is ready or failed.
        let mut ready =
            to_condition(previous, &Report::failed(condition::READY, "Suspended", SUSPENDED_MESSAGE), generation, now);
        ready.status = "Unknown".into();
        written.insert(0, ready);
    }
    // The kept conditions were checked when written (or come from another version).
    crate::reasons::debug_check(&written);
    if first {
        conditions.insert(0, written.remove(0));
    }
    conditions.extend(written);
    conditions
}

/// The status a reconcile of a valid spec starts from. Status is written with server-side apply, so every field
/// the operator wrote before and leaves out now is removed from the object: records that a reconcile cannot always
/// rebuild (ClickHouse objects the operator created, the canary run, the published TTLs and policy decisions, the
/// published contract) are carried for every section the spec still has, and each component overwrites them only
/// from what it did this round. Conditions and phase are recomputed. A section removed from the spec drops its
/// sub-status.
pub fn carried(
    previous: Option<&PerformanceProfileStatus>,
    spec: &PerformanceProfileSpec,
    generation: Option<i64>,
) -> PerformanceProfileStatus {
    let target = Some(spec.target_ref.name.clone());
    let Some(p) = previous else {
        return PerformanceProfileStatus { observed_generation: generation, target, ..Default::default() };
    };
    let has_policy = spec.cache.as_ref().is_some_and(|c| c.policy.is_some())
        || spec.rate_limit.as_ref().is_some_and(|r| r.policy.is_some());
    // No `..`: a new status field must be placed here by whoever adds it.
    PerformanceProfileStatus {
        observed_generation: generation,
        conditions: Vec::new(),
        phase: None,
        target,
        app_config: p.app_config.clone(),
        cache: p.cache.clone().filter(|_| spec.cache.is_some()),
        pools: p.pools.clone().filter(|_| spec.pools.is_some()),
        clickhouse: p.clickhouse.clone().filter(|_| spec.clickhouse.is_some()),
        canary: p.canary.clone().filter(|_| spec.canary.is_some()),
        policies: p.policies.clone().filter(|_| has_policy),
        // Kept while an object applied for it remains, so the round that drops the section can delete it.
        rate_limit: p.rate_limit.clone().filter(|r| spec.rate_limit.is_some() || r.object.is_some()),
    }
}

/// The status of a round that applies nothing (a refused spec, a held target, a suspended profile): every
/// component's records stay exactly as they were (whatever the spec says now) and the next round that acts resumes
/// where it was. Only conditions, phase and observedGeneration change.
pub fn for_held(previous: Option<&PerformanceProfileStatus>, generation: Option<i64>) -> PerformanceProfileStatus {
    let previous = previous.cloned().unwrap_or_default();
    PerformanceProfileStatus { observed_generation: generation, conditions: Vec::new(), phase: None, ..previous }
}

/// The status of a stored profile that does not deserialize, from its raw status: every other field is sent back
/// as it was (it may be the status that no longer reads; it is not ours to drop), only conditions, phase and
/// observedGeneration change.
pub fn for_unreadable(previous: Option<&Value>, message: &str, generation: Option<i64>, now: &Time) -> Value {
    let mut fields = previous.and_then(Value::as_object).cloned().unwrap_or_default();
    let prev_conditions: Vec<Condition> =
        fields.get("conditions").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
    let conditions = held(&prev_conditions, Hold::Invalid(message), generation, now);
    fields.insert("phase".into(), json!(phase(&conditions)));
    fields.insert("conditions".into(), json!(conditions));
    match generation {
        Some(g) => fields.insert("observedGeneration".into(), json!(g)),
        None => fields.remove("observedGeneration"),
    };
    Value::Object(fields)
}

/// `Suspended`, `Degraded`, `Progressing` or `Ready`, from the conditions.
pub fn phase(conditions: &[Condition]) -> String {
    let is_true = |t: &str| conditions.iter().any(|c| c.type_ == t && c.status == "True");
    if is_true(condition::SUSPENDED) {
        "Suspended"
    } else if is_true(condition::DEGRADED) {
        "Degraded"
    } else if is_true(condition::PROGRESSING) {
        "Progressing"
    } else {
        "Ready"
    }
    .into()
}

/// Conditions whose status changed between two statuses: (type, new status, reason, message), for events.
///
/// A condition seen for the first time is an event only when it is `Ready` or a warning: a new profile would
/// otherwise write one event per condition (eight, most of them "not configured"), which on a cluster of
/// thousands of profiles is most of the operator's API writes (measured by `tests/e2e/benches/converge.rs`).
pub fn transitions(
    old: Option<&PerformanceProfileStatus>,
    new: &PerformanceProfileStatus,
    warnings: &Warnings<'_>,
) -> Vec<Condition> {
    new.conditions
        .iter()
        .filter(|c| match old.and_then(|o| o.conditions.iter().find(|p| p.type_ == c.type_)) {
            Some(before) => before.status != c.status || before.reason != c.reason,
            None => c.type_ == condition::READY || warnings.is_warning(c),
        })
        .cloned()
        .collect()
}

/// What the conditions were built from, to tell warnings apart without reading reasons.
pub enum Warnings<'a> {
    /// Component reports: a warning is a component that failed (not one with work in progress).
    Reports(&'a [Report]),
    /// A refused spec or a held target: every condition that is not fine is a warning.
    Refused,
    /// Suspended by the user: nothing to warn about.
    Suspended,
}

impl Warnings<'_> {
    /// The warnings of a round held by `hold`.
    pub fn of(hold: Hold<'_>) -> Self {
        match hold {
            Hold::Invalid(_) | Hold::TargetHeld(_) => Warnings::Refused,
            Hold::Suspended => Warnings::Suspended,
        }
    }
}

impl Warnings<'_> {
    /// Whether a transition is worth a Warning event: degraded, not ready because something failed, or a
    /// component that failed or is ready with a warning.
    pub fn is_warning(&self, c: &Condition) -> bool {
        let failed = |r: &Report| !r.ok && !r.progressing && !r.advisory;
        let warns = |r: &Report| failed(r) || r.warning;
        match (c.type_.as_str(), self) {
            (condition::DEGRADED, _) => c.status == "True",
            (condition::PROGRESSING, _) => false,
            (_, Warnings::Suspended) => false,
            (_, Warnings::Refused) => c.status == "False",
            (condition::READY, Warnings::Reports(reports)) => c.status == "False" && reports.iter().any(failed),
            (_, Warnings::Reports(reports)) => reports.iter().any(|r| r.type_ == c.type_ && warns(r)),
        }
    }
}

#[cfg(test)]
#[path = "conditions_held_tests.rs"]
mod held_tests;

/// The server-side apply model shared with the reconcile tests.
#[cfg(test)]
#[path = "../tests/ssa.rs"]
mod ssa;

#[cfg(test)]
mod tests {
    use super::*;
    use ssa::status_after;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn ready_when_all_components_are_ok() {
        let reports = vec![
            Report::ok(condition::CACHE_READY, "RedisAvailable", "redis up"),
            Report::not_configured(condition::CANARY_READY),
        ];
        let cs = conditions(&[], &reports, Some(3), &t("2026-01-01T00:00:00Z"));
        assert_eq!(cs[0].type_, "Ready");
        assert_eq!(cs[0].status, "True");
        assert_eq!(phase(&cs), "Ready");
        assert!(cs.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn one_failed_component_degrades_and_names_itself() {
        let reports = vec![
            Report::failed(condition::CLICKHOUSE_READY, "Unreachable", "connection refused"),
            Report::ok(condition::POOLS_READY, "Published", ""),
        ];
        let cs = conditions(&[], &reports, None, &t("2026-01-01T00:00:00Z"));
        let ready = cs.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert!(ready.message.contains("ClickHouseReady: connection refused"));
        assert_eq!(phase(&cs), "Degraded");
        assert_eq!(cs.iter().find(|c| c.type_ == "PoolsReady").unwrap().status, "True");
    }

    #[test]
    fn unchanged_condition_keeps_its_transition_time() {
        let reports = vec![Report::ok(condition::POOLS_READY, "Published", "")];
        let first = conditions(&[], &reports, None, &t("2026-01-01T00:00:00Z"));
        let second = conditions(&first, &reports, None, &t("2026-01-02T00:00:00Z"));
        assert_eq!(first, second);
    }

    /// A status holding a record of every kind: ClickHouse objects to prune, a canary run at stage 2/4, the TTLs
    /// and rate limits a policy decided, the published contract and pools.
    fn full_status() -> PerformanceProfileStatus {
        serde_json::from_value(json!({
            "observedGeneration": 3,
            "phase": "Progressing",
            "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3}],
            "appConfig": {"name": "risk-api-perf", "checksum": "abc"},
            "cache": {"address": "risk-api-redis.risk.svc:6379", "ttlSeconds": {"riskModel": 1800}},
            "pools": {"appReplicas": 4, "sizes": {"postgres": {"min": 5, "max": 20, "reason": "Fixed"}}},
            "clickhouse": {
                "tables": [{"name": "events", "state": "InSync", "applied": 1, "pending": 0}],
                "managed": [{"table": "events", "kind": "Index", "name": "i_model", "definition": "model",
                             "live": "model", "materialized": true}]
            },
            "canary": {"phase": "Progressing", "runId": "r2", "stableId": "r1", "stage": "2/4", "stageIndex": 1,
                       "weight": 25, "failedChecks": 1, "startedAt": "2026-01-01T00:00:00Z"},
            "policies": {"rateLimit": {"policy": "builtin:adaptive-rate-limit", "published": "Policy",
                                      "routes": {"/api": {"requestsPerSecond": 42, "burst": 84}}}}
        }))
        .unwrap()
    }

    fn spec_with_every_section() -> PerformanceProfileSpec {
        serde_json::from_value(json!({
            "targetRef": {"name": "risk-api"},
            "cache": {"redis": {"provision": {}}, "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}]},
            "pools": {"postgres": {"min": 5, "max": 20}},
            "clickhouse": {"endpoint": "http://127.0.0.1:9", "prune": true, "tables": []},
            "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 10, "burst": 20}],
                          "policy": {"builtin": "adaptive-rate-limit"}},
            "canary": {"stages": [10, 25, 50, 100]}
        }))
        .unwrap()
    }

    #[test]
    fn ssa_removes_what_the_manager_sent_before_and_leaves_out_now() {
        let live = json!({"a": 1, "b": {"x": 1, "y": 2}, "theirs": 1,
                          "conditions": [{"type": "Ready"}, {"type": "Other"}, {"type": "Theirs"}]});
        let owned = json!({"a": 1, "b": {"x": 1, "y": 2}, "conditions": [{"type": "Ready"}, {"type": "Other"}]});
        let applied = json!({"b": {"x": 3}, "conditions": [{"type": "Ready", "status": "True"}]});
        let after = ssa::apply(&live, Some(&owned), &applied);
        assert_eq!(
            after,
            json!({"b": {"x": 3}, "theirs": 1, "conditions": [{"type": "Ready", "status": "True"}, {"type": "Theirs"}]})
        );
    }

    #[test]
    fn a_status_built_from_scratch_loses_the_records_under_ssa() {
        // The defect this module guards against: a merge patch would keep them, a real API server does not.
        let previous = full_status();
        let scratch = PerformanceProfileStatus { observed_generation: Some(4), ..Default::default() };
        let after = status_after(&previous, &scratch);
        assert!(after.clickhouse.is_none() && after.canary.is_none() && after.policies.is_none());
    }

    #[test]
    fn an_invalid_spec_keeps_every_record_and_changes_only_conditions_phase_and_generation() {
        let previous = full_status();
        let mut applied = for_held(Some(&previous), Some(4));
        applied.conditions =
            held(&previous.conditions, Hold::Invalid("spec.canary.stages: bad"), Some(4), &t("2026-01-02T00:00:00Z"));
        applied.phase = Some(phase(&applied.conditions));
        let after = status_after(&previous, &applied);
        let unchanged = PerformanceProfileStatus {
            observed_generation: previous.observed_generation,
            conditions: previous.conditions.clone(),
            phase: previous.phase.clone(),
            ..after.clone()
        };
        assert_eq!(unchanged, previous, "every component record survives");
        assert_eq!((after.observed_generation, after.phase.as_deref()), (Some(4), Some("Degraded")));
        assert_eq!(
            for_held(None, Some(1)),
            PerformanceProfileStatus { observed_generation: Some(1), ..Default::default() }
        );
    }

    #[test]
    fn a_reconcile_starts_from_the_records_of_the_sections_the_spec_still_has() {
        let previous = full_status();
        let kept = status_after(&previous, &carried(Some(&previous), &spec_with_every_section(), Some(4)));
        assert_eq!(kept.clickhouse, previous.clickhouse, "records survive a round that cannot rebuild them");
        assert_eq!(kept.canary, previous.canary);
        assert_eq!(kept.policies, previous.policies, "the last good rate limits");
        assert_eq!(
            (kept.cache, kept.pools, kept.app_config),
            (previous.cache.clone(), previous.pools.clone(), previous.app_config.clone())
        );
        assert_eq!(kept.observed_generation, Some(4));

        let mut without = spec_with_every_section();
        (without.clickhouse, without.canary, without.rate_limit) = (None, None, None);
        let dropped = carried(Some(&previous), &without, Some(5));
        assert!(dropped.clickhouse.is_none() && dropped.canary.is_none() && dropped.policies.is_none());
        assert!(dropped.cache.is_some(), "sections still there keep theirs");
    }

    #[test]
    fn an_unreadable_profile_keeps_its_raw_status() {
        // A canary phase this version does not know: the status does not deserialize, and is still not ours to drop.
        let mut raw = serde_json::to_value(full_status()).unwrap();
        raw["canary"]["phase"] = json!("FromTheFuture");
        raw["somethingNew"] = json!({"kept": true});
        let now = t("2026-01-02T00:00:00Z");
        let applied = for_unreadable(Some(&raw), "unknown variant", Some(7), &now);
        let after = ssa::apply(&raw, Some(&raw), &applied);
        for key in ["clickhouse", "canary", "policies", "cache", "pools", "appConfig", "somethingNew"] {
            assert_eq!(after[key], raw[key], "{key}");
        }
        assert_eq!((after["observedGeneration"].clone(), after["phase"].clone()), (json!(7), json!("Degraded")));
        let degraded: Vec<Condition> = serde_json::from_value(after["conditions"].clone()).unwrap();
        assert_eq!(degraded.iter().find(|c| c.type_ == "Degraded").unwrap().reason, "InvalidSpec");
        let again = for_unreadable(Some(&after), "unknown variant", Some(7), &t("2026-01-03T00:00:00Z"));
        assert_eq!(again, after, "an unchanged object is not written again");
    }

    pub(super) fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: t("2026-01-01T00:00:00Z"),
            observed_generation: None,
        }
    }

    #[test]
    fn a_new_profile_is_one_event_unless_something_is_wrong() {
        let new = PerformanceProfileStatus {
            conditions: vec![
                cond(condition::READY, "True", "AllComponentsReady"),
                cond(condition::PROGRESSING, "False", "Idle"),
                cond(condition::DEGRADED, "False", "Healthy"),
                cond(condition::CLICKHOUSE_READY, "True", "NotConfigured"),
                cond(condition::CACHE_READY, "False", "ApplyFailed"),
            ],
            ..Default::default()
        };
        let reports = [
            Report::not_configured(condition::CLICKHOUSE_READY),
            Report::failed(condition::CACHE_READY, "ApplyFailed", "refused"),
        ];
        let warnings = Warnings::Reports(&reports);
        let types: Vec<String> = transitions(None, &new, &warnings).into_iter().map(|c| c.type_).collect();
        assert_eq!(types, vec![condition::READY.to_string(), condition::CACHE_READY.to_string()]);
        // Work in progress is no warning, whatever its reason says.
        let waiting = [Report::progressing(condition::CACHE_READY, "ApplyFailed", "starting")];
        assert!(!Warnings::Reports(&waiting).is_warning(&new.conditions[4]));
        assert!(!Warnings::Reports(&waiting).is_warning(&cond(condition::READY, "False", "ComponentsDegraded")));
        assert!(Warnings::Refused.is_warning(&cond(condition::READY, "False", "InvalidSpec")));
        // Ready with a warning (a declared limit above the live one): a Warning event, Ready untouched.
        let declared_above = [Report::warning(condition::POOLS_READY, "DeclaredAboveLive", "200 > 34")];
        let pools = cond(condition::POOLS_READY, "True", "DeclaredAboveLive");
        assert!(Warnings::Reports(&declared_above).is_warning(&pools));
        assert!(!Warnings::Reports(&declared_above).is_warning(&cond(condition::READY, "True", "AllComponentsReady")));
        assert_eq!(conditions(&[], &declared_above, None, &t("2026-01-01T00:00:00Z"))[0].status, "True");
        // Once known, every change of status or reason is an event, and nothing else is.
        let mut later = new.clone();
        later.conditions[3] = cond(condition::CLICKHOUSE_READY, "False", "Unreachable");
        let types: Vec<String> = transitions(Some(&new), &later, &warnings).into_iter().map(|c| c.type_).collect();
        assert_eq!(types, vec![condition::CLICKHOUSE_READY.to_string()]);
        assert!(transitions(Some(&later), &later, &warnings).is_empty());
    }
}
