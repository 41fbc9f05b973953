//! Status of a profile: conditions, phase, and one sub-status per component.

use crate::PoliciesStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Condition types the operator writes.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const CACHE_READY: &str = "CacheReady";
    pub const POOLS_READY: &str = "PoolsReady";
    pub const CLICKHOUSE_READY: &str = "ClickHouseReady";
    pub const CANARY_READY: &str = "CanaryReady";
    pub const POLICIES_READY: &str = "PoliciesReady";
    pub const ALERTS_READY: &str = "AlertsReady";
    pub const RATE_LIMIT_READY: &str = "RateLimitReady";
    /// Present while `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// Present while a policy candidate is declared (`spec.cache.candidate`, `spec.rateLimit.candidate`): whether it
    /// agrees with the active policy. Advisory: it never makes `Ready` false.
    pub const POLICY_CANDIDATE_AGREES: &str = "PolicyCandidateAgrees";
    /// Component conditions, in the order they are reported.
    pub const COMPONENTS: [&str; 7] =
        [CACHE_READY, POOLS_READY, CLICKHOUSE_READY, CANARY_READY, POLICIES_READY, ALERTS_READY, RATE_LIMIT_READY];
}

/// Observed state of a profile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceProfileStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded` and one condition per component.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Summary for people: `Ready`, `Progressing`, `Degraded` or `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The Deployment the operator last acted on for this profile. One profile acts on a target: another naming it
    /// waits (`Ready` reason `TargetHeld`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The app contract ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_config: Option<AppConfigStatus>,
    /// Cache component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    /// Pools component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<PoolsStatus>,
    /// ClickHouse component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickHouseStatus>,
    /// Canary component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Policies component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PoliciesStatus>,
    /// Rate-limit enforcement: where the limits are enforced and what a gateway holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitStatus>,
}

/// Rate-limit enforcement as applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitStatus {
    pub mode: crate::EnforcementMode,
    /// The object applied for a gateway, `Kind/name` (a BackendTrafficPolicy or the rate-limit service's
    /// ConfigMap): deleted when the mode changes or the section goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What the gateway enforces, by route: requests per window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub enforced: BTreeMap<String, WindowLimit>,
    /// The last rendering the API server refused, by the sha256 of the object, with its answer: not sent again
    /// until the rendering changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedObject>,
    /// When the operator last wrote the gateway's object: Envoy Gateway's verdict is waited for a while after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Requests per window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowLimit {
    pub requests: u64,
    pub window: crate::Window,
}

/// An object the API server refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedObject {
    pub sha256: String,
    pub message: String,
}

/// Where the app contract lives and its content hash.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppConfigStatus {
    /// ConfigMap name.
    pub name: String,
    /// sha256 of its data, also set on the target's pod template when `rolloutOnChange` is true.
    pub checksum: String,
}

/// Cache component state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    /// `host:port` the app connects to.
    pub address: String,
    /// Secret holding the password (key `password`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// TTL in seconds per class, as published (after any policy decision).
    #[serde(default)]
    pub ttl_seconds: BTreeMap<String, u32>,
    /// The provisioned Redis's live settings (maxmemory, eviction policy, maxclients; `CONFIG SET`, no restart):
    /// what is held, or why it could not be this round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_settings: Option<String>,
    /// What the Redis itself reports (`INFO`), when it could be read this round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<RedisServerStatus>,
}

/// A Redis as read from `INFO` (and `CONFIG GET` where allowed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisServerStatus {
    pub version: String,
    pub used_memory_bytes: u64,
    /// 0: no limit.
    pub max_memory_bytes: u64,
    pub eviction_policy: String,
    pub connected_clients: u64,
    /// `maxclients`; absent when `CONFIG` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<u64>,
    /// Hits over lookups since the previous reconcile, in percent (absent without lookups in between).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio_percent: Option<f64>,
    /// Keys evicted since the previous reconcile.
    pub evicted_keys: u64,
    /// The server's counters at this reconcile, for the next one's deltas.
    pub counters: crate::RedisCounters,
    /// What could not be verified (e.g. `CONFIG` refused by a managed service).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limitations: Vec<String>,
}

