//! Validation of the spec into [`DesiredTable`]s: the only values that are ever rendered into SQL. Expressions
//! and queries go through [`crate::check`] (a SQL parser and allow-lists); index types and codecs through
//! allow-lists. The same checks serve `validate`, `plan` and the reconcile.

use crate::check::{self, codec};
use crate::error::{Error, Result};
use perf_operator_api::clickhouse::{ClickHouseSpec, TableSpec};
use std::collections::BTreeSet;

/// A validated projection.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredProjection {
    pub name: String,
    /// The SELECT as sent: rendered from the checked syntax tree.
    pub query: String,
    /// Columns it reads.
    pub columns: BTreeSet<String>,
}

/// A validated data-skipping index.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredIndex {
    pub name: String,
    /// The expression as sent: rendered from the checked syntax tree.
    pub expression: String,
    /// Type as rendered, e.g. `bloom_filter(0.01)`.
    pub index_type: String,
    pub granularity: u32,
    /// Columns it reads.
    pub columns: BTreeSet<String>,
}

/// A validated column codec.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredCodec {
    pub column: String,
    /// The chain as declared, in the server's spelling.
    pub chain: Vec<codec::Codec>,
    /// Codec chain as rendered inside `CODEC(...)`, e.g. `DoubleDelta, ZSTD(1)`.
    pub codec: String,
}

/// A validated representative query.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredQuery {
    pub name: String,
    /// The SELECT with its table as `` `database`.`table` ``, for `EXPLAIN`.
    pub sql: String,
    pub expect_projection: Option<String>,
    pub columns: BTreeSet<String>,
}

/// A validated table.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DesiredTable {
    pub name: String,
    pub projections: Vec<DesiredProjection>,
    pub indexes: Vec<DesiredIndex>,
    pub codecs: Vec<DesiredCodec>,
    pub queries: Vec<DesiredQuery>,
}

/// Validates the whole spec; the error names the first bad field (see [`problems`] for all of them).
pub fn desired(spec: &ClickHouseSpec) -> Result<Vec<DesiredTable>> {
    let (tables, mut errors) = collect(spec);
    if errors.is_empty() { Ok(tables) } else { Err(errors.remove(0)) }
}

/// Every problem of the spec, each naming its field; empty when the spec is valid.
pub fn problems(spec: &ClickHouseSpec) -> Vec<Error> {
    collect(spec).1
}

/// ClickHouse's own databases: no profile alters them.
pub const SERVER_DATABASES: [&str; 2] = ["system", "information_schema"];

/// Whether `database` is one of the server's own, whatever its case.
pub fn is_server_database(database: &str) -> bool {
    SERVER_DATABASES.iter().any(|d| d.eq_ignore_ascii_case(database))
}

fn collect(spec: &ClickHouseSpec) -> (Vec<DesiredTable>, Vec<Error>) {
    let field = "spec.clickhouse.database";
    let mut errors: Vec<Error> = check_identifier(field, &spec.database).err().into_iter().collect();
    if is_server_database(&spec.database) {
        let message = format!("`{}` is the server's own database; name the database of your tables", spec.database);
        errors.push(Error::invalid(field, message));
    }
    let mut seen = BTreeSet::new();
    let mut tables = Vec::with_capacity(spec.tables.len());
    for (i, t) in spec.tables.iter().enumerate() {
        let field = format!("spec.clickhouse.tables[{i}]");
        if !seen.insert(t.name.as_str()) {
            errors.push(Error::invalid(format!("{field}.name"), format!("table {:?} is listed twice", t.name)));
        }
        let (table, problems) = desired_table(&field, &spec.database, t);
        errors.extend(problems);
        tables.push(table);
    }
    (tables, errors)
}

