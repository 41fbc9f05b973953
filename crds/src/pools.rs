//! The `pools` section: connection pool sizes for ClickHouse, PostgreSQL and Redis.

use crate::{CredentialsSecretRef, SecretKeyRef};
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
    /// PostgreSQL pool; with `server`, capped by what that PostgreSQL allows, read live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresPoolSpec>,
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
    /// Overrides what the server allows (the live PostgreSQL of `server`, the profile's ClickHouse, the Redis
    /// `maxclients`) and is checked against it: a declared value above it is a warning.
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

/// The PostgreSQL pool: the bounds and load of any pool, and the server whose limits cap it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgresPoolSpec {
    #[serde(flatten)]
    pub pool: PoolSpec,
    /// The PostgreSQL the pool connects to. Each reconcile reads its `max_connections`, reserved connections and
    /// connections in use; the pool's share is what is left after the reserved ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<PostgresServer>,
}

/// Schema pattern of a PostgreSQL host: a DNS name or IPv4 address, or an IPv6 address (two colons or more); no
/// scheme, port, path or credentials.
pub const HOST_PATTERN: &str =
    r"^([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$";

/// A live PostgreSQL, named as libpq and CloudNativePG's `connectionParameters` name it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.caSecretRef) || self.sslMode == 'verify-full'").message("pools.postgres.server.caSecretRef needs sslMode verify-full"))]
pub struct PostgresServer {
    /// Host name or IP address, e.g. `risk-db-rw.risk.svc` (a CloudNativePG cluster's read-write Service).
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$"
        )
    )]
    pub host: String,
    /// Port. Default 5432.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
    /// Database to connect to. Default `postgres`.
    #[serde(default = "default_database")]
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// Secret with the user name and password (keys `username` and `password` unless set), e.g. CloudNativePG's
    /// `<cluster>-app`. The user needs no privilege: the limits and `pg_stat_activity` are readable by any role.
    pub credentials_secret_ref: CredentialsSecretRef,
    /// TLS, as libpq's `sslmode`: `disable`; `prefer` (default: TLS when the server offers it); `require` (TLS,
    /// certificate not checked); `verify-full` (TLS, certificate checked against `caSecretRef` or the public web
    /// roots, and the host name).
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// PEM CA certificate(s) that sign the server's certificate, for `verify-full` (e.g. CloudNativePG's
    /// `<cluster>-ca`, key `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

fn default_port() -> u32 {
    5432
}
fn default_database() -> String {
    "postgres".into()
}

/// libpq's `sslmode` values the operator supports.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyFull,
}

impl SslMode {
    /// The value as libpq writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl PostgresServer {
    /// `host:port/database`, as status and messages name the server (never with credentials).
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{host}:{}/{}", self.port, self.database)
    }
}
