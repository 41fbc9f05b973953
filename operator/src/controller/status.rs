//! Conditions and phase, computed by pure functions; the status write is skipped when nothing changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use perf_operator_api::PerformanceProfileStatus;
use perf_operator_api::condition;

/// A condition before timestamps: what a component reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: String,
    pub message: String,
    /// Work is still under way (rolling out, materialising, waiting for pods).
    pub progressing: bool,
}

impl Report {
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, ok: true, reason: reason.into(), message: message.into(), progressing: false }
    }
    pub fn failed(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, ok: false, reason: reason.into(), message: message.into(), progressing: false }
    }
    pub fn progressing(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, ok: false, reason: reason.into(), message: message.into(), progressing: true }
    }
    /// The condition a component reports when its section is absent.
    pub fn not_configured(type_: &'static str) -> Self {
        Self::ok(type_, "NotConfigured", "section not set in the profile")
    }
}

/// Builds `Ready`, `Progressing`, `Degraded` and the component conditions. A condition whose status did not change
/// keeps its `lastTransitionTime`, so an unchanged profile yields an identical status.
pub fn conditions(previous: &[Condition], reports: &[Report], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let degraded: Vec<&Report> = reports.iter().filter(|r| !r.ok && !r.progressing).collect();
    let progressing: Vec<&Report> = reports.iter().filter(|r| r.progressing).collect();
    let summary =
        |rs: &[&Report]| rs.iter().map(|r| format!("{}: {}", r.type_, r.message)).collect::<Vec<_>>().join("; ");
    let ready = if !degraded.is_empty() {
        Report::failed(condition::READY, "ComponentsDegraded", summary(&degraded))
    } else if !progressing.is_empty() {
        Report::failed(condition::READY, "Progressing", summary(&progressing))
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
    [ready, prog, degr].iter().chain(reports).map(|r| to_condition(previous, r, generation, now)).collect()
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

/// Conditions of a spec the operator refuses: not ready, degraded, with the offending fields in the message.
pub fn invalid(previous: &[Condition], message: &str, generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let reports = [
        Report::failed(condition::READY, "InvalidSpec", message),
        Report::failed(condition::PROGRESSING, "InvalidSpec", "nothing is applied until the spec is fixed"),
        Report::ok(condition::DEGRADED, "InvalidSpec", message),
    ];
    reports.iter().map(|r| to_condition(previous, r, generation, now)).collect()
}

/// `Ready`, `Progressing` or `Degraded`, from the conditions.
pub fn phase(conditions: &[Condition]) -> String {
    let is_true = |t: &str| conditions.iter().any(|c| c.type_ == t && c.status == "True");
    if is_true(condition::DEGRADED) {
        "Degraded"
    } else if is_true(condition::PROGRESSING) {
        "Progressing"
    } else {
        "Ready"
    }
    .into()
}

/// Conditions whose status changed between two statuses: (type, new status, reason, message), for events.
pub fn transitions(old: Option<&PerformanceProfileStatus>, new: &PerformanceProfileStatus) -> Vec<Condition> {
    new.conditions
        .iter()
        .filter(|c| {
            let before = old.and_then(|o| o.conditions.iter().find(|p| p.type_ == c.type_));
            before.is_none_or(|p| p.status != c.status || p.reason != c.reason)
        })
        .cloned()
        .collect()
}

/// Whether a transition is worth a Warning event: degraded, or a component/readiness condition turning False for
/// a reason other than work in progress.
pub fn is_warning(c: &Condition) -> bool {
    match c.type_.as_str() {
        condition::DEGRADED => c.status == "True",
        condition::PROGRESSING => false,
        _ => c.status == "False" && c.reason != "Progressing" && !c.reason.starts_with("Waiting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn ready_when_all_components_are_ok() {
        let reports = vec![
            Report::ok(condition::CACHE_READY, "Provisioned", "redis up"),
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
}