fn desired_table(field: &str, database: &str, t: &TableSpec) -> (DesiredTable, Vec<Error>) {
    let mut errors = Vec::new();
    if let Err(e) = check_identifier(&format!("{field}.name"), &t.name) {
        errors.push(e);
    }
    let mut names = BTreeSet::new();
    let mut out = DesiredTable { name: t.name.clone(), ..Default::default() };
    for (j, p) in t.projections.iter().enumerate() {
        let f = format!("{field}.projections[{j}]");
        let checked = unique(&mut names, &f, &p.name).and_then(|()| check::projection(&format!("{f}.query"), &p.query));
        match checked {
            Ok(c) => out.projections.push(DesiredProjection { name: p.name.clone(), query: c.sql, columns: c.columns }),
            Err(e) => errors.push(e),
        }
    }
    for (j, x) in t.indexes.iter().enumerate() {
        let f = format!("{field}.indexes[{j}]");
        match desired_index(&f, &mut names, x) {
            Ok(index) => out.indexes.push(index),
            Err(e) => errors.push(e),
        }
    }
    let mut columns = BTreeSet::new();
    for (j, c) in t.codecs.iter().enumerate() {
        let f = format!("{field}.codecs[{j}]");
        let checked = check_identifier(&format!("{f}.column"), &c.column).and_then(|()| {
            if !columns.insert(c.column.as_str()) {
                return Err(Error::invalid(format!("{f}.column"), format!("column {:?} is listed twice", c.column)));
            }
            let chain = codec::parse(&c.codec).and_then(|chain| codec::chain_rules(&chain).map(|()| chain));
            chain.map_err(|m| Error::invalid(format!("{f}.codec"), m))
        });
        match checked {
            Ok(chain) => {
                out.codecs.push(DesiredCodec { column: c.column.clone(), codec: codec::render(&chain), chain })
            }
            Err(e) => errors.push(e),
        }
    }
    let mut query_names = BTreeSet::new();
    for (j, q) in t.queries.iter().enumerate() {
        let f = format!("{field}.queries[{j}]");
        let checked = unique(&mut query_names, &f, &q.name)
            .and_then(|()| check::query(&format!("{f}.query"), &q.query, database, &t.name));
        match checked {
            Ok(c) => out.queries.push(DesiredQuery {
                name: q.name.clone(),
                sql: c.sql,
                expect_projection: q.expect_projection.clone(),
                columns: c.columns,
            }),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

fn desired_index(
    f: &str,
    names: &mut BTreeSet<String>,
    x: &perf_operator_api::clickhouse::IndexSpec,
) -> Result<DesiredIndex> {
    unique(names, f, &x.name)?;
    let checked = check::expression(&format!("{f}.expression"), &x.expression)?;
    let index_type = index_type(&format!("{f}.type"), &x.index_type)?;
    check::index_type::granularity(x.granularity).map_err(|m| Error::invalid(format!("{f}.granularity"), m))?;
    Ok(DesiredIndex {
        name: x.name.clone(),
        expression: checked.sql,
        index_type,
        granularity: x.granularity,
        columns: checked.columns,
    })
}

fn unique(names: &mut BTreeSet<String>, field: &str, name: &str) -> Result<()> {
    check_identifier(&format!("{field}.name"), name)?;
    if !names.insert(name.to_string()) {
        // Projections and indexes share one namespace on a table (queries have their own).
        return Err(Error::invalid(format!("{field}.name"), format!("{name:?} is used twice on this table")));
    }
    Ok(())
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,127}$`, the CRD's identifier pattern.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_identifier(field: &str, s: &str) -> Result<()> {
    if is_identifier(s) {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{s:?} is not an identifier (letters, digits, `_`; at most 128)")))
    }
}

/// The normalised form of an index, as compared with the live one.
pub fn index_definition(canonical_expression: &str, index_type: &str, granularity: u32) -> String {
    format!("{canonical_expression} TYPE {index_type} GRANULARITY {granularity}")
}

/// An index type from the allow-list with parameters the server takes and within our bounds
/// ([`check::index_type`]); returns it as rendered.
pub fn index_type(field: &str, text: &str) -> Result<String> {
    check::index_type::check(text).map_err(|m| Error::invalid(field, m))
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
