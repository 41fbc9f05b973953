//! Reads that help the report: the server's own formatting of definitions (for [`crate::canon`]), and the
//! EXPLAIN of each representative query (which projection the server reads, what each index skips).

use crate::canon::{self, Formatted};
use crate::check::reread::Piece;
use crate::error::{Error, Result};
use crate::observe::{LiveSchema, bounded};
use crate::validate::{DesiredQuery, DesiredTable};
use clickhouse::Client;
use perf_operator_api::status::{GranuleUse, IndexUse, QueryReport};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct FormattedRow {
    text: String,
    formatted: Option<String>,
}

/// `'...'` with ClickHouse's escapes: the texts come from the server or from checked syntax trees, and are only
/// ever given to the formatter, which parses and never runs them.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Every declared and live definition of the declared tables, and the texts of the proof that the server reads
/// each declared piece as the checker did ([`crate::proof`]), formatted by the server in one query. The
/// comparison of definitions falls back on the local forms when the server cannot format; the proof does not: a
/// piece that is not read back is refused (each existing table gets `reread`, empty answers included).
pub async fn format_definitions(
    client: &Client,
    endpoint: &str,
    database: &str,
    schema: &mut LiveSchema,
    desired: &[DesiredTable],
) {
    let mut texts = Vec::new();
    for d in desired {
        let Some(t) = schema.tables.get(&d.name) else { continue };
        texts.extend(d.projections.iter().map(|p| p.query.clone()));
        texts.extend(d.indexes.iter().map(|x| canon::expression_query(&x.expression)));
        texts.extend(t.projections.values().cloned());
        texts.extend(t.indexes.values().map(|x| canon::expression_query(&x.expression)));
        texts.extend(crate::proof::texts(database, d));
    }
    texts.sort();
    texts.dedup();
    let formatted = if texts.is_empty() { Formatted::new() } else { format(client, endpoint, &texts).await };
    for d in desired {
        if let Some(t) = schema.tables.get_mut(&d.name) {
            t.reread = Some(crate::proof::readings(database, d, &formatted));
            t.formatted = formatted.clone();
        }
    }
}

/// The server's formatting of each of `texts` (one query; its parser only, nothing is run). Texts it cannot
/// parse are missing; so are all of them when the server cannot format (an older server, or no answer).
async fn format(client: &Client, endpoint: &str, texts: &[String]) -> Formatted {
    let list = texts.iter().map(|t| literal(t)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT text, formatQuerySingleLineOrNull(text) AS formatted FROM (SELECT arrayJoin([{list}]) AS text)"
    );
    let fetched =
        bounded("formatQuerySingleLineOrNull", crate::rows::fetch_all::<FormattedRow>(client.query_raw(&sql))).await;
    match fetched.and_then(|r| r.map_err(|e| Error::from_client(endpoint, "formatQuerySingleLineOrNull", e))) {
        Ok(rows) => rows.into_iter().filter_map(|r| r.formatted.map(|f| (r.text, f))).collect(),
        Err(e) => {
            tracing::debug!(%e, "the server cannot format definitions; comparing the local canonical forms");
            Formatted::new()
        }
    }
}

/// The EXPLAIN statement sent for a representative query.
pub(crate) fn statement(sql: &str) -> String {
    format!("EXPLAIN json = 1, indexes = 1, projections = 1 {sql}")
}

#[derive(Deserialize)]
struct ExplainRow {
    explain: String,
}

/// EXPLAIN of every representative query of the declared tables that exist, into each table's `explains`.
pub async fn explain_queries(
    client: &Client,
    endpoint: &str,
    database: &str,
    schema: &mut LiveSchema,
    desired: &[DesiredTable],
) {
    for d in desired {
        let Some(t) = schema.tables.get_mut(&d.name) else { continue };
        for q in &d.queries {
            // Sent only once the server has been shown to read it as checked ([`crate::proof`]).
            let piece = Piece::Query { database: database.to_string(), table: d.name.clone() };
            let checked = match t.reread_refusal(&piece, &q.sql) {
                Some(refusal) => Err(refusal),
                None => explain(client, endpoint, q).await,
            };
            let report = checked.unwrap_or_else(|message| QueryReport {
                name: q.name.clone(),
                message: Some(message),
                ..Default::default()
            });
            t.explains.insert(q.name.clone(), report);
        }
    }
}

