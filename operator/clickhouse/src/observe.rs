//! The live schema of one database, read from the system tables.

use crate::canon::{self, Formatted};
use crate::check::codec;
use crate::check::reread::Piece;
use crate::error::{Error, Result};
use crate::validate::index_definition;
use clickhouse::Client;
use perf_operator_api::status::QueryReport;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Bound on every query and statement: a server that accepts the connection and never answers must not stall
/// the reconcile loop.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// Live tables of one database, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveSchema {
    pub tables: BTreeMap<String, LiveTable>,
}

/// What one live table has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveTable {
    /// Engine, e.g. `MergeTree`, `ReplicatedMergeTree`.
    pub engine: String,
    /// Engine with its arguments and table settings, as `system.tables.engine_full`.
    pub engine_full: String,
    /// Columns by name.
    pub columns: BTreeMap<String, LiveColumn>,
    /// Projection queries by name.
    pub projections: BTreeMap<String, String>,
    /// Data-skipping indexes by name.
    pub indexes: BTreeMap<String, LiveIndex>,
    /// Mutations not yet done.
    pub mutations: Vec<LiveMutation>,
    /// Definitions (declared and live) as the server's formatter writes them; empty without one.
    pub formatted: Formatted,
    /// EXPLAIN reports of the declared representative queries, by name.
    pub explains: BTreeMap<String, QueryReport>,
    /// The server's reading of each declared piece of SQL ([`crate::proof`]); `None` when no server was asked
    /// (the offline plan), and then nothing is proven.
    pub reread: Option<crate::proof::Readings>,
}

/// A live column (offline stand-ins have an empty type: unknown).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveColumn {
    pub data_type: String,
    /// Codec chain without the `CODEC(...)` wrapper; empty for the server default.
    pub codec: String,
}

/// A live data-skipping index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveIndex {
    pub expression: String,
    /// Type with parameters, e.g. `bloom_filter(0.01)`.
    pub index_type: String,
    pub granularity: u64,
}

/// An unfinished mutation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveMutation {
    pub id: String,
    /// e.g. `MATERIALIZE INDEX i_latency` (the server may wrap it in parentheses).
    pub command: String,
    pub parts_to_do: u64,
    /// Why the last attempt failed; empty while it is healthy.
    pub fail_reason: String,
}

impl LiveTable {
    /// True for engines that have projections and skipping indexes.
    pub fn is_merge_tree(&self) -> bool {
        self.engine.ends_with("MergeTree")
    }

    /// Why the server's reading refuses declared piece `sent`; `None` when it reads it as the checker did, or when
    /// no server was asked (offline). A piece the server was asked about but did not answer for is refused.
    pub fn reread_refusal(&self, piece: &Piece, sent: &str) -> Option<String> {
        match self.reread.as_ref()?.get(&(piece.clone(), sent.to_string())) {
            Some(Ok(())) => None,
            Some(Err(refusal)) => Some(refusal.clone()),
            None => Some(
                "the server reads this differently: it was not read back (the server's formatter did not answer); \
                 nothing is sent for it"
                    .into(),
            ),
        }
    }

    /// Canonical definition of a live index, comparable with [`LiveTable::declared_index`].
    pub fn index_canonical(&self, name: &str) -> Option<String> {
        let x = self.indexes.get(name)?;
        let granularity = u32::try_from(x.granularity).unwrap_or(u32::MAX);
        Some(index_definition(&canon::expression(&x.expression, &self.formatted), &x.index_type, granularity))
    }

    /// Canonical form of a declared index on this table.
    pub fn declared_index(&self, x: &crate::validate::DesiredIndex) -> String {
        index_definition(&canon::expression(&x.expression, &self.formatted), &x.index_type, x.granularity)
    }

    /// Canonical live projection query.
    pub fn projection_canonical(&self, name: &str) -> Option<String> {
        self.projections.get(name).map(|q| canon::query(q, &self.formatted))
    }

    /// Canonical form of a declared projection query on this table.
    pub fn declared_projection(&self, query: &str) -> String {
        canon::query(query, &self.formatted)
    }

    /// Canonical live codec of a column (empty when the column has the default codec).
    pub fn codec_canonical(&self, column: &str) -> Option<String> {
        let c = self.columns.get(column)?;
        Some(match codec::parse(&c.codec) {
            Ok(chain) => codec::canonical(&chain, Some(&c.data_type)),
            Err(_) => c.codec.clone(),
        })
    }

    /// Canonical form of a declared codec on this table's column (default parameters for its type explicit).
    pub fn declared_codec(&self, c: &crate::validate::DesiredCodec) -> String {
        let data_type = self.columns.get(&c.column).map(|col| col.data_type.as_str()).filter(|t| !t.is_empty());
        codec::canonical(&c.chain, data_type)
    }

