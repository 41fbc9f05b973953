//! Policy decisions: settings checked, the loaded component evaluated on the observed input, and what `onFailure`
//! says when any of that fails. One generic path serves the cache and the rate-limit policy ([`PolicyUse`]).

use super::fallback::{self, Fallbacks};
use super::inputs;
use super::memory::{self, LiveSettings};
use super::shadow::{self, Active, Shadow};
use super::{Observed, PolicyUnavailable, Read, Unread};
use crate::components::{cache::CachePlan, rate_limit::RateLimitPlan};
use crate::conditions::Report;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use perf_operator_api::{
    self as api, CacheObservation, CachePolicyStatus, CandidateVerdict, ComparedWith, MemoryAdviceStatus,
    PerformanceProfile, PoliciesStatus, PolicyEvaluation, PolicyRef, PublishedClass, PublishedFrom, PublishedLimit,
    RateLimitPolicyStatus, RefusedComponent, RouteObservation, condition,
};
use perf_policy_host::positional::settings_text;
use perf_policy_host::{CacheInput, CacheOutput, ClassDecision, Policy, RateLimitInput, RateLimitOutput, RouteLimit};
use perf_policy_host::{CacheStats, World};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Condition reason of a component whose digest is not its pin.
pub const PIN_MISMATCH: &str = "PinMismatch";

/// One evaluation, for the metrics: the world, the failure category if it failed, and how long the component was
/// called for (settings check and evaluation; None when no component was loaded to call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub world: World,
    pub failure: Option<&'static str>,
    pub elapsed: Option<Duration>,
    /// The verdict on the candidate evaluated beside it, if one was.
    pub candidate: Option<CandidateVerdict>,
}

/// Why a policy gave no decision.
#[derive(Clone, Debug)]
struct Failure {
    reason: &'static str,
    category: &'static str,
    message: String,
    /// The component's refusal to record in status: a new one (no time yet), or the one status already had.
    refused: Option<Box<(RefusedComponent, bool)>>,
}

impl Failure {
    fn host(reason: &'static str, e: &perf_policy_host::Error) -> Self {
        Self { reason, category: e.category(), message: format!("{e} ({})", e.category()), refused: None }
    }
    fn unread(e: &Unread) -> Self {
        let reason = match e {
            Unread::Policy(PolicyUnavailable::PinMismatch { .. }) => PIN_MISMATCH,
            _ => "Unavailable",
        };
        let refused = match e {
            Unread::Policy(PolicyUnavailable::Refused { refused, .. }) => Some(Box::new((refused.clone(), true))),
            Unread::Policy(PolicyUnavailable::Host(host)) => host.refused_digest().map(|sha256| {
                let message = sanitize(&host.to_string());
                let at = Time(Timestamp::UNIX_EPOCH);
                let refused =
                    RefusedComponent { sha256: sha256.to_string(), category: host.category().into(), message, at };
                Box::new((refused, false))
            }),
            _ => None,
        };
        Self { reason, category: e.category(), message: e.chain(), refused }
    }

    /// The record for status: a refusal of this round is dated `now`, a remembered one keeps its date.
    fn refused_at(&self, now: Timestamp) -> Option<RefusedComponent> {
        let (record, remembered) = self.refused.as_deref()?;
        Some(if *remembered { record.clone() } else { RefusedComponent { at: Time(now), ..record.clone() } })
    }
}

/// A use of a policy: its world's input, output and what it publishes.
pub(super) trait PolicyUse {
    type Input;
    type Output;
    /// Published value, by class or route name.
    type Published: Clone;
    const WORLD: World;
    fn evaluate(policy: &Policy, input: &Self::Input) -> perf_policy_host::Result<Self::Output>;
    fn decode(output: &Self::Output, input: &Self::Input) -> Self::Published;
    fn spec(input: &Self::Input) -> Self::Published;
    /// What `FailClosed` publishes before any decision.
    fn closed(input: &Self::Input) -> Self::Published;
    fn reason(output: &Self::Output) -> &str;
}

pub(super) struct CacheUse;

impl PolicyUse for CacheUse {
    type Input = CacheInput;
    type Output = CacheOutput;
    type Published = BTreeMap<String, ClassDecision>;
    const WORLD: World = World::Cache;
    fn evaluate(policy: &Policy, input: &CacheInput) -> perf_policy_host::Result<CacheOutput> {
        policy.evaluate_cache(input)
    }
    fn decode(output: &CacheOutput, input: &CacheInput) -> Self::Published {
        output.by_class(input)
    }
    fn spec(input: &CacheInput) -> Self::Published {
        input.spec_output().by_class(input)
    }
    fn closed(input: &CacheInput) -> Self::Published {
        let closed = |ttl_seconds| ClassDecision { ttl_seconds, admit: false };
        input.classes.iter().map(|c| (c.name.clone(), closed(c.ttl_seconds))).collect()
    }
    fn reason(output: &CacheOutput) -> &str {
        &output.reason
    }
}

