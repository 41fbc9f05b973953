//! Applies declared ClickHouse projections, skipping indexes and codecs to live tables.
//!
//! Pipeline per round: validate the spec ([`validate`], pure) -> observe the live schema ([`observe`]) -> plan
//! per table ([`diff`], pure) -> send the statements ([`apply`]) -> observe again and report ([`status`]).
//! What the operator created is recorded in `ClickHouseStatus::managed`; nothing else is ever dropped.

pub mod apply;
pub mod diff;
pub mod error;
pub mod observe;
pub mod sql;
pub mod status;
pub mod validate;

pub use error::{Error, Result};
pub use observe::LiveSchema;
pub use status::{Outcome, outcome};

use apply::Target;
use clickhouse::Client;
use observe::LiveTable;
use perf_operator_api::clickhouse::ClickHouseSpec;
use perf_operator_api::status::{ClickHouseStatus, ManagedObject};
use std::collections::BTreeMap;
use validate::DesiredTable;

/// ClickHouse user and password, read from the profile's Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // The password never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

fn client(spec: &ClickHouseSpec, creds: Option<&Credentials>) -> Client {
    let client = Client::default().with_url(spec.endpoint.as_str());
    match creds {
        Some(c) => client.with_user(c.user.as_str()).with_password(c.password.as_str()),
        None => client,
    }
}

/// Reads the live schema of the spec's database (used by `plan --clickhouse URL`).
pub async fn observe_live(spec: &ClickHouseSpec, creds: Option<Credentials>) -> Result<LiveSchema> {
    validate::desired(spec)?;
    observe::observe(&client(spec, creds.as_ref()), &spec.endpoint, &spec.database).await
}

/// The statements a round would send, against `live` or, without it, against tables that have none of the
/// declared objects yet. Lines starting with `--` explain tables that cannot be planned.
pub fn plan_ddl(spec: &ClickHouseSpec, live: Option<&LiveSchema>) -> Result<Vec<String>> {
    let desired = validate::desired(spec)?;
    let mut out = Vec::new();
    let empty = LiveTable { engine: "MergeTree".into(), ..Default::default() };
    for d in &desired {
        let table = match live {
            None => &empty,
            Some(schema) => match schema.tables.get(&d.name) {
                Some(t) => t,
                None => {
                    out.push(format!("-- {}", missing_table(&spec.database, &d.name)));
                    continue;
                }
            },
        };
        let plan = diff::plan(Some(d), table, &[], spec.prune);
        out.extend(plan.conflicts.iter().map(|c| format!("-- {}: {c}", d.name)));
        out.extend(plan.actions.iter().map(|a| sql::render(&spec.database, &d.name, a)));
    }
    Ok(out)
}

/// One round for all tables: observe, plan, apply, observe, report. A table that fails is reported in its
/// `TableStatus` and the others carry on; an invalid spec is an error before anything is sent. `previous` is the
/// last status written (its `managed` records say what the operator may drop).
pub async fn reconcile(
    spec: &ClickHouseSpec,
    creds: Option<Credentials>,
    previous: Option<&ClickHouseStatus>,
) -> Result<ClickHouseStatus> {
    let desired = validate::desired(spec)?;
    let client = client(spec, creds.as_ref());
    let mut managed = previous.map(|p| p.managed.clone()).unwrap_or_default();
    let mut errors = BTreeMap::new();
    match observe::observe(&client, &spec.endpoint, &spec.database).await {
        Ok(live) => {
            for (name, d) in tables(&desired, &managed) {
                let target =
                    Target { client: &client, endpoint: &spec.endpoint, database: &spec.database, table: &name };
                if let Err(e) = round(&target, d, live.tables.get(&name), spec.prune, &mut managed).await {
                    errors.insert(name, e);
                }
            }
        }
        Err(e) => return Ok(unreachable(&desired, managed, &e)),
    }
    let live = match observe::observe(&client, &spec.endpoint, &spec.database).await {
        Ok(live) => live,
        Err(e) => return Ok(unreachable(&desired, managed, &e)),
    };
    diff::refresh_managed(&mut managed, &live);
    let tables = desired
        .iter()
        .map(|d| match (live.tables.get(&d.name), errors.remove(&d.name)) {
            (Some(t), error) if t.is_merge_tree() => {
                let records = records(&managed, &d.name);
                status::table_status(&d.name, &diff::plan(Some(d), t, &records, spec.prune), error)
            }
            (_, Some(error)) => status::failed(&d.name, error),
            (_, None) => status::failed(&d.name, missing_table(&spec.database, &d.name)),
        })
        .collect();
    Ok(ClickHouseStatus { tables, managed })
}