    /// The unfinished mutation materialising `kind` (`PROJECTION` or `INDEX`) `name`, if any.
    pub fn materialize_mutations<'a>(&'a self, kind: &'a str, name: &'a str) -> impl Iterator<Item = &'a LiveMutation> {
        self.mutations.iter().filter(move |m| {
            let words: Vec<&str> =
                m.command.split(|c: char| c.is_whitespace() || "()`,".contains(c)).filter(|w| !w.is_empty()).collect();
            words
                .windows(3)
                .any(|w| w[0].eq_ignore_ascii_case("MATERIALIZE") && w[1].eq_ignore_ascii_case(kind) && w[2] == name)
        })
    }
}

#[derive(Deserialize)]
struct TableRow {
    name: String,
    engine: String,
    engine_full: String,
}

#[derive(Deserialize)]
struct ColumnRow {
    table: String,
    name: String,
    data_type: String,
    codec: String,
}

#[derive(Deserialize)]
struct ProjectionRow {
    table: String,
    name: String,
    query: String,
}

#[derive(Deserialize)]
struct IndexRow {
    table: String,
    name: String,
    expr: String,
    type_full: String,
    granularity: u64,
}

#[derive(Deserialize)]
struct MutationRow {
    table: String,
    mutation_id: String,
    command: String,
    parts_to_do: i64,
    latest_fail_reason: String,
}

const TABLES: &str = "SELECT name, engine, engine_full FROM system.tables WHERE database = {db:String}";
const COLUMNS: &str = "SELECT table, name, type AS data_type, compression_codec AS codec \
    FROM system.columns WHERE database = {db:String}";
const PROJECTIONS: &str = "SELECT table, name, query FROM system.projections WHERE database = {db:String}";
const INDEXES: &str = "SELECT table, name, expr, type_full, toUInt64(granularity) AS granularity \
    FROM system.data_skipping_indices WHERE database = {db:String}";
const MUTATIONS: &str = "SELECT table, mutation_id, command, toInt64(parts_to_do) AS parts_to_do, latest_fail_reason \
    FROM system.mutations WHERE database = {db:String} AND is_done = 0 ORDER BY create_time, mutation_id";

/// Reads tables, columns, projections, indexes and unfinished mutations of `database`.
pub async fn observe(client: &Client, endpoint: &str, database: &str) -> Result<LiveSchema> {
    let mut schema = LiveSchema::default();
    for r in fetch::<TableRow>(client, endpoint, TABLES, database).await? {
        let t = LiveTable { engine: r.engine, engine_full: r.engine_full, ..Default::default() };
        schema.tables.insert(r.name, t);
    }
    for r in fetch::<ColumnRow>(client, endpoint, COLUMNS, database).await? {
        let codec = r.codec.strip_prefix("CODEC(").and_then(|c| c.strip_suffix(')')).unwrap_or(&r.codec).to_string();
        table(&mut schema, &r.table).columns.insert(r.name, LiveColumn { data_type: r.data_type, codec });
    }
    for r in fetch::<ProjectionRow>(client, endpoint, PROJECTIONS, database).await? {
        table(&mut schema, &r.table).projections.insert(r.name, r.query);
    }
    for r in fetch::<IndexRow>(client, endpoint, INDEXES, database).await? {
        let index = LiveIndex { expression: r.expr, index_type: r.type_full, granularity: r.granularity };
        table(&mut schema, &r.table).indexes.insert(r.name, index);
    }
    for r in fetch::<MutationRow>(client, endpoint, MUTATIONS, database).await? {
        let m = LiveMutation {
            id: r.mutation_id,
            command: r.command,
            parts_to_do: u64::try_from(r.parts_to_do).unwrap_or(0),
            fail_reason: crate::error::short(&r.latest_fail_reason),
        };
        table(&mut schema, &r.table).mutations.push(m);
    }
    Ok(schema)
}

fn table<'a>(schema: &'a mut LiveSchema, name: &str) -> &'a mut LiveTable {
    schema.tables.entry(name.to_string()).or_default()
}

async fn fetch<T>(client: &Client, endpoint: &str, sql: &str, database: &str) -> Result<Vec<T>>
where
    T: serde::de::DeserializeOwned,
{
    let query = client.query(sql).param("db", database);
    bounded(sql, crate::rows::fetch_all::<T>(query))
        .await
        .and_then(|r| r.map_err(|e| Error::from_client(endpoint, sql, e)))
}

/// `fut` bounded by [`TIMEOUT`].
pub(crate) async fn bounded<T>(statement: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .map_err(|_| Error::Timeout { statement: statement.to_string(), seconds: TIMEOUT.as_secs() })
}