pub(super) struct RateLimitUse;

impl PolicyUse for RateLimitUse {
    type Input = RateLimitInput;
    type Output = RateLimitOutput;
    type Published = BTreeMap<String, RouteLimit>;
    const WORLD: World = World::RateLimit;
    fn evaluate(policy: &Policy, input: &RateLimitInput) -> perf_policy_host::Result<RateLimitOutput> {
        policy.evaluate_rate_limit(input)
    }
    fn decode(output: &RateLimitOutput, input: &RateLimitInput) -> Self::Published {
        output.by_route(input)
    }
    fn spec(input: &RateLimitInput) -> Self::Published {
        input.spec_output().by_route(input)
    }
    fn closed(input: &RateLimitInput) -> Self::Published {
        let closed = RouteLimit { requests_per_second: 0, burst: 0 };
        input.routes.iter().map(|r| (r.route.clone(), closed)).collect()
    }
    fn reason(output: &RateLimitOutput) -> &str {
        &output.reason
    }
}

/// What one policy use published and how it went.
struct Evaluated<U: PolicyUse> {
    published: U::Published,
    evaluation: PolicyEvaluation,
    output: Option<U::Output>,
    failure: Option<Failure>,
    /// Time spent in the component (a measurement for the metrics; it decides nothing).
    elapsed: Option<Duration>,
}

fn evaluate<U: PolicyUse>(
    r: &PolicyRef,
    loaded: Option<&Read<Arc<Policy>>>,
    input: &U::Input,
    last_good: Option<U::Published>,
) -> Evaluated<U> {
    let mut elapsed = None;
    let result = match loaded {
        Some(Ok(policy)) => {
            let start = Instant::now();
            let result = policy
                .validate_settings(&settings_text(r.settings.as_ref()))
                .map_err(|e| Failure::host("BadSettings", &e))
                .and_then(|()| U::evaluate(policy, input).map_err(|e| Failure::host("PolicyFailed", &e)));
            elapsed = Some(start.elapsed());
            result
        }
        Some(Err(e)) => Err(Failure::unread(e)),
        None => Err(Failure::unread(&Unread::NotObserved("the policy was not loaded"))),
    };
    let decoded = result.as_ref().map(|o| U::decode(o, input));
    let fallbacks = Fallbacks { last_good, spec: U::spec(input), closed: U::closed(input) };
    let (published, from) = fallback::publish(decoded, r.on_failure, fallbacks);
    let (output, failure) = match result {
        Ok(o) => (Some(o), None),
        Err(f) => (None, Some(f)),
    };
    let evaluation = PolicyEvaluation {
        policy: label(r),
        published: from,
        reason: output.as_ref().map(|o| sanitize(U::reason(o))),
        error: failure.as_ref().map(|f| sanitize(&f.message)),
        evaluated_at: None,
        refused: None,
    };
    Evaluated { published, evaluation, output, failure, elapsed }
}

/// What the policies decided, besides the values written into the cache and rate-limit plans.
pub struct Decided {
    pub status: Option<PoliciesStatus>,
    pub report: Report,
    pub runs: Vec<Run>,
    /// Settings to hold live on the provisioned Redis: the cache policy's memory advice within bounds.
    pub redis_live: Option<LiveSettings>,
    /// `PolicyCandidateAgrees`, when a candidate is declared and judged (advisory).
    pub candidate_report: Option<Report>,
}

/// Whether the previous evaluation still holds at `now`: the policy decided, the spec is the one that decision was
/// made for (the status was written for this generation), and the evaluation interval has not passed. A round in
/// between (a target change, an owned object's event) then publishes that decision again and keeps its counter
/// baseline, so the next evaluation is given the whole interval and never the gap between two close rounds.
fn holds(profile: &PerformanceProfile, evaluation: &PolicyEvaluation, every: Option<Duration>, now: Timestamp) -> bool {
    let (Some(every), Some(at)) = (every, evaluation.evaluated_at.as_ref()) else { return false };
    let same_spec = profile.status.as_ref().and_then(|s| s.observed_generation) == profile.meta().generation;
    let elapsed = now.duration_since(at.0);
    evaluation.published == PublishedFrom::Policy
        && evaluation.error.is_none()
        && same_spec
        && !elapsed.is_negative()
        && elapsed.unsigned_abs() < every
}

