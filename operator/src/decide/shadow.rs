//! Shadow runs: a candidate policy evaluated on the input the active policy was given this round (with its own
//! settings), its decision compared per class or route with what the active policy published, and recorded in
//! status. Never published: the plans and the contract take the active policy's values only. Pure.

use super::policy::{CacheUse, PolicyUse, RateLimitUse, label, sanitize};
use super::{Read, Unread};
use crate::conditions::Report;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use perf_operator_api::{
    CacheCandidateStatus, CandidateEvaluation, CandidateVerdict, ComparedWith, PoliciesStatus, PolicyCandidate,
    PolicyRef, PublishedClass, PublishedLimit, RateLimitCandidateStatus, condition,
};
use perf_policy_host::positional::settings_text;
use perf_policy_host::{ClassDecision, Policy, RouteLimit};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Condition reasons of [`condition::POLICY_CANDIDATE_AGREES`].
pub const AGREES: &str = "Agrees";
pub const DIFFERS: &str = "DiffersBeyondBound";
pub const FAILED: &str = "Failed";

/// Difference counted for a class or route only one side decided, and for an admit decision that differs.
const WHOLLY: u64 = 100;

/// A policy use whose candidate can be compared: its status record and the difference of two decisions.
pub(super) trait Shadowed: PolicyUse {
    type Status: Clone;
    /// `input` with the candidate's settings in place of the active policy's.
    fn with_settings(input: &Self::Input, settings: String) -> Self::Input;
    /// Difference per class or route, in percent of the active value.
    fn differences(active: &Self::Published, candidate: &Self::Published) -> BTreeMap<String, u64>;
    fn status(evaluation: CandidateEvaluation, decided: Option<&Self::Published>) -> Self::Status;
    fn evaluation(status: &Self::Status) -> &CandidateEvaluation;
}

impl Shadowed for CacheUse {
    type Status = CacheCandidateStatus;
    fn with_settings(input: &Self::Input, settings: String) -> Self::Input {
        Self::Input { settings, ..input.clone() }
    }
    fn differences(active: &Self::Published, candidate: &Self::Published) -> BTreeMap<String, u64> {
        by_key(active, candidate, class_difference)
    }
    fn status(evaluation: CandidateEvaluation, decided: Option<&Self::Published>) -> Self::Status {
        let class = |d: &ClassDecision| PublishedClass { ttl_seconds: d.ttl_seconds, admit: d.admit };
        let classes = decided.into_iter().flatten().map(|(n, d)| (n.clone(), class(d))).collect();
        CacheCandidateStatus { evaluation, classes }
    }
    fn evaluation(status: &Self::Status) -> &CandidateEvaluation {
        &status.evaluation
    }
}

impl Shadowed for RateLimitUse {
    type Status = RateLimitCandidateStatus;
    fn with_settings(input: &Self::Input, settings: String) -> Self::Input {
        Self::Input { settings, ..input.clone() }
    }
    fn differences(active: &Self::Published, candidate: &Self::Published) -> BTreeMap<String, u64> {
        by_key(active, candidate, limit_difference)
    }
    fn status(evaluation: CandidateEvaluation, decided: Option<&Self::Published>) -> Self::Status {
        let limit = |l: &RouteLimit| PublishedLimit { requests_per_second: l.requests_per_second, burst: l.burst };
        let routes = decided.into_iter().flatten().map(|(r, l)| (r.clone(), limit(l))).collect();
        RateLimitCandidateStatus { evaluation, routes }
    }
    fn evaluation(status: &Self::Status) -> &CandidateEvaluation {
        &status.evaluation
    }
}

/// `|candidate - active|` in percent of `active` (of 1 when it is 0), rounded up: within a bound `b` exactly when
/// `|candidate - active| * 100 <= b * active`.
pub fn percent(active: u32, candidate: u32) -> u64 {
    (u64::from(active.abs_diff(candidate)) * 100).div_ceil(u64::from(active.max(1)))
}

