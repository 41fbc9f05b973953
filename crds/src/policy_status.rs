//! What the policies component records in status: per policy use, what it observed, what it published and from
//! where. Typed, so the next reconcile reads its own records back without guessing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Policies component state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoliciesStatus {
    /// The cache policy's last evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicyStatus>,
    /// The rate-limit policy's last evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicyStatus>,
}

/// Where a published value came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PublishedFrom {
    /// The policy's decision of this round.
    #[default]
    Policy,
    /// The policy failed; its last decision is kept (`KeepLastGood`, `FailClosed`).
    LastGood,
    /// The policy failed; the spec's values are published (`UseSpec`, or no decision yet with `KeepLastGood`).
    Spec,
    /// The policy failed before it ever decided and the profile says `FailClosed`: nothing is admitted to the cache,
    /// every route is limited to 0 requests/s.
    Closed,
}

impl PublishedFrom {
    /// Whether the published value is one the policy decided (so it may be kept as the last good decision).
    pub fn is_decision(self) -> bool {
        matches!(self, PublishedFrom::Policy | PublishedFrom::LastGood)
    }
}

/// What every policy use records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyEvaluation {
    /// The policy: `builtin:<name>`, `configMap:<name>/<key>@<sha256 prefix>` or `url:<url>@<sha256 prefix>`.
    pub policy: String,
    /// Where the published values came from.
    pub published: PublishedFrom,
    /// The policy's own explanation of its decision (sanitised, at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the policy gave no decision, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the policy was last evaluated. A decision holds until the operator's evaluation interval (its resync)
    /// has passed, the spec changes or an evaluation fails; rounds in between publish it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The component this policy names, refused at load for what it is (its shape, imports, world, or a compile
    /// too costly). Kept here so that the operator, restarted, does not compile it again: it is refused from this
    /// record until the pin changes (a missed compile deadline only for ten minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedComponent>,
}

/// A policy component refused at load, by digest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedComponent {
    /// The component's sha256.
    pub sha256: String,
    /// The failure category (`load`, `forbidden_import`, `wrong_world`, `compile_timeout`).
    pub category: String,
    /// Why (sanitised, at most 256 characters).
    pub message: String,
    /// When it was refused.
    pub at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// A cache policy's last evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CachePolicyStatus {
    #[serde(flatten)]
    pub evaluation: PolicyEvaluation,
    /// Redis's cumulative counters when they were read, so the next evaluation is given what happened in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<RedisCounters>,
    /// What the policy was given: counters of the interval since the previous evaluation, memory and keys now.
    /// Absent when Redis could not be read (the policy then decided on zeros).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<CacheObservation>,
    /// Published decision per class.
    #[serde(default)]
    pub classes: BTreeMap<String, PublishedClass>,
    /// The policy's advice on Redis memory, as it gave it; see `memoryAdviceApplied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_advice: Option<MemoryAdviceStatus>,
    /// What of the advice the operator applies and why (bounded by the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_advice_applied: Option<String>,
    /// The candidate's last evaluation beside this policy (`spec.cache.candidate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CacheCandidateStatus>,
}

/// Redis's cumulative counters (`INFO stats`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisCounters {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// What a cache policy was given.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheObservation {
    /// Hits, misses and evictions since the previous evaluation.
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub used_memory_bytes: u64,
    /// 0 means unlimited.
    pub max_memory_bytes: u64,
    pub keys: u64,
}

/// One class as published.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedClass {
    pub ttl_seconds: u32,
    /// Whether the app should cache this class at all.
    pub admit: bool,
}

/// A cache policy's advice on Redis memory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryAdviceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_policy: Option<String>,
}

/// A rate-limit policy's last evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPolicyStatus {
    #[serde(flatten)]
    pub evaluation: PolicyEvaluation,
    /// Traffic per route over the last minute; a route without complete data is absent.
    #[serde(default)]
    pub observed: BTreeMap<String, RouteObservation>,
    /// Published limits per route.
    #[serde(default)]
    pub routes: BTreeMap<String, PublishedLimit>,
    /// The candidate's last evaluation beside this policy (`spec.rateLimit.candidate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<RateLimitCandidateStatus>,
}

/// One route's traffic as Prometheus reported it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteObservation {
    pub requests_per_second: f64,
    pub p99_latency_ms: f64,
    pub error_percent: f64,
    pub rejected_per_second: f64,
}

/// One route's published limit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

/// How a candidate's decisions compare with the active policy's.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CandidateVerdict {
    /// Every class or route is within `maxDifferencePercent`.
    #[default]
    Agrees,
    /// Some class or route is beyond `maxDifferencePercent`.
    Differs,
    /// The candidate gave no decision: it could not be loaded, refused its settings, trapped, timed out.
    Failed,
}

/// What a candidate's decisions were compared with.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ComparedWith {
    /// The active policy's decision of the same round, on the same input.
    #[default]
    Decision,
    /// The active policy failed that round: the values published instead (its fallback).
    Published,
}

/// What every candidate records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateEvaluation {
    /// The candidate, labelled as `policy` is.
    pub policy: String,
    /// sha256 (12 hex characters) of the candidate's settings as given to it: with `policy`, which candidate this
    /// verdict is for (`kubectl perf policy promote` checks both against the spec).
    pub settings_digest: String,
    pub verdict: CandidateVerdict,
    /// What the decisions were compared with.
    pub compared_with: ComparedWith,
    /// The bound the verdict was given under (`maxDifferencePercent`).
    pub max_difference_percent: u32,
    /// The largest of `differencePercent`; absent when the candidate failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_difference_percent: Option<u64>,
    /// Per class or route, the difference from the active value in percent of it, rounded up (a class or route
    /// only one side decided counts as 100).
    #[serde(default)]
    pub difference_percent: BTreeMap<String, u64>,
    /// The candidate's own explanation of its decision (sanitised, at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the candidate gave no decision, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the candidate was last evaluated (with the active policy: a round that holds the active decision holds
    /// this record too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Consecutive evaluations of this candidate that agreed, this one included (0 unless `verdict` is `Agrees`).
    #[serde(default)]
    pub agreeing_evaluations: u32,
}

/// A cache candidate's last evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheCandidateStatus {
    #[serde(flatten)]
    pub evaluation: CandidateEvaluation,
    /// The candidate's decision per class (never published).
    #[serde(default)]
    pub classes: BTreeMap<String, PublishedClass>,
}

/// A rate-limit candidate's last evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitCandidateStatus {
    #[serde(flatten)]
    pub evaluation: CandidateEvaluation,
    /// The candidate's limits per route (never published).
    #[serde(default)]
    pub routes: BTreeMap<String, PublishedLimit>,
}
