//! A candidate policy: run in the shadow of the active one, on the same input, compared with it and never
//! published. `kubectl perf policy promote` makes it the active one.

use crate::PolicyRef;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The largest difference allowed by default, in percent.
pub const DEFAULT_MAX_DIFFERENCE_PERCENT: u32 = 10;

/// The CEL rule refusing an `onFailure` on a candidate (a candidate is never published, so it has no fallback).
pub const CANDIDATE_ON_FAILURE_RULE: &str = "!has(self.onFailure) || self.onFailure == 'KeepLastGood'";
/// Its message.
pub const CANDIDATE_ON_FAILURE_MESSAGE: &str = "candidate: onFailure means nothing for a candidate (its decisions \
     are never published; promotion keeps the active policy's onFailure): leave it out";

/// A policy evaluated beside the active one each round, on the same input: its decisions are compared with the
/// active policy's (status `policies.<world>.candidate`) and never published. The same sources and settings as
/// `policy`; `onFailure` is the active policy's alone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(CANDIDATE_ON_FAILURE_RULE).message(CANDIDATE_ON_FAILURE_MESSAGE))]
pub struct PolicyCandidate {
    #[serde(flatten)]
    pub policy: PolicyRef,
    /// The largest difference from the active policy's decision, per class or route, that still counts as agreeing,
    /// in percent of the active value (a TTL; the larger of requests/s and burst). An admit decision that differs
    /// counts as 100.
    #[serde(default = "default_max_difference_percent")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_difference_percent: u32,
}

impl Default for PolicyCandidate {
    fn default() -> Self {
        Self { policy: PolicyRef::default(), max_difference_percent: DEFAULT_MAX_DIFFERENCE_PERCENT }
    }
}

fn default_max_difference_percent() -> u32 {
    DEFAULT_MAX_DIFFERENCE_PERCENT
}

/// The CEL rule (on `cache` and `rateLimit`) that a candidate has an active policy to be compared with.
pub const NEEDS_POLICY_RULE: &str = "!has(self.candidate) || has(self.policy)";

impl crate::PerformanceProfileSpec {
    /// Every policy reference the spec names, with its field: the active policies and their candidates, in that
    /// order (each place that judges or follows a policy's source reads them all from here).
    pub fn policy_refs(&self) -> impl Iterator<Item = (&'static str, &PolicyRef)> {
        let (cache, rate_limit) = (self.cache.as_ref(), self.rate_limit.as_ref());
        [
            ("spec.cache.policy", cache.and_then(|c| c.policy.as_ref())),
            ("spec.rateLimit.policy", rate_limit.and_then(|r| r.policy.as_ref())),
            ("spec.cache.candidate", cache.and_then(|c| c.candidate.as_ref()).map(|c| &c.policy)),
            ("spec.rateLimit.candidate", rate_limit.and_then(|r| r.candidate.as_ref()).map(|c| &c.policy)),
        ]
        .into_iter()
        .filter_map(|(field, r)| Some((field, r?)))
    }
}