/// The policies' decisions, written into the cache and rate-limit plans: evaluated when due ([`holds`]), else the
/// previous ones as they are.
pub fn decide(
    profile: &PerformanceProfile,
    observed: &Observed,
    now: Timestamp,
    cache: Option<&mut CachePlan>,
    rate_limits: Option<&mut RateLimitPlan>,
) -> Decided {
    let previous = profile.status.as_ref().and_then(|s| s.policies.as_ref());
    let mut status = PoliciesStatus::default();
    let mut tally = Tally::default();
    let mut redis_live = None;
    let cache_use = profile.spec.cache.as_ref().and_then(|c| c.policy.as_ref().map(|r| (c, r)));
    // A decision holds only while this round could have made it again: its component loaded (a ConfigMap edited
    // under its pin is refused at once) and its input read; otherwise the round evaluates and reports as before.
    let held = |e: &PolicyEvaluation, fine: bool| fine && holds(profile, e, observed.policy_every, now);
    let cache_fine = matches!(observed.cache_policy, Some(Ok(_))) && matches!(observed.redis, Some(Ok(_)));
    let rate_limit_fine = matches!(observed.rate_limit_policy, Some(Ok(_))) && matches!(observed.traffic, Some(Ok(_)));
    if let (Some((spec, r)), Some(plan)) = (cache_use, cache) {
        let previous = previous.and_then(|p| p.cache.as_ref());
        if let Some(held) = previous.filter(|p| held(&p.evaluation, cache_fine)) {
            plan.ttl_seconds = held.classes.iter().map(|(n, c)| (n.clone(), c.ttl_seconds)).collect();
            plan.admit = held.classes.iter().map(|(n, c)| (n.clone(), c.admit)).collect();
            status.cache = Some(held.clone());
        } else {
            let (round, live) = decide_cache(profile, observed, previous, spec, r, plan, now);
            redis_live = live;
            status.cache = Some(tally.record(round, CacheUse::WORLD, |e| &mut e.evaluation, now));
        }
    }
    let rate_use = profile.spec.rate_limit.as_ref().and_then(|s| s.policy.as_ref().map(|r| (s, r)));
    if let (Some((spec, r)), Some(plan)) = (rate_use, rate_limits) {
        let previous = previous.and_then(|p| p.rate_limit.as_ref());
        if let Some(held) = previous.filter(|p| held(&p.evaluation, rate_limit_fine)) {
            plan.routes = published_routes(spec, &held.routes);
            status.rate_limit = Some(held.clone());
        } else {
            let round = decide_rate_limit(profile, observed, previous, spec, r, plan, now);
            status.rate_limit = Some(tally.record(round, RateLimitUse::WORLD, |e| &mut e.evaluation, now));
        }
    }
    if status.cache.is_none() && status.rate_limit.is_none() {
        let report = Report::not_configured(condition::POLICIES_READY);
        return Decided { status: None, report, runs: tally.runs, redis_live, candidate_report: None };
    }
    let report = match tally.failures.first() {
        None => Report::ok(condition::POLICIES_READY, "Evaluated", "policy decisions published"),
        Some((world, f, from)) => {
            let published = match from {
                PublishedFrom::Policy => "the decision",
                PublishedFrom::LastGood => "the last good decision kept",
                PublishedFrom::Spec => "the spec's values published",
                PublishedFrom::Closed => "closed values published (nothing admitted, 0 requests/s: FailClosed)",
            };
            Report::failed(condition::POLICIES_READY, f.reason, format!("{world} policy: {}; {published}", f.message))
        }
    };
    let candidate_report = shadow::report(Some(&status));
    Decided { status: Some(status), report, runs: tally.runs, redis_live, candidate_report }
}

/// One world's evaluation of this round, before it is dated and counted.
struct WorldRound<S> {
    entry: S,
    failure: Option<Failure>,
    elapsed: Option<Duration>,
    /// The verdict on a candidate judged this round (not one kept from an earlier round).
    candidate: Option<CandidateVerdict>,
}