/// Pool sizes as published.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolsStatus {
    /// App pods the sizes were computed for.
    pub app_replicas: u32,
    /// Most app pods that may exist at once (an HPA's maxReplicas; twice as many during a canary run): each
    /// server's share is divided by it.
    #[serde(default)]
    pub worst_case_pods: u32,
    /// Sizes by pool (`clickhouse`, `postgres`, `redis`).
    #[serde(default)]
    pub sizes: BTreeMap<String, PoolSize>,
    /// What the servers allow, by pool (`postgres` with `pools.postgres.server`, `clickhouse` with the profile's
    /// ClickHouse): read live this round, or kept from the last read of the same server when this round's failed
    /// (`error` then says why).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, ServerLimits>,
}

/// A server's connection limits as read; never credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerLimits {
    /// The server read: `host:port/database` (PostgreSQL) or the endpoint (ClickHouse).
    pub server: String,
    /// `max_connections` (PostgreSQL; ClickHouse, 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// PostgreSQL: `superuser_reserved_connections` plus `reserved_connections` (16 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_connections: Option<u64>,
    /// ClickHouse: `max_concurrent_queries` (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_queries: Option<u64>,
    /// PostgreSQL: client connections open when read (`pg_stat_activity`), by every user of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_in_use: Option<u64>,
    /// What the server did not say (e.g. a ClickHouse without `system.server_settings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why this round's read failed; the numbers above are then from the last read of the same server, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One published pool size and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSize {
    /// Connections kept open per pod.
    pub min: u32,
    /// Most connections per pod.
    pub max: u32,
    /// How max was chosen: `Fixed` (the declared max), `Load` (Little's law on the declared load), `ServerCap`
    /// (the server's share binds), `Unverified` (a named server could not be read and nothing else says what it
    /// allows: held at min).
    pub reason: String,
    /// The server limit the share per pod comes from, with the arithmetic, e.g. `live PostgreSQL max_connections
    /// 37 minus 3 reserved: 34, less 10 % = 30, over 4 pod(s) = 7 per pod`; why it is unknown when `Unverified`;
    /// absent when no server limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// ClickHouse component state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClickHouseStatus {
    /// Per-table progress.
    #[serde(default)]
    pub tables: Vec<TableStatus>,
    /// Objects the operator created (projections, indexes) or set (codecs), with the definitions it sent and the
    /// server stored. Kept in status so a restarted operator still knows what it may drop: never anything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed: Vec<ManagedObject>,
}

/// One object the operator created or changed on a ClickHouse table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedObject {
    /// Table name.
    pub table: String,
    /// `Projection`, `Index` or `Codec`.
    pub kind: String,
    /// Projection or index name, or column name for a codec.
    pub name: String,
    /// Definition sent, normalised (token stream of the spec's query, expression or codec).
    pub definition: String,
    /// Definition as the server stored it, normalised; the server reformats, so both are compared.
    #[serde(default)]
    pub live: String,
    /// Whether the `MATERIALIZE` mutation was sent after the object was added.
    #[serde(default)]
    pub materialized: bool,
}

/// Progress of one table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// Table name.
    pub name: String,
    /// `InSync`, `Applying`, `Materializing` or `Failed`.
    pub state: String,
    /// Declared objects present on the live table.
    pub applied: u32,
    /// Declared objects still missing or different.
    pub pending: u32,
    /// Mutations the operator started that are still running.
    #[serde(default)]
    pub running_mutations: u32,
    /// Parts left to mutate across running mutations.
    #[serde(default)]
    pub parts_to_do: u64,
    /// Last error, with the statement that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Each declared projection, index and codec on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectStatus>,
    /// The EXPLAIN report of each representative query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QueryReport>,
}

/// One declared projection, index or codec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// `Projection`, `Index` or `Codec`.
    pub kind: String,
    /// Projection or index name, or the column of a codec.
    pub name: String,
    /// `InSync`, `Applying`, `Materializing`, `Failed` (the server refused it) or `Refused` (the operator did not
    /// send it: it cannot work on this table).
    pub state: String,
    /// Why it failed or was refused, with the server's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The definition that failed and the live definition then: the statement is not sent again until one of
    /// them changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedAttempt>,
}

/// A refused statement, remembered so it is not resent while nothing changed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedAttempt {
    /// Declared definition sent.
    pub definition: String,
    /// Live definition at the time (empty when the object did not exist).
    #[serde(default)]
    pub live: String,
}

/// What the server's EXPLAIN says about one representative query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryReport {
    /// The query's name in the spec.
    pub name: String,
    /// The projection the server reads for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<String>,
    /// With `expectProjection`: whether the server chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_projection_used: Option<bool>,
    /// Granules the primary key leaves to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<GranuleUse>,
    /// Each data-skipping index the server used, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexUse>,
    /// Why there is no report (refused by the server, or no answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Granules before and after one filtering step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GranuleUse {
    pub initial: u64,
    pub selected: u64,
    /// Share of `initial` skipped, in percent (0 when nothing was to read).
    pub skipped_percent: u32,
}