/// A TTL's difference; an admit decision that differs counts as [`WHOLLY`] at least, and a class neither side
/// caches does not differ whatever its TTLs.
fn class_difference(active: &ClassDecision, candidate: &ClassDecision) -> u64 {
    match (active.admit, candidate.admit) {
        (false, false) => 0,
        (a, c) if a != c => WHOLLY.max(percent(active.ttl_seconds, candidate.ttl_seconds)),
        _ => percent(active.ttl_seconds, candidate.ttl_seconds),
    }
}

/// The larger of the requests/s and burst differences.
fn limit_difference(active: &RouteLimit, candidate: &RouteLimit) -> u64 {
    let rate = percent(active.requests_per_second, candidate.requests_per_second);
    rate.max(percent(active.burst, candidate.burst))
}

/// The difference for every key either side decided; a key only one side has counts as [`WHOLLY`].
fn by_key<V>(
    active: &BTreeMap<String, V>,
    candidate: &BTreeMap<String, V>,
    f: fn(&V, &V) -> u64,
) -> BTreeMap<String, u64> {
    let keys = active.keys().chain(candidate.keys());
    keys.map(|k| {
        let difference = match (active.get(k), candidate.get(k)) {
            (Some(a), Some(c)) => f(a, c),
            _ => WHOLLY,
        };
        (k.clone(), difference)
    })
    .collect()
}

/// sha256 (12 hex characters) of a policy's settings as given to it: which settings a verdict was given for.
pub fn settings_digest(r: &PolicyRef) -> String {
    perf_policy_host::source::sha256_hex(settings_text(r.settings.as_ref()).as_bytes()).chars().take(12).collect()
}

/// Whether `evaluation` was given for `candidate` as the spec has it now (its source, settings and bound).
pub fn is_for(evaluation: &CandidateEvaluation, candidate: &PolicyCandidate) -> bool {
    evaluation.policy == label(&candidate.policy)
        && evaluation.settings_digest == settings_digest(&candidate.policy)
        && evaluation.max_difference_percent == candidate.max_difference_percent
}

/// A candidate declared beside a policy use.
pub(super) struct Shadow<'a, U: Shadowed> {
    pub spec: &'a PolicyCandidate,
    pub loaded: Option<&'a Read<Arc<Policy>>>,
    /// Its record in status, if any.
    pub previous: Option<&'a U::Status>,
}

/// What the active policy did this round: what it published, and whether that was its decision.
pub(super) struct Active<'a, P> {
    pub published: &'a P,
    pub compared_with: ComparedWith,
}

impl<U: Shadowed> Shadow<'_, U> {
    /// The candidate's record when it cannot be judged this round (nothing was read to decide on): the previous
    /// one if it is this candidate's.
    pub fn kept(&self) -> Option<U::Status> {
        self.previous.filter(|p| is_for(U::evaluation(p), self.spec)).cloned()
    }

    /// Evaluates the candidate on `input` (with its own settings) and compares it with the active policy.
    pub fn judge(&self, input: &U::Input, active: Active<'_, U::Published>, now: Timestamp) -> U::Status {
        let r = &self.spec.policy;
        let settings = settings_text(r.settings.as_ref());
        let outcome = run::<U>(self.loaded, &settings, &U::with_settings(input, settings.clone()));
        let decided = outcome.as_ref().ok().map(|o| U::decode(o, input));
        let differences = decided.as_ref().map(|d| U::differences(active.published, d)).unwrap_or_default();
        let largest = decided.as_ref().map(|_| differences.values().copied().max().unwrap_or(0));
        let bound = self.spec.max_difference_percent;
        let verdict = match largest {
            None => CandidateVerdict::Failed,
            Some(l) if l <= u64::from(bound) => CandidateVerdict::Agrees,
            Some(_) => CandidateVerdict::Differs,
        };
        let evaluation = CandidateEvaluation {
            policy: label(r),
            settings_digest: settings_digest(r),
            verdict,
            compared_with: active.compared_with,
            max_difference_percent: bound,
            largest_difference_percent: largest,
            difference_percent: differences,
            reason: outcome.as_ref().ok().map(|o| sanitize(U::reason(o))),
            error: outcome.as_ref().err().map(|e| sanitize(e)),
            evaluated_at: Some(Time(now)),
            agreeing_evaluations: self.agreeing(verdict),
        };
        U::status(evaluation, decided.as_ref())
    }

    /// Consecutive agreeing evaluations of this candidate, this one included.
    fn agreeing(&self, verdict: CandidateVerdict) -> u32 {
        if verdict != CandidateVerdict::Agrees {
            return 0;
        }
        let before = self.previous.map(U::evaluation).filter(|p| is_for(p, self.spec));
        let run = before.filter(|p| p.verdict == CandidateVerdict::Agrees).map_or(0, |p| p.agreeing_evaluations);
        run.saturating_add(1)
    }
}

