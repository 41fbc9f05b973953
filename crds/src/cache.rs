//! The `cache` section: a Redis for the service and the TTL classes it should use.

use crate::{PolicyRef, SecretKeyRef};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Redis cache of the service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(crate::policy_candidate::NEEDS_POLICY_RULE).message("cache.candidate: a candidate is compared with the active policy: set spec.cache.policy beside it").field_path(".candidate"))]
pub struct CacheSpec {
    /// Which Redis to use: one the operator provisions, or an external one.
    pub redis: RedisSpec,
    /// TTL classes the app uses, published in the app contract ConfigMap. Names are unique.
    #[serde(default)]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ttl_classes: Vec<TtlClass>,
    /// Optional WASM policy that adapts TTLs to observed cache behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// A policy run in the shadow of `policy` on the same input: compared with it each round, never published
    /// (`kubectl perf policy promote` makes it the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<crate::PolicyCandidate>,
}

/// Exactly one of `provision` or `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.provision) != has(self.external)").message("cache.redis: exactly one of provision or external must be set"))]
pub struct RedisSpec {
    /// A Redis the operator runs next to the service (Deployment, Service, password Secret, config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<RedisProvision>,
    /// A Redis that already exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<RedisExternal>,
}

/// A Redis provisioned by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisProvision {
    /// Container image.
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// `maxmemory`: a Kubernetes quantity of bytes, e.g. `256Mi`, `1.5Gi`, `512M` or `129e6` (read as Kubernetes
    /// reads a container's memory, rounded up to whole bytes; `m`, milli, is refused). The container limit adds 25 %
    /// headroom.
    #[serde(default = "default_max_memory")]
    #[schemars(length(max = 32), regex(pattern = crate::quantity::BYTES_PATTERN))]
    pub max_memory: String,
    /// `maxmemory-policy` when memory is full.
    #[serde(default)]
    pub eviction_policy: EvictionPolicy,
    /// `maxclients`: also the cap of the Redis connection pools.
    #[serde(default = "default_max_clients")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_clients: u32,
    /// Delete the Redis objects with the profile. `false` keeps them (a migration to another profile or to a Redis
    /// of one's own): before the profile goes, its finalizer takes the profile's owner reference off the Redis
    /// Deployment or StatefulSet, Service, Secret and `-config` ConfigMap and marks them
    /// `perf.operator.dev/orphaned-from: <namespace>/<profile>` (event `RedisKept`). A persistent Redis's claim
    /// stays either way.
    #[serde(default = "default_true")]
    pub delete_with_profile: bool,
    /// A Prometheus exporter beside Redis (a sidecar reading it over localhost with the Secret's password), its
    /// port named `metrics` on the Redis Service. Turning it on or off restarts Redis once (a new pod template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<RedisExporter>,
    /// Keep the cache across restarts: Redis runs as a StatefulSet writing its data (AOF and/or RDB) to a
    /// PersistentVolumeClaim. Without it Redis runs as a Deployment with no persistence. Turning it on or off
    /// restarts Redis once (the workload changes kind); one replica, so no PodDisruptionBudget (it could only block
    /// every drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<RedisPersistence>,
    /// After a password rotation (annotation `perf.operator.dev/rotate-redis-password` set to a new value), how long
    /// the previous password keeps working beside the new one, so apps move over without a failed connection.
    #[serde(default = "default_rotation_grace")]
    #[schemars(schema_with = "crate::duration::duration_schema")]
    pub rotation_grace: String,
}

fn default_rotation_grace() -> String {
    "10m".into()
}

/// Where and how a provisioned Redis persists its data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisPersistence {
    /// What Redis writes: `aof` (append-only file, fsync every second: at most about a second of writes lost),
    /// `rdb` (snapshots after 1 change in an hour, 100 in 5 minutes or 10 000 in a minute), or `both`.
    #[serde(default)]
    pub mode: PersistenceMode,
    /// Size of the PersistentVolumeClaim, a Kubernetes quantity of at least `1Mi`, e.g. `2Gi`, `1.5Gi` or `500M`.
    /// Fixed once the claim exists (a StatefulSet's claim templates cannot change): a new size needs the claim
    /// resized by hand.
    #[serde(default = "default_persistence_size")]
    #[schemars(length(max = 32), regex(pattern = crate::quantity::BYTES_PATTERN))]
    pub size: String,
    /// StorageClass of the claim; default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// What a persistent Redis writes.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PersistenceMode {
    #[default]
    Aof,
    Rdb,
    Both,
}

fn default_persistence_size() -> String {
    "1Gi".into()
}

impl Default for RedisPersistence {
    fn default() -> Self {
        Self { mode: PersistenceMode::default(), size: default_persistence_size(), storage_class_name: None }
    }
}

/// The Redis exporter sidecar.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisExporter {
    /// Container image of a redis_exporter (reads `REDIS_ADDR` and `REDIS_PASSWORD`).
    #[serde(default = "default_exporter_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Port the exporter serves `/metrics` on.
    #[serde(default = "default_exporter_port")]
    #[schemars(range(min = 1024, max = 65535))]
    #[x_kube(validation = Rule::new("self != 6379").message("exporter.port must differ from Redis's 6379"))]
    pub port: u16,
}

fn default_exporter_image() -> String {
    "oliver006/redis_exporter:v1.62.0".into()
}
fn default_exporter_port() -> u16 {
    9121
}

impl Default for RedisExporter {
    fn default() -> Self {
        Self { image: default_exporter_image(), port: default_exporter_port() }
    }
}

fn default_redis_image() -> String {
    "redis:7.2-alpine".into()
}
fn default_max_memory() -> String {
    "256Mi".into()
}
fn default_max_clients() -> u32 {
    10_000
}
pub(crate) fn default_true() -> bool {
    true
}

impl Default for RedisProvision {
    fn default() -> Self {
        Self {
            image: default_redis_image(),
            max_memory: default_max_memory(),
            eviction_policy: EvictionPolicy::default(),
            max_clients: default_max_clients(),
            delete_with_profile: true,
            exporter: None,
            persistence: None,
            rotation_grace: default_rotation_grace(),
        }
    }
}

/// Redis eviction policies (`maxmemory-policy`).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionPolicy {
    #[default]
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    Noeviction,
}

impl EvictionPolicy {
    /// The value Redis expects in `maxmemory-policy`.
    pub fn as_redis(self) -> &'static str {
        match self {
            Self::AllkeysLru => "allkeys-lru",
            Self::AllkeysLfu => "allkeys-lfu",
            Self::AllkeysRandom => "allkeys-random",
            Self::VolatileLru => "volatile-lru",
            Self::VolatileLfu => "volatile-lfu",
            Self::VolatileRandom => "volatile-random",
            Self::VolatileTtl => "volatile-ttl",
            Self::Noeviction => "noeviction",
        }
    }
}

/// An existing Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisExternal {
    /// `redis://` or `rediss://` URL without a password, e.g. `redis://redis.cache:6379/0`.
    #[schemars(regex(pattern = r"^rediss?://[^\s@]+$"), length(max = 2048))]
    pub address: String,
    /// Secret key holding the password, if the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// `maxclients` of that server, to cap the Redis pools; when unset, the `maxclients` the server reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_clients: Option<u32>,
}

/// A TTL class: a name the app uses for a kind of data, and how long to keep it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TtlClass {
    /// Class name, e.g. `riskModel`.
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$"))]
    pub name: String,
    /// Time to live in seconds, > 0.
    #[schemars(range(min = 1, max = 31536000))]
    pub ttl_seconds: u32,
}
