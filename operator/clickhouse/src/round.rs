//! One round, in three steps the controller calls: [`decide`] (pure) what to send against an observed schema,
//! [`apply`] it and report, or [`unreachable_status`] when the schema could not be read.

use crate::diff::{self, ObjectKey, TablePlan};
use crate::error::{Error, Result};
use crate::observe::{LiveSchema, LiveTable};
use crate::send::{self, Target};
use crate::validate::{self, DesiredTable};
use crate::{Credentials, client, status};
use clickhouse::Client;
use perf_operator_api::clickhouse::ClickHouseSpec;
use perf_operator_api::status::{ClickHouseStatus, ManagedObject, ObjectStatus};
use std::collections::BTreeMap;

/// What one round would send to one table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRound {
    pub name: String,
    /// Known before sending (missing table, engine without projections): nothing is sent to this table.
    pub error: Option<String>,
    /// Against the live table: the actions in execution order, conflicts and progress. Empty with `error`.
    pub plan: TablePlan,
}

/// What one round would send, per table, against the live schema. Pure data: printing it sends nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundPlan {
    /// Declared tables in spec order, then live tables that only have records left (objects to prune).
    pub tables: Vec<TableRound>,
    /// The operator's records from the previous status: what it may drop.
    pub managed: Vec<ManagedObject>,
    /// The validated spec the plan was made from; the report after sending is made against it.
    desired: Vec<DesiredTable>,
    /// Each declared table's objects as the last round left them (remembered failures).
    previous: BTreeMap<String, Vec<ObjectStatus>>,
}

impl RoundPlan {
    /// Number of statements the round would send.
    pub fn statements(&self) -> usize {
        self.tables.iter().map(|t| t.plan.actions.len()).sum()
    }
}

/// Pure: plans every table against `live`, with the records of `previous`. An error is an invalid spec.
pub fn decide(spec: &ClickHouseSpec, live: &LiveSchema, previous: Option<&ClickHouseStatus>) -> Result<RoundPlan> {
    let desired = validate::desired(spec)?;
    let managed = previous.map(|p| p.managed.clone()).unwrap_or_default();
    let previous: BTreeMap<String, Vec<ObjectStatus>> =
        previous.map(|p| p.tables.iter().map(|t| (t.name.clone(), t.objects.clone())).collect()).unwrap_or_default();
    let objects = |name: &str| previous.get(name).map(Vec::as_slice).unwrap_or_default();
    let declared = desired
        .iter()
        .map(|d| table_round(spec, &d.name, Some(d), live.tables.get(&d.name), &managed, objects(&d.name)));
    let pruned = record_only_tables(&desired, &managed)
        .into_iter()
        .filter_map(|name| live.tables.get(&name).map(|t| table_round(spec, &name, None, Some(t), &managed, &[])));
    let tables = declared.chain(pruned).collect();
    Ok(RoundPlan { tables, managed, desired, previous })
}

fn table_round(
    spec: &ClickHouseSpec,
    name: &str,
    desired: Option<&DesiredTable>,
    live: Option<&LiveTable>,
    managed: &[ManagedObject],
    previous: &[ObjectStatus],
) -> TableRound {
    let failed = |error| TableRound { name: name.to_string(), error: Some(error), plan: TablePlan::default() };
    match live {
        None => failed(missing_table(&spec.database, name)),
        Some(t) if !t.is_merge_tree() => {
            failed(format!("table engine {} has no projections or skipping indexes (a MergeTree is needed)", t.engine))
        }
        Some(t) => TableRound {
            name: name.to_string(),
            error: None,
            plan: diff::plan(desired, t, &records(managed, name), previous, spec.prune),
        },
    }
}

/// Sends the plan's statements (each object on its own), observes again and reports every declared table.
pub async fn apply(
    http: &crate::Http,
    spec: &ClickHouseSpec,
    creds: Option<Credentials>,
    plan: RoundPlan,
) -> ClickHouseStatus {
    let client = client(http, spec, creds.as_ref());
    let RoundPlan { tables, mut managed, desired, previous } = plan;
    let errors = send_all(spec, &client, &tables, &mut managed).await;
    match crate::explain::observe_declared(&client, &spec.endpoint, &spec.database, &desired).await {
        Ok(live) => report(spec, &Round { desired: &desired, previous: &previous, live: &live }, managed, errors),
        Err(e) => unreachable(spec, managed, &e),
    }
}

/// What a round's report is made against.
struct Round<'a> {
    desired: &'a [DesiredTable],
    previous: &'a BTreeMap<String, Vec<ObjectStatus>>,
    live: &'a LiveSchema,
}

/// The errors of one table in one round.
#[derive(Default)]
struct TableErrors {
    /// Every problem, in order, for the table's message.
    messages: Vec<String>,
    /// The failed statements' messages by object.
    objects: BTreeMap<ObjectKey, String>,
}

