//! Sends a table's actions in order and keeps the operator's records of what it created.

use crate::diff::{Action, CODEC, INDEX, PROJECTION};
use crate::error::{Error, Result};
use crate::observe::bounded;
use crate::sql::{is_mutation_id, render};
use clickhouse::Client;
use perf_operator_api::status::ManagedObject;

/// Target of one apply: where and which table.
pub struct Target<'a> {
    pub client: &'a Client,
    pub endpoint: &'a str,
    pub database: &'a str,
    pub table: &'a str,
}

/// Runs `actions` in order, stopping at the first failure (later actions depend on earlier ones, e.g. MATERIALIZE
/// on ADD). `managed` is updated after each success so a failure part-way loses no record. Returns the number of
/// statements sent.
pub async fn apply(target: &Target<'_>, actions: &[Action], managed: &mut Vec<ManagedObject>) -> Result<usize> {
    for (sent, action) in actions.iter().enumerate() {
        if let Action::KillMutation { mutation_id } = action
            && !is_mutation_id(mutation_id)
        {
            return Err(Error::Statement {
                statement: "KILL MUTATION".into(),
                message: format!("server returned an unexpected mutation id {mutation_id:?}"),
            });
        }
        let statement = render(target.database, target.table, action);
        tracing::info!(table = target.table, %statement, "applying");
        // Materialisation is a mutation: return at once (the server default, but chdb and some profiles wait)
        // and follow progress in system.mutations.
        // query_raw: `?` in an expression is SQL (ternary, string), not a client-side bind placeholder.
        let query = target.client.query_raw(&statement).with_setting("mutations_sync", "0");
        bounded(&statement, query.execute()).await?.map_err(|e| Error::from_client(target.endpoint, &statement, e))?;
        record(target.table, action, managed);
        tracing::debug!(table = target.table, sent = sent + 1, "applied");
    }
    Ok(actions.len())
}

fn record(table: &str, action: &Action, managed: &mut Vec<ManagedObject>) {
    let find = |managed: &mut Vec<ManagedObject>, kind: &str, name: &str| {
        managed.iter().position(|m| m.table == table && m.kind == kind && m.name == name)
    };
    let mut upsert = |kind: &str, name: &str, definition: &str| {
        let entry = ManagedObject {
            table: table.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            definition: definition.to_string(),
            live: String::new(),
            materialized: false,
        };
        match find(managed, kind, name) {
            Some(i) => managed[i] = entry,
            None => managed.push(entry),
        }
    };
    match action {
        Action::AddProjection(p) => upsert(PROJECTION, &p.name, &p.canonical),
        Action::AddIndex(x) => upsert(INDEX, &x.name, &x.canonical),
        Action::ModifyCodec(c) => upsert(CODEC, &c.column, &c.canonical),
        Action::DropProjection { name } | Action::DropIndex { name } => {
            managed.retain(|m| !(m.table == table && m.kind != CODEC && &m.name == name));
        }
        Action::MaterializeProjection { name } | Action::MaterializeIndex { name } => {
            let kind = if matches!(action, Action::MaterializeProjection { .. }) { PROJECTION } else { INDEX };
            if let Some(i) = find(managed, kind, name) {
                managed[i].materialized = true;
            }
        }
        Action::KillMutation { .. } => {}
    }
}