/// A data-skipping index's effect on one query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndexUse {
    pub name: String,
    pub granules: GranuleUse,
}

/// Canary run state; kept in status so a restarted operator resumes where it was.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Where the run is.
    pub phase: CanaryPhase,
    /// Run id: hash of the pod template being rolled out (the target's template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Hash of the template the primary serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_id: Option<String>,
    /// Stage shown as `index/count`, e.g. `2/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Zero-based index of the current stage in `spec.canary.stages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_index: Option<u32>,
    /// Canary traffic weight in percent the current stage asks for.
    #[serde(default)]
    pub weight: u32,
    /// Weight actually achieved: with replica-ratio routing, canary pods / all pods behind the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_weight: Option<u32>,
    /// Pods the primary runs.
    #[serde(default)]
    pub primary_replicas: u32,
    /// Pods the canary runs.
    #[serde(default)]
    pub canary_replicas: u32,
    /// Held by a `pause` command: no analysis, no step, and the deadline stops.
    #[serde(default)]
    pub paused: bool,
    /// Failed checks in this run; `analysis.failureLimit` of them roll back.
    #[serde(default)]
    pub failed_checks: u32,
    /// When this run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the current stage's hold began (canary pods ready at its weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<Time>,
    /// When the stage was last analysed (or its hold began); the next analysis is one step interval later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<Time>,
    /// When the gates were last checked early within the stage (`analysis.checkInterval`): a failure there counts
    /// toward `failureLimit` at once; a pass never advances the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_quick_check_at: Option<Time>,
    /// When the phase or stage last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_at: Option<Time>,
    /// The run fails if it makes no progress (phase or stage change) by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,
    /// Last value of the `perf.operator.dev/canary-command` annotation acted on (each value is acted on once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<String>,
    /// What is happening, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Latest analyses, newest first (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<AnalysisRecord>,
    /// The gate holding the run, when one does: `confirm-rollout` (phase `Waiting`), `confirm-traffic-increase` or
    /// `confirm-promotion` (the checks keep running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::HookType>,
    /// The last call of each webhook in this run, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRecord>,
}

/// The last call of one webhook.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookRecord {
    /// The webhook's name in `analysis.webhooks`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: crate::HookType,
    /// When it was called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// It answered with a 2xx status.
    pub succeeded: bool,
    /// The HTTP status it answered, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why it did not succeed (no answer, refused by the egress allow-list, the start of its answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phases of a canary run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CanaryPhase {
    /// No run: the primary serves the target's template.
    #[default]
    Idle,
    /// A new template waits for its `confirm-rollout` webhooks before its run starts (no deadline).
    Waiting,
    /// First sight: the primary is being created from the current template; nothing is rolled out.
    Initializing,
    /// Canary (and primary) pods are being scaled to the stage's counts.
    WaitingForPods,
    /// Holding a stage for the step interval, then analysing it.
    Progressing,
    /// Every stage passed (or promote was asked): the primary takes the new template.
    Promoting,
    /// The primary serves the new template; the canary is scaled to zero.
    Succeeded,
    /// Analysis failed or the run was aborted: the canary is scaled to zero, final for this template.
    RolledBack,
    /// The progress deadline passed: the canary is scaled to zero, final for this template.
    Failed,
}

/// One analysis of a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRecord {
    /// When it ran.
    pub at: Option<Time>,
    /// Zero-based stage index.
    pub stage_index: u32,
    /// Weight of the stage in percent.
    pub weight: u32,
    /// Outcome of the whole analysis.
    pub verdict: CheckVerdict,
    /// One entry per check.
    #[serde(default)]
    pub checks: Vec<CheckRecord>,
}

/// Result of one check of an analysis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// Check name: `requests`, `p99-latency`, `error-rate` or a custom metric's name.
    pub name: String,
    /// Value Prometheus returned, in the threshold's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Bound it was compared with, e.g. `< 150 ms`.
    pub threshold: String,
    /// Pass, fail or no data.
    pub verdict: CheckVerdict,
    /// Why, for fail and no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Verdict of a check or an analysis.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CheckVerdict {
    Pass,
    Fail,
    /// No value, too few requests, or Prometheus unreachable; never a pass.
    #[default]
    NoData,
}