/// Finalizer: with `prune`, drops every projection and index the operator created; without, touches nothing.
/// Returns the status with the records that are left (empty once all is dropped).
pub async fn cleanup(
    spec: &ClickHouseSpec,
    creds: Option<Credentials>,
    previous: Option<&ClickHouseStatus>,
) -> Result<ClickHouseStatus> {
    let mut status = previous.cloned().unwrap_or_default();
    if !spec.prune || status.managed.iter().all(|m| m.kind == diff::CODEC) {
        return Ok(status);
    }
    let client = client(spec, creds.as_ref());
    let live = observe::observe(&client, &spec.endpoint, &spec.database).await?;
    let mut managed = status.managed.clone();
    for (name, _) in tables(&[], &managed) {
        let Some(t) = live.tables.get(&name) else { continue };
        let target = Target { client: &client, endpoint: &spec.endpoint, database: &spec.database, table: &name };
        let plan = diff::plan(None, t, &records(&managed, &name), true);
        apply::apply(&target, &plan.actions, &mut managed).await?;
    }
    managed.retain(|m| m.kind != diff::CODEC && live.tables.contains_key(&m.table));
    status.managed = managed;
    Ok(status)
}

/// Plans and applies one table; an error is the table's message.
async fn round(
    target: &Target<'_>,
    desired: Option<&DesiredTable>,
    live: Option<&LiveTable>,
    prune: bool,
    managed: &mut Vec<ManagedObject>,
) -> Result<(), String> {
    let Some(live) = live else {
        return if desired.is_some() { Err(missing_table(target.database, target.table)) } else { Ok(()) };
    };
    if !live.is_merge_tree() {
        return Err(format!(
            "table engine {} has no projections or skipping indexes (a MergeTree is needed)",
            live.engine
        ));
    }
    let plan = diff::plan(desired, live, &records(managed, target.table), prune);
    apply::apply(target, &plan.actions, managed).await.map(drop).map_err(|e| e.to_string())
}

/// Declared tables plus tables that only have records left (objects to prune), each once.
fn tables<'a>(desired: &'a [DesiredTable], managed: &[ManagedObject]) -> Vec<(String, Option<&'a DesiredTable>)> {
    let mut out: BTreeMap<String, Option<&DesiredTable>> = managed.iter().map(|m| (m.table.clone(), None)).collect();
    out.extend(desired.iter().map(|d| (d.name.clone(), Some(d))));
    out.into_iter().collect()
}

fn records(managed: &[ManagedObject], table: &str) -> Vec<ManagedObject> {
    managed.iter().filter(|m| m.table == table).cloned().collect()
}

fn missing_table(database: &str, table: &str) -> String {
    format!("table `{database}`.`{table}` does not exist")
}

/// Every declared table failed with `error`; records are kept untouched.
fn unreachable(desired: &[DesiredTable], managed: Vec<ManagedObject>, error: &Error) -> ClickHouseStatus {
    tracing::warn!(category = error.category(), %error, "ClickHouse round failed");
    let tables = desired.iter().map(|d| status::failed(&d.name, error.to_string())).collect();
    ClickHouseStatus { tables, managed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_operator_api::clickhouse::{IndexSpec, ProjectionSpec, TableSpec};

    fn spec() -> ClickHouseSpec {
        let table = TableSpec {
            name: "events".into(),
            projections: vec![ProjectionSpec {
                name: "p".into(),
                query: "SELECT model, count() GROUP BY model".into(),
            }],
            indexes: vec![IndexSpec {
                name: "i".into(),
                expression: "latency_ms".into(),
                index_type: "minmax".into(),
                granularity: 1,
            }],
            ..Default::default()
        };
        ClickHouseSpec {
            endpoint: "http://ch:8123".into(),
            database: "risk".into(),
            tables: vec![table],
            ..Default::default()
        }
    }

    #[test]
    fn offline_plan_is_the_ddl_against_an_empty_schema() {
        assert_eq!(
            plan_ddl(&spec(), None).unwrap(),
            [
                "ALTER TABLE `risk`.`events` ADD PROJECTION `p` (SELECT model, count() GROUP BY model)",
                "ALTER TABLE `risk`.`events` ADD INDEX `i` latency_ms TYPE minmax GRANULARITY 1",
                "ALTER TABLE `risk`.`events` MATERIALIZE PROJECTION `p`",
                "ALTER TABLE `risk`.`events` MATERIALIZE INDEX `i`",
            ]
        );
        assert_eq!(
            plan_ddl(&spec(), Some(&LiveSchema::default())).unwrap(),
            ["-- table `risk`.`events` does not exist"]
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials { user: "ops".into(), password: "hunter2".into() };
        assert_eq!(format!("{c:?}"), r#"Credentials { user: "ops", password: "<redacted>" }"#);
    }
}
