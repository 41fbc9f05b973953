//! Whether a policy candidate may be promoted, and the patch that promotes it: pure, from the profile as read.

use crate::decide::policy::label;
use crate::decide::shadow;
use perf_operator_api::{CandidateEvaluation, CandidateVerdict, PerformanceProfile, PolicyCandidate, PolicyRef};
use serde_json::{Value, json};

/// Which policy use a candidate stands beside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum World {
    /// `spec.cache`.
    Cache,
    /// `spec.rateLimit`.
    RateLimit,
}

impl World {
    /// The spec section, as fields are named.
    pub fn section(self) -> &'static str {
        match self {
            World::Cache => "spec.cache",
            World::RateLimit => "spec.rateLimit",
        }
    }

    fn pointer(self) -> &'static str {
        match self {
            World::Cache => "/spec/cache",
            World::RateLimit => "/spec/rateLimit",
        }
    }
}

/// Why a candidate is not promoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("profile {profile} declares no policy candidate{}", in_world(*.world))]
    NoCandidate { profile: String, world: Option<World> },
    #[error("profile {profile} declares a candidate in spec.cache and in spec.rateLimit: say which with --world")]
    WhichWorld { profile: String },
    #[error(
        "{section}.candidate {candidate} has no verdict yet{why}: wait for the operator's next evaluation, or promote \
         it unjudged with --force"
    )]
    NotJudged { section: &'static str, candidate: String, why: String },
    #[error(
        "{section}.candidate {candidate} {verdict}: {detail}; promote it anyway with --force",
        verdict = verdict_text(*.verdict)
    )]
    Verdict { section: &'static str, candidate: String, verdict: CandidateVerdict, detail: String },
}

fn in_world(world: Option<World>) -> String {
    world.map(|w| format!(" in {}", w.section())).unwrap_or_default()
}

fn verdict_text(v: CandidateVerdict) -> &'static str {
    match v {
        CandidateVerdict::Agrees => "agrees",
        CandidateVerdict::Differs => "differs beyond its bound",
        CandidateVerdict::Failed => "failed",
    }
}

/// A promotion to send: one JSON patch, guarded by the resourceVersion the profile was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Promotion {
    pub world: World,
    /// The active policy replaced, and the candidate that replaces it (labels).
    pub replaced: String,
    pub promoted: String,
    /// The verdict it was promoted on (None: never judged, with --force).
    pub verdict: Option<CandidateVerdict>,
    pub forced: bool,
    /// RFC 6902 operations: the resourceVersion as read (a profile changed since is a conflict, nothing is
    /// written), `policy` replaced by the candidate with the active policy's `onFailure`, `candidate` removed.
    pub patch: Value,
}

/// Decides the promotion of `profile`'s candidate in `world` (the only one declared when None).
pub fn promotion(profile: &PerformanceProfile, world: Option<World>, force: bool) -> Result<Promotion, Refusal> {
    let name = profile.metadata.name.clone().unwrap_or_default();
    let (world, candidate, active) = pick(profile, world, &name)?;
    let judged = record(profile, world).filter(|e| shadow::is_for(e, candidate));
    let current = profile.status.as_ref().and_then(|s| s.observed_generation) == profile.metadata.generation;
    let verdict = judged.filter(|_| current).map(|e| e.verdict);
    if !force {
        check(world, candidate, judged, current)?;
    }
    let mut policy = candidate.policy.clone();
    // The candidate has no fallback of its own: the active policy's stays.
    policy.on_failure = active.on_failure;
    let pointer = world.pointer();
    let resource_version = profile.metadata.resource_version.clone().unwrap_or_default();
    let patch = json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "replace", "path": format!("{pointer}/policy"), "value": policy},
        {"op": "remove", "path": format!("{pointer}/candidate")},
    ]);
    Ok(Promotion { world, replaced: label(active), promoted: label(&policy), verdict, forced: force, patch })
}

/// The candidate to promote, with its world and the active policy beside it.
fn pick<'a>(
    profile: &'a PerformanceProfile,
    world: Option<World>,
    name: &str,
) -> Result<(World, &'a PolicyCandidate, &'a PolicyRef), Refusal> {
    let cache =
        profile.spec.cache.as_ref().and_then(|c| Some((World::Cache, c.candidate.as_ref()?, c.policy.as_ref()?)));
    let rate_limit = profile.spec.rate_limit.as_ref();
    let rate_limit = rate_limit.and_then(|r| Some((World::RateLimit, r.candidate.as_ref()?, r.policy.as_ref()?)));
    let declared: Vec<_> =
        cache.into_iter().chain(rate_limit).filter(|(w, ..)| world.is_none_or(|asked| asked == *w)).collect();
    match declared.as_slice() {
        [one] => Ok(*one),
        [] => Err(Refusal::NoCandidate { profile: name.to_string(), world }),
        _ => Err(Refusal::WhichWorld { profile: name.to_string() }),
    }
}

/// The candidate's record in status.
fn record(profile: &PerformanceProfile, world: World) -> Option<&CandidateEvaluation> {
    let policies = profile.status.as_ref()?.policies.as_ref()?;
    match world {
        World::Cache => policies.cache.as_ref()?.candidate.as_ref().map(|c| &c.evaluation),
        World::RateLimit => policies.rate_limit.as_ref()?.candidate.as_ref().map(|c| &c.evaluation),
    }
}

/// Refuses a candidate without a verdict for the spec as it is, or whose verdict is not `Agrees`.
fn check(
    world: World,
    candidate: &PolicyCandidate,
    judged: Option<&CandidateEvaluation>,
    current: bool,
) -> Result<(), Refusal> {
    let (section, name) = (world.section(), label(&candidate.policy));
    let Some(e) = judged.filter(|_| current) else {
        let why = match judged {
            Some(_) => " (the operator has not yet written status for the spec's latest generation)".to_string(),
            None => " for its current source, settings and bound".to_string(),
        };
        return Err(Refusal::NotJudged { section, candidate: name, why });
    };
    let largest = e.largest_difference_percent.unwrap_or(0);
    let detail = match e.verdict {
        CandidateVerdict::Agrees => return Ok(()),
        CandidateVerdict::Differs => format!("largest difference {largest}% > {}%", e.max_difference_percent),
        CandidateVerdict::Failed => e.error.clone().unwrap_or_else(|| "no decision".into()),
    };
    Err(Refusal::Verdict { section, candidate: name, verdict: e.verdict, detail })
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