async fn explain(client: &Client, endpoint: &str, q: &DesiredQuery) -> std::result::Result<QueryReport, String> {
    let sql = statement(&q.sql);
    let rows = bounded(&sql, crate::rows::fetch_all::<ExplainRow>(client.query_raw(&sql)))
        .await
        .and_then(|r| r.map_err(|e| Error::from_client(endpoint, &sql, e)))
        .map_err(|e| e.to_string())?;
    let text: String = rows.into_iter().map(|r| r.explain).collect::<Vec<_>>().join("\n");
    let plan: Value = serde_json::from_str(&text).map_err(|e| format!("EXPLAIN answered with no JSON plan: {e}"))?;
    Ok(report(q, &plan))
}

/// The report from an EXPLAIN json plan: the first ReadFromMergeTree step (the table or the projection read).
pub fn report(q: &DesiredQuery, plan: &Value) -> QueryReport {
    let mut out = QueryReport { name: q.name.clone(), ..Default::default() };
    let Some(read) = find_read(plan) else {
        out.message = Some("the plan reads no MergeTree table (answered from metadata or constants)".into());
        return out;
    };
    let description = read.get("Description").and_then(Value::as_str).unwrap_or_default();
    // The table read shows as `db.table`; a projection read by its bare name.
    if !description.is_empty() && !description.contains('.') {
        out.projection = Some(description.to_string());
    }
    out.expected_projection_used = q.expect_projection.as_ref().map(|p| out.projection.as_deref() == Some(p.as_str()));
    for index in read.get("Indexes").and_then(Value::as_array).into_iter().flatten() {
        let granules = granules(index);
        match index.get("Type").and_then(Value::as_str) {
            Some("PrimaryKey") => out.primary_key = granules,
            Some("Skip") => {
                let name = index.get("Name").and_then(Value::as_str).unwrap_or_default().to_string();
                if let Some(granules) = granules {
                    out.indexes.push(IndexUse { name, granules });
                }
            }
            _ => {}
        }
    }
    out
}

fn granules(index: &Value) -> Option<GranuleUse> {
    let initial = index.get("Initial Granules")?.as_u64()?;
    let selected = index.get("Selected Granules")?.as_u64()?;
    let skipped = initial.saturating_sub(selected);
    // Nothing to read skips nothing.
    let skipped_percent =
        (skipped.saturating_mul(100)).checked_div(initial).map_or(0, |p| u32::try_from(p).unwrap_or(100));
    Some(GranuleUse { initial, selected, skipped_percent })
}

/// Depth-first: the first node whose type is ReadFromMergeTree.
fn find_read(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(items) => items.iter().find_map(find_read),
        Value::Object(map) => {
            if map.get("Node Type").and_then(Value::as_str) == Some("ReadFromMergeTree") {
                return Some(v);
            }
            map.get("Plan").and_then(find_read).or_else(|| map.get("Plans").and_then(find_read))
        }
        _ => None,
    }
}

/// Reads the live schema of the spec's database, with the formatting and EXPLAIN reports of `desired`.
pub async fn observe_declared(
    client: &Client,
    endpoint: &str,
    database: &str,
    desired: &[DesiredTable],
) -> Result<LiveSchema> {
    let mut schema = crate::observe::observe(client, endpoint, database).await?;
    format_definitions(client, endpoint, database, &mut schema, desired).await;
    explain_queries(client, endpoint, database, &mut schema, desired).await;
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_says_which_projection_is_read_and_what_each_index_skips() {
        let plan = serde_json::json!([{"Plan": {"Node Type": "Expression", "Plans": [{"Node Type": "ReadFromMergeTree",
            "Description": "p_customer", "Indexes": [
                {"Type": "PrimaryKey", "Initial Granules": 24, "Selected Granules": 1},
                {"Type": "Skip", "Name": "idx_region", "Initial Granules": 1, "Selected Granules": 1}]}]}}]);
        let q = DesiredQuery {
            name: "per_customer".into(),
            sql: String::new(),
            expect_projection: Some("p_customer".into()),
            columns: Default::default(),
        };
        let r = report(&q, &plan);
        assert_eq!(r.projection.as_deref(), Some("p_customer"));
        assert_eq!(r.expected_projection_used, Some(true));
        assert_eq!(r.primary_key, Some(GranuleUse { initial: 24, selected: 1, skipped_percent: 95 }));
        assert_eq!(r.indexes[0].granules.skipped_percent, 0);
        let table = serde_json::json!([{"Plan": {"Node Type": "ReadFromMergeTree", "Description": "db.t"}}]);
        let r = report(&q, &table);
        assert_eq!((r.projection, r.expected_projection_used), (None, Some(false)));
    }
}