/// Sends every table's actions; returns each table's errors: the one known before sending, then every failed
/// statement. After an error that every statement would share, the remaining tables are not sent to.
async fn send_all(
    spec: &ClickHouseSpec,
    client: &Client,
    tables: &[TableRound],
    managed: &mut Vec<ManagedObject>,
) -> BTreeMap<String, TableErrors> {
    let mut errors: BTreeMap<String, TableErrors> = BTreeMap::new();
    let mut stopped: Option<String> = None;
    let deadline = tokio::time::Instant::now() + send::ROUND_DEADLINE;
    for t in tables {
        let problems = errors.entry(t.name.clone()).or_default();
        problems.messages.extend(t.error.iter().cloned());
        if t.plan.actions.is_empty() {
            continue;
        }
        if let Some(reason) = &stopped {
            problems.messages.push(format!("{} statement(s) not sent: {reason}", t.plan.actions.len()));
            continue;
        }
        let target = Target { client, endpoint: &spec.endpoint, database: &spec.database, table: &t.name, deadline };
        let steps = send::send(&target, &t.plan.actions, managed).await;
        for (action, step) in t.plan.actions.iter().zip(&steps) {
            let send::Step::Failed(e) = step else { continue };
            problems.messages.push(e.to_string());
            if e.stops_round() {
                stopped = Some(e.to_string());
            } else {
                problems.objects.entry(action.object()).or_insert_with(|| e.to_string());
            }
        }
    }
    errors
}

/// The status when the server could not be read this round: every declared table Failed with `error`, the
/// records of `previous` kept (losing them would forbid a later prune).
pub fn unreachable_status(
    spec: &ClickHouseSpec,
    previous: Option<&ClickHouseStatus>,
    error: &Error,
) -> ClickHouseStatus {
    unreachable(spec, previous.map(|p| p.managed.clone()).unwrap_or_default(), error)
}

fn unreachable(spec: &ClickHouseSpec, managed: Vec<ManagedObject>, error: &Error) -> ClickHouseStatus {
    tracing::warn!(category = error.category(), %error, "ClickHouse round failed");
    let tables = spec.tables.iter().map(|t| status::failed(&t.name, error.to_string())).collect();
    ClickHouseStatus { tables, managed }
}

/// Per declared table: a fresh plan against what the server has now, with the errors of this round; a refused
/// statement is remembered on its object so it is not resent until something changes.
fn report(
    spec: &ClickHouseSpec,
    round: &Round,
    mut managed: Vec<ManagedObject>,
    mut errors: BTreeMap<String, TableErrors>,
) -> ClickHouseStatus {
    diff::refresh_managed(&mut managed, round.live);
    let tables = round
        .desired
        .iter()
        .map(|d| {
            let errors = errors.remove(&d.name).unwrap_or_default();
            match round.live.tables.get(&d.name) {
                Some(t) if t.is_merge_tree() => {
                    let previous = round.previous.get(&d.name).map(Vec::as_slice).unwrap_or_default();
                    let mut plan = diff::plan(Some(d), t, &records(&managed, &d.name), previous, spec.prune);
                    remember_failures(&mut plan, &errors.objects);
                    let mut status = status::table_status(&d.name, &plan, &errors.messages);
                    status.queries = d.queries.iter().filter_map(|q| t.explains.get(&q.name).cloned()).collect();
                    status
                }
                _ if !errors.messages.is_empty() => status::failed(&d.name, errors.messages.join("; ")),
                _ => status::failed(&d.name, missing_table(&spec.database, &d.name)),
            }
        })
        .collect();
    ClickHouseStatus { tables, managed }
}

/// Marks the objects whose statement the server refused this round, with what was sent and what was live.
fn remember_failures(plan: &mut TablePlan, failed: &BTreeMap<ObjectKey, String>) {
    for (key, attempt) in &plan.attempts {
        let Some(message) = failed.get(key) else { continue };
        let Some(o) = plan.objects.iter_mut().find(|o| o.kind == key.kind && o.name == key.name) else { continue };
        o.state = diff::FAILED.to_string();
        o.message = Some(message.clone());
        o.failed = Some(attempt.clone());
    }
}

/// Tables that only have records left (objects to prune), each once, by name.
pub(crate) fn record_only_tables(desired: &[DesiredTable], managed: &[ManagedObject]) -> Vec<String> {
    let mut names: Vec<String> =
        managed.iter().filter(|m| !desired.iter().any(|d| d.name == m.table)).map(|m| m.table.clone()).collect();
    names.sort();
    names.dedup();
    names
}

pub(crate) fn records(managed: &[ManagedObject], table: &str) -> Vec<ManagedObject> {
    managed.iter().filter(|m| m.table == table).cloned().collect()
}

pub(crate) fn missing_table(database: &str, table: &str) -> String {
    format!("table `{database}`.`{table}` does not exist")
}

#[cfg(test)]
#[path = "round_tests.rs"]
mod tests;
