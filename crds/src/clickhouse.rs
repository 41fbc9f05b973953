//! The `clickhouse` section: projections, data-skipping indexes and column codecs on live tables.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Schema pattern of a ClickHouse identifier the operator accepts (quoted with backticks when sent).
pub const IDENTIFIER_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// ClickHouse server and the tables to tune.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClickHouseSpec {
    /// HTTP(S) endpoint, e.g. `http://clickhouse.db:8123`.
    #[schemars(regex(pattern = r"^https?://[^\s@]+$"), length(max = 2048))]
    pub endpoint: String,
    /// Database holding the tables.
    #[serde(default = "default_database")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub database: String,
    /// Secret with the user name and password; never logged or put in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<ClickHouseCredentials>,
    /// Drop projections and indexes the operator created that are no longer in the spec (and, on profile
    /// deletion, all it created). Objects it did not create are never dropped.
    #[serde(default)]
    pub prune: bool,
    /// Tables to tune. Names are unique.
    #[serde(default)]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub tables: Vec<TableSpec>,
}

fn default_database() -> String {
    "default".into()
}

/// Secret holding ClickHouse credentials (the shared [`CredentialsSecretRef`]).
pub type ClickHouseCredentials = crate::CredentialsSecretRef;

/// Desired projections, indexes and codecs of one table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    /// Table name in `database`.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub name: String,
    /// Projections (`ADD PROJECTION name (query)`, then materialised).
    #[serde(default)]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub projections: Vec<ProjectionSpec>,
    /// Data-skipping indexes (`ADD INDEX name expr TYPE type GRANULARITY n`, then materialised).
    #[serde(default)]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub indexes: Vec<IndexSpec>,
    /// Column codecs (`MODIFY COLUMN c CODEC(...)`).
    #[serde(default)]
    #[schemars(length(max = 512), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["column"]))]
    pub codecs: Vec<CodecSpec>,
    /// Representative queries of this table: the operator runs `EXPLAIN indexes = 1, projections = 1` on each
    /// (never the query itself) and reports which projection is chosen and how many granules each index skips.
    #[serde(default)]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub queries: Vec<RepresentativeQuery>,
}

/// A query the table's projections and indexes are meant to speed up.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RepresentativeQuery {
    /// Name in status.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub name: String,
    /// One `SELECT ... FROM <this table>` with optional WHERE, GROUP BY, ORDER BY and LIMIT, e.g.
    /// `SELECT avg(score) FROM risk_assessments WHERE customer_id = 42`.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
    /// The projection this query should read; status says whether the server chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub expect_projection: Option<String>,
}

/// A projection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionSpec {
    /// Projection name.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub name: String,
    /// The projection's SELECT, e.g. `SELECT model, avg(score) GROUP BY model`.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
}

/// A data-skipping index.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexSpec {
    /// Index name.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub name: String,
    /// Indexed expression, e.g. `latency_ms` or `lower(model)`.
    #[schemars(length(min = 1, max = 4096))]
    pub expression: String,
    /// Index type with parameters: `minmax`, `set(100)`, `bloom_filter(0.01)`, `ngrambf_v1(3, 256, 2, 0)`,
    /// `tokenbf_v1(256, 2, 0)`.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^[a-z_0-9]+(\([0-9., ]*\))?$"))]
    pub index_type: String,
    /// Granules per index block, 1 to 1000 (a bloom filter is sized by the rows of the granules it covers).
    #[serde(default = "default_granularity")]
    #[schemars(range(min = 1, max = 1000))]
    pub granularity: u32,
}

fn default_granularity() -> u32 {
    1
}

impl Default for IndexSpec {
    fn default() -> Self {
        Self { name: String::new(), expression: String::new(), index_type: String::new(), granularity: 1 }
    }
}

/// Codec of one column.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CodecSpec {
    /// Column name.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub column: String,
    /// Codec chain as in `CODEC(...)`, e.g. `DoubleDelta, ZSTD(1)` or `Gorilla, LZ4`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9]+(\([0-9, ]*\))?(, ?[A-Za-z0-9]+(\([0-9, ]*\))?)*$"), length(max = 256))]
    pub codec: String,
}