/// The evaluations of a round, for the metrics and `PoliciesReady`.
#[derive(Default)]
struct Tally {
    runs: Vec<Run>,
    failures: Vec<(&'static str, Failure, PublishedFrom)>,
}

impl Tally {
    /// Dates `round`'s entry (and a refusal of this round), counts it; returns the entry for status.
    fn record<S>(
        &mut self,
        round: WorldRound<S>,
        world: World,
        of: fn(&mut S) -> &mut PolicyEvaluation,
        now: Timestamp,
    ) -> S {
        let WorldRound { mut entry, failure, elapsed, candidate } = round;
        let evaluation = of(&mut entry);
        evaluation.evaluated_at = Some(Time(now));
        evaluation.refused = failure.as_ref().and_then(|f| f.refused_at(now));
        self.runs.push(Run { world, failure: failure.as_ref().map(|f| f.category), elapsed, candidate });
        let name = if world == World::Cache { "cache" } else { "rateLimit" };
        self.failures.extend(failure.map(|f| (name, f, evaluation.published)));
        entry
    }
}

fn decide_cache(
    profile: &PerformanceProfile,
    observed: &Observed,
    previous: Option<&CachePolicyStatus>,
    spec: &api::CacheSpec,
    r: &PolicyRef,
    plan: &mut CachePlan,
    now: Timestamp,
) -> (WorldRound<CachePolicyStatus>, Option<LiveSettings>) {
    let published_ttls = profile.status.as_ref().and_then(|s| s.cache.as_ref()).map(|c| c.ttl_seconds.clone());
    let last_counters = previous.and_then(|p| p.counters);
    let (stats, counters) = match &observed.redis {
        Some(Ok(now)) => (Some(inputs::interval_stats(now, last_counters)), Some(inputs::counters(now))),
        _ => (None, last_counters),
    };
    let input = inputs::cache_input(
        &spec.ttl_classes,
        published_ttls.as_ref().unwrap_or(&plan.ttl_seconds),
        stats.unwrap_or_default(),
        &profile.spec.slo,
        r.settings.as_ref(),
    );
    let last_good = previous.filter(|p| p.evaluation.published.is_decision()).map(|p| {
        let decided = |c: &PublishedClass| ClassDecision { ttl_seconds: c.ttl_seconds, admit: c.admit };
        p.classes.iter().map(|(name, c)| (name.clone(), decided(c))).collect()
    });
    // Without this round's reading of Redis there is nothing to decide on: the policy is not called on zeros (it
    // would advise memory for an empty cache); the failure mode publishes the last decision or the spec's.
    let unread: Read<Arc<Policy>> = Err(Unread::NotObserved("Redis was not read this round: no cache statistics"));
    let loaded = match observed.cache_policy.as_ref() {
        Some(Ok(_)) if stats.is_none() => Some(&unread),
        loaded => loaded,
    };
    let done = evaluate::<CacheUse>(r, loaded, &input, last_good);
    let shadow = spec.candidate.as_ref().map(|spec| Shadow::<CacheUse> {
        spec,
        loaded: observed.cache_candidate.as_ref(),
        previous: previous.and_then(|p| p.candidate.as_ref()),
    });
    // Without this round's statistics the candidate is not called either: its record stays.
    let judged = shadow.as_ref().filter(|_| stats.is_some()).map(|s| s.judge(&input, active(&done), now));
    let verdict = judged.as_ref().map(|c| c.evaluation.verdict);
    let candidate = judged.or_else(|| shadow.and_then(|s| s.kept()));
    plan.ttl_seconds = done.published.iter().map(|(n, d)| (n.clone(), d.ttl_seconds)).collect();
    plan.admit = done.published.iter().map(|(n, d)| (n.clone(), d.admit)).collect();
    let advice = done.output.as_ref().and_then(|o| o.memory.as_ref());
    // Only a decision of this round moves the live settings; after a failure they stay as they are.
    let live = match (&spec.redis.provision, &done.output) {
        (Some(provision), Some(output)) => Some(memory::live_settings(provision, output.memory.as_ref())),
        _ => None,
    };
    let applied = match (&live, advice) {
        (Some(live), _) => Some(live.summary.clone()),
        (None, Some(_)) if spec.redis.external.is_some() => Some(memory::EXTERNAL_NOT_APPLIED.to_string()),
        (None, _) => None,
    };
    let advice = advice.map(|m| MemoryAdviceStatus {
        max_memory_bytes: m.max_memory_bytes,
        eviction_policy: m.eviction_policy.as_deref().map(sanitize),
    });
    let entry = CachePolicyStatus {
        counters,
        observed: stats.map(observation),
        classes: done
            .published
            .iter()
            .map(|(n, d)| (n.clone(), PublishedClass { ttl_seconds: d.ttl_seconds, admit: d.admit }))
            .collect(),
        memory_advice_applied: applied,
        memory_advice: advice,
        evaluation: done.evaluation,
        candidate,
    };
    (WorldRound { entry, failure: done.failure, elapsed: done.elapsed, candidate: verdict }, live)
}

fn observation(s: CacheStats) -> CacheObservation {
    CacheObservation {
        hits: s.hits,
        misses: s.misses,
        evictions: s.evictions,
        used_memory_bytes: s.used_memory_bytes,
        max_memory_bytes: s.max_memory_bytes,
        keys: s.keys,
    }
}

fn decide_rate_limit(
    profile: &PerformanceProfile,
    observed: &Observed,
    previous: Option<&RateLimitPolicyStatus>,
    spec: &api::RateLimitSpec,
    r: &PolicyRef,
    plan: &mut RateLimitPlan,
    now: Timestamp,
) -> WorldRound<RateLimitPolicyStatus> {
    // Closed limits are not a level to adapt from: the policy starts again from the spec's.
    let published = previous.filter(|p| p.evaluation.published != PublishedFrom::Closed).map(|p| p.routes.clone());
    let traffic = match &observed.traffic {
        Some(Ok(traffic)) => traffic.clone(),
        _ => BTreeMap::new(),
    };
    let input = inputs::rate_limit_input(
        &spec.routes,
        &published.unwrap_or_default(),
        &traffic,
        &profile.spec.slo,
        r.settings.as_ref(),
    );
    let last_good = previous.filter(|p| p.evaluation.published.is_decision()).map(|p| {
        let limit = |l: &PublishedLimit| RouteLimit { requests_per_second: l.requests_per_second, burst: l.burst };
        p.routes.iter().map(|(route, l)| (route.clone(), limit(l))).collect()
    });
    let done = evaluate::<RateLimitUse>(r, observed.rate_limit_policy.as_ref(), &input, last_good);
    let candidate = spec.candidate.as_ref().map(|spec| {
        let previous = previous.and_then(|p| p.candidate.as_ref());
        let shadow = Shadow::<RateLimitUse> { spec, loaded: observed.rate_limit_candidate.as_ref(), previous };
        shadow.judge(&input, active(&done), now)
    });
    let limit = |l: &RouteLimit| PublishedLimit { requests_per_second: l.requests_per_second, burst: l.burst };
    let routes: BTreeMap<String, PublishedLimit> = done.published.iter().map(|(r, l)| (r.clone(), limit(l))).collect();
    plan.routes = published_routes(spec, &routes);
    let entry = RateLimitPolicyStatus {
        observed: traffic
            .iter()
            .map(|(route, t)| {
                let seen = RouteObservation {
                    requests_per_second: t.requests_per_second,
                    p99_latency_ms: t.p99_latency_ms,
                    error_percent: t.error_percent,
                    rejected_per_second: t.rejected_per_second,
                };
                (route.clone(), seen)
            })
            .collect(),
        routes,
        evaluation: done.evaluation,
        candidate,
    };
    let verdict = entry.candidate.as_ref().map(|c| c.evaluation.verdict);
    WorldRound { entry, failure: done.failure, elapsed: done.elapsed, candidate: verdict }
}

/// What a candidate is compared with: the active policy's decision, or the values published after it failed.
fn active<U: PolicyUse>(done: &Evaluated<U>) -> Active<'_, U::Published> {
    let compared_with = if done.failure.is_none() { ComparedWith::Decision } else { ComparedWith::Published };
    Active { published: &done.published, compared_with }
}

