//! Sends a table's actions and keeps the operator's records of what it created.
//!
//! Every object stands alone: a refused statement skips only the later statements of the same object
//! (MATERIALIZE X after a failed ADD X), and the other objects' statements still run. Only an error that every
//! later statement would share (server gone, credentials refused, no answer) stops the sending.

use crate::diff::{Action, CODEC, INDEX, ObjectKey, PROJECTION};
use crate::error::{Error, Result};
use crate::observe::bounded;
use crate::sql::{is_mutation_id, render};
use clickhouse::Client;
use perf_operator_api::status::ManagedObject;
use std::collections::BTreeSet;

/// Target of one send: where and which table.
pub struct Target<'a> {
    pub client: &'a Client,
    pub endpoint: &'a str,
    pub database: &'a str,
    pub table: &'a str,
    /// No statement starts after this (one started runs to its own bound, [`crate::observe::TIMEOUT`]: cut off
    /// midway, the server might apply it with no record of it here).
    pub deadline: tokio::time::Instant,
}

/// How long one round may go on starting statements: a server that accepts each slowly (or a plan of many) holds
/// the reconcile at most this long plus one statement's bound; what is left is sent next round.
pub const ROUND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// What became of one action.
#[derive(Debug)]
pub enum Step {
    /// The server accepted the statement.
    Sent,
    /// The statement was refused (or could not be sent); the object's later actions are skipped.
    Failed(Error),
    /// Not sent: an earlier action of the same object failed, or the sending stopped.
    Skipped,
}

impl Step {
    /// The error of a failed step.
    pub fn error(self) -> Option<Error> {
        match self {
            Step::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// The dependency rule, pure: an action may be sent unless an earlier action of its object failed or an error
/// stopped the sending.
#[derive(Debug, Default)]
pub struct Gate {
    failed: BTreeSet<ObjectKey>,
    stopped: bool,
}

impl Gate {
    /// Whether `action` may be sent now.
    pub fn allows(&self, action: &Action) -> bool {
        !self.stopped && !self.failed.contains(&action.object())
    }

    /// Records the result of sending `action`: a failure closes its object, one that stops the round closes all.
    pub fn record(&mut self, action: &Action, error: Option<&Error>) {
        if let Some(e) = error {
            self.failed.insert(action.object());
            self.stopped |= e.stops_round();
        }
    }

    /// Whether an error stopped the sending.
    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

/// Sends `actions` in order under the dependency rule; returns one step per action. `managed` is updated after
/// each accepted statement, so a failure loses no record.
pub async fn send(target: &Target<'_>, actions: &[Action], managed: &mut Vec<ManagedObject>) -> Vec<Step> {
    let mut gate = Gate::default();
    let mut steps = Vec::with_capacity(actions.len());
    for action in actions {
        if !gate.allows(action) {
            steps.push(Step::Skipped);
            continue;
        }
        let result = if tokio::time::Instant::now() >= target.deadline {
            Err(Error::RoundDeadline { seconds: ROUND_DEADLINE.as_secs() })
        } else {
            send_one(target, action).await
        };
        gate.record(action, result.as_ref().err());
        steps.push(match result {
            Ok(()) => {
                record(target.table, action, managed);
                Step::Sent
            }
            Err(error) => {
                tracing::warn!(table = target.table, category = error.category(), %error, "statement failed");
                Step::Failed(error)
            }
        });
    }
    steps
}

/// The failures among `steps`.
pub fn failures(steps: &[Step]) -> impl Iterator<Item = &Error> {
    steps.iter().filter_map(|s| match s {
        Step::Failed(e) => Some(e),
        _ => None,
    })
}

async fn send_one(target: &Target<'_>, action: &Action) -> Result<()> {
    if let Action::KillMutation { mutation_id, .. } = action
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
    bounded(&statement, query.execute()).await?.map_err(|e| Error::from_client(target.endpoint, &statement, e))
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
        Action::AddProjection(p) => upsert(PROJECTION, &p.name, &p.query),
        Action::AddIndex(x) => upsert(INDEX, &x.name, &crate::diff::index_text(x)),
        Action::ModifyCodec(c) => upsert(CODEC, &c.column, &c.codec),
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

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
