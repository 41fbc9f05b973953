//! The `pools` section: connection pool sizes for ClickHouse, PostgreSQL and Redis.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Connection pools the app should open. Each pool is published per app pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolsSpec {
    /// Number of app pods sharing the servers' connection limits. Default: the target's observed replicas
    /// (`plan` assumes 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub app_replicas: Option<u32>,
    /// ClickHouse pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<PoolSpec>,
    /// PostgreSQL pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PoolSpec>,
    /// Redis pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<PoolSpec>,
}

/// One pool: bounds, and optionally the load it must carry (the size is then derived by Little's law).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.min <= self.max").message("pool min must be <= max"))]
pub struct PoolSpec {
    /// Connections kept open per pod.
    #[schemars(range(min = 0, max = 10000))]
    pub min: u32,
    /// Most connections per pod.
    #[schemars(range(min = 1, max = 10000))]
    pub max: u32,
    /// Declared load; when set, the pool is sized to carry it within [min, max].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<PoolLoad>,
    /// Connections the server accepts in total (e.g. PostgreSQL `max_connections`); caps max * app replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub server_max_connections: Option<u32>,
    /// Share of the server's connections kept for others (admin, migrations), in percent.
    #[serde(default = "default_reserved")]
    #[schemars(range(min = 0, max = 90))]
    pub reserved_percent: u32,
}

fn default_reserved() -> u32 {
    10
}

/// Load a pool must carry, across all app pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolLoad {
    /// Peak queries per second across the service.
    #[x_kube(validation = Rule::new("self > 0.0").message("load.queriesPerSecond must be > 0"))]
    pub queries_per_second: f64,
    /// Mean time a query holds a connection, in milliseconds.
    #[x_kube(validation = Rule::new("self > 0.0").message("load.queryLatencyMs must be > 0"))]
    pub query_latency_ms: f64,
    /// Spare capacity over the computed concurrency, in percent.
    #[serde(default = "default_headroom")]
    #[schemars(range(min = 0, max = 1000))]
    pub headroom_percent: u32,
}

fn default_headroom() -> u32 {
    25
}