/// The candidate's output, or why it has none (its category in the message, as the active policy's errors).
fn run<U: PolicyUse>(
    loaded: Option<&Read<Arc<Policy>>>,
    settings: &str,
    input: &U::Input,
) -> Result<U::Output, String> {
    let host = |e: perf_policy_host::Error| format!("{e} ({})", e.category());
    match loaded {
        Some(Ok(policy)) => {
            policy.validate_settings(settings).map_err(host)?;
            U::evaluate(policy, input).map_err(host)
        }
        Some(Err(e)) => Err(e.chain()),
        None => Err(Unread::NotObserved("the candidate was not loaded").chain()),
    }
}

/// `PolicyCandidateAgrees`, from the candidates' records, when the spec declares one: advisory, it never makes the
/// profile less ready. The worst verdict gives the reason; the message has every world's.
pub fn report(status: Option<&PoliciesStatus>) -> Option<Report> {
    let cache = status.and_then(|s| s.cache.as_ref()).and_then(|c| c.candidate.as_ref()).map(|c| &c.evaluation);
    let rate_limit = status.and_then(|s| s.rate_limit.as_ref()).and_then(|r| r.candidate.as_ref());
    let worlds = [("cache", cache), ("rateLimit", rate_limit.map(|r| &r.evaluation))];
    let judged: Vec<(&str, &CandidateEvaluation)> = worlds.into_iter().filter_map(|(w, e)| Some((w, e?))).collect();
    let worst = judged.iter().map(|(_, e)| e.verdict).max_by_key(|v| severity(*v))?;
    let message = judged.iter().map(|(world, e)| describe(world, e)).collect::<Vec<_>>().join("; ");
    let reason = match worst {
        CandidateVerdict::Agrees => AGREES,
        CandidateVerdict::Differs => DIFFERS,
        CandidateVerdict::Failed => FAILED,
    };
    Some(Report::advisory(condition::POLICY_CANDIDATE_AGREES, worst == CandidateVerdict::Agrees, reason, message))
}

/// A verdict as metrics label it.
pub fn verdict_label(v: CandidateVerdict) -> &'static str {
    match v {
        CandidateVerdict::Agrees => "Agrees",
        CandidateVerdict::Differs => "Differs",
        CandidateVerdict::Failed => "Failed",
    }
}

fn severity(v: CandidateVerdict) -> u8 {
    match v {
        CandidateVerdict::Agrees => 0,
        CandidateVerdict::Differs => 1,
        CandidateVerdict::Failed => 2,
    }
}

/// One world's verdict for people: the candidate, the largest difference against the bound, and with what.
fn describe(world: &str, e: &CandidateEvaluation) -> String {
    let against = match e.compared_with {
        ComparedWith::Decision => "",
        ComparedWith::Published => " (compared with the published values: the active policy failed)",
    };
    let bound = e.max_difference_percent;
    let largest = e.largest_difference_percent.unwrap_or(0);
    let at = e.difference_percent.iter().filter(|(_, d)| **d == largest).map(|(k, _)| k.as_str());
    let at = at.collect::<Vec<_>>().join(", ");
    match e.verdict {
        CandidateVerdict::Agrees => format!(
            "{world} candidate {} agrees: largest difference {largest}% <= {bound}%, {} evaluation(s) in a row{against}",
            e.policy, e.agreeing_evaluations
        ),
        CandidateVerdict::Differs => {
            format!("{world} candidate {} differs: {largest}% at {at} > {bound}%{against}", e.policy)
        }
        CandidateVerdict::Failed => {
            format!("{world} candidate {} failed: {}", e.policy, e.error.as_deref().unwrap_or("no decision"))
        }
    }
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