/// The spec's routes, in its order, at the published limits (a route without one is left out).
fn published_routes(spec: &api::RateLimitSpec, published: &BTreeMap<String, PublishedLimit>) -> Vec<api::RouteLimit> {
    let at = |r: &api::RouteLimit, l: &PublishedLimit| api::RouteLimit {
        route: r.route.clone(),
        requests_per_second: l.requests_per_second,
        burst: l.burst,
    };
    spec.routes.iter().filter_map(|r| published.get(&r.route).map(|l| at(r, l))).collect()
}

/// How a policy reference is shown in status and events.
pub fn label(r: &PolicyRef) -> String {
    let short = |sha256: &str| sha256.chars().take(12).collect::<String>();
    match (&r.builtin, &r.config_map, &r.url, &r.registry) {
        (Some(b), _, _, _) => format!("builtin:{b}"),
        (_, Some(cm), _, _) => format!("configMap:{}/{}@{}", cm.name, cm.key, short(&cm.sha256)),
        (_, _, Some(u), _) => format!("url:{}@{}", u.url, short(&u.sha256)),
        (_, _, _, Some(g)) => format!("{}@{}", g.reference, short(&g.sha256)),
        _ => "none".into(),
    }
}

/// Text from a policy, safe for status, events, logs and terminals: no control, bidi or line-separator characters,
/// at most 256 characters.
pub fn sanitize(text: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    text.chars().map(|c| if unsafe_char(c) { ' ' } else { c }).take(256).collect()
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
