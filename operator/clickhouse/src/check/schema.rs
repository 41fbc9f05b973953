//! The checks that need the live table: columns that exist, codecs that fit their column's type, engines that
//! take projections, and the server's own reading of each piece ([`crate::proof`]). An object that fails one is
//! refused (never sent); the others on the table still are.

use super::reread::Piece;
use crate::observe::LiveTable;
use crate::validate::{DesiredCodec, DesiredIndex, DesiredProjection};
use std::collections::BTreeSet;

/// Projection modes that let the collapsing and replacing engines keep projections.
const PROJECTION_MODES: [&str; 3] = ["'drop'", "'rebuild'", "'ignore'"];

/// Why `p` cannot be added to `table`, if it cannot.
pub fn projection(p: &DesiredProjection, table: &LiveTable) -> Option<String> {
    if let Some(reason) = table.reread_refusal(&Piece::Projection, &p.query) {
        return Some(reason);
    }
    if let Some(reason) = engine_refuses_projections(table) {
        return Some(reason);
    }
    missing_columns(&p.columns, table).or_else(|| super::conversions::refusal(&p.query, &table.columns))
}

/// Why `x` cannot be added to `table`, if it cannot.
pub fn index(x: &DesiredIndex, table: &LiveTable) -> Option<String> {
    table
        .reread_refusal(&Piece::Expression, &x.expression)
        .or_else(|| missing_columns(&x.columns, table))
        .or_else(|| super::conversions::refusal(&crate::canon::expression_query(&x.expression), &table.columns))
}

/// Why `c` cannot be set on `table`, if it cannot (a missing column is reported by the plan itself).
pub fn codec(c: &DesiredCodec, table: &LiveTable) -> Option<String> {
    let column = table.columns.get(&c.column).filter(|col| !col.data_type.is_empty())?;
    super::codec::fits(&c.chain, &column.data_type).err()
}

/// Columns in `columns` the table does not have.
pub fn missing_columns(columns: &BTreeSet<String>, table: &LiveTable) -> Option<String> {
    let missing: Vec<&str> =
        columns.iter().filter(|c| !table.columns.contains_key(c.as_str())).map(String::as_str).collect();
    match missing.as_slice() {
        [] => None,
        [one] => Some(format!("column `{one}` does not exist on this table")),
        many => Some(format!(
            "columns {} do not exist on this table",
            many.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Plain MergeTree takes projections; the replacing, collapsing, summing and aggregating variants only with the
/// table setting `deduplicate_merge_projection_mode` set to drop, rebuild or ignore (the server default, throw,
/// refuses ADD PROJECTION).
fn engine_refuses_projections(table: &LiveTable) -> Option<String> {
    let engine = table.engine.trim_start_matches("Replicated").trim_start_matches("Shared");
    if engine == "MergeTree" {
        return None;
    }
    let mode = setting(&table.engine_full, "deduplicate_merge_projection_mode");
    if mode.is_some_and(|m| PROJECTION_MODES.contains(&m)) {
        return None;
    }
    Some(format!(
        "engine {} takes projections only with the table setting deduplicate_merge_projection_mode = 'rebuild' \
         (or 'drop'); it is {}",
        table.engine,
        mode.unwrap_or("'throw' (the server default)")
    ))
}

/// The value of table setting `name` in `engine_full` (`... SETTINGS a = 1, name = 'x'`), as written.
fn setting<'a>(engine_full: &'a str, name: &str) -> Option<&'a str> {
    let (_, settings) = engine_full.rsplit_once(" SETTINGS ")?;
    settings.split(", ").find_map(|kv| {
        let (k, v) = kv.split_once(" = ")?;
        (k.trim() == name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::LiveColumn;

    fn table(engine: &str, engine_full: &str) -> LiveTable {
        let columns = [("k", "UInt64"), ("s", "String")]
            .iter()
            .map(|(n, t)| (n.to_string(), LiveColumn { data_type: t.to_string(), codec: String::new() }))
            .collect();
        LiveTable { engine: engine.into(), engine_full: engine_full.into(), columns, ..Default::default() }
    }

    fn projection_on(columns: &[&str]) -> DesiredProjection {
        DesiredProjection {
            name: "p".into(),
            query: "SELECT k, count() GROUP BY k".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn engines_and_columns_decide_what_can_be_added() {
        let p = projection_on(&["k"]);
        assert_eq!(projection(&p, &table("MergeTree", "MergeTree ORDER BY k")), None);
        assert_eq!(projection(&p, &table("ReplicatedMergeTree", "ReplicatedMergeTree('/p', 'r') ORDER BY k")), None);
        let throw = table("ReplacingMergeTree", "ReplacingMergeTree ORDER BY k SETTINGS index_granularity = 8192");
        assert!(projection(&p, &throw).unwrap().contains("deduplicate_merge_projection_mode"));
        let rebuild = table(
            "ReplacingMergeTree",
            "ReplacingMergeTree ORDER BY k SETTINGS index_granularity = 8192, deduplicate_merge_projection_mode = 'rebuild'",
        );
        assert_eq!(projection(&p, &rebuild), None);
        let p = projection_on(&["k", "nope", "gone"]);
        let message = projection(&p, &table("MergeTree", "")).unwrap();
        assert!(message.contains("`gone`, `nope`"), "{message}");
    }
}
