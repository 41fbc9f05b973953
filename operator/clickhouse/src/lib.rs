//! Applies declared ClickHouse projections, skipping indexes and codecs to live tables.
//!
//! A round is three calls, so the controller can observe every source with its own deadline first:
//! [`observe_live`] (the system tables, [`observe`]) -> [`decide`] (pure: validate the spec ([`validate`]) and
//! plan per table ([`diff`])) -> [`apply`] (send the statements, each object on its own ([`send`]), observe again
//! and report ([`status`])). When the server cannot be read, [`unreachable_status`] is the round's status.
//! What the operator created is recorded in `ClickHouseStatus::managed`; nothing else is ever dropped.
//! [`limits::read`] reads the server's connection limits, the cap of the app's ClickHouse pool.

pub mod canon;
pub mod check;
pub mod diff;
pub mod error;
pub mod explain;
mod http;
pub mod limits;
pub mod observe;
pub mod proof;
pub mod round;
mod rows;
pub mod send;
pub mod sql;
pub mod status;
pub mod validate;

pub use error::{Error, Result};
pub use observe::LiveSchema;
pub use round::{RoundPlan, TableRound, apply, decide, unreachable_status};
pub use status::{Health, Outcome, outcome};

use clickhouse::Client;
use observe::LiveTable;
use perf_operator_api::clickhouse::ClickHouseSpec;
use perf_operator_api::status::ClickHouseStatus;
use send::{Step, Target};

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

/// One HTTP client for every ClickHouse server the process reaches: its connections are pooled per endpoint and
/// reused from one round to the next, instead of a new pool (and TLS handshake) per call. Cheap to clone.
/// Connections go where its egress rule allows; answers are bounded by [`http::MAX_ANSWER_BYTES`].
#[derive(Clone)]
pub struct Http(Client);

impl Http {
    /// The operator's client: connections only where `egress` allows.
    pub fn new(egress: perf_egress::Egress) -> Self {
        Self(http::client(egress))
    }

    /// A client with no egress rule, for the CLI run by a user against their own servers (and tests); answers are
    /// still bounded. Named, not a `Default`: the operator's clients are always built under its rule.
    pub fn open() -> Self {
        Self::new(perf_egress::Egress::open())
    }
}

pub use http::MAX_ANSWER_BYTES;

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http")
    }
}

pub(crate) fn client(http: &Http, spec: &ClickHouseSpec, creds: Option<&Credentials>) -> Client {
    let client = http.0.clone().with_url(spec.endpoint.as_str());
    match creds {
        Some(c) => client.with_user(c.user.as_str()).with_password(c.password.as_str()),
        None => client,
    }
}

/// Reads the live schema of the spec's database (used by `plan --clickhouse URL` and by each round), with the
/// server's formatting of the definitions and the EXPLAIN reports. An invalid spec is an error before anything
/// is sent.
pub async fn observe_live(http: &Http, spec: &ClickHouseSpec, creds: Option<Credentials>) -> Result<LiveSchema> {
    let desired = validate::desired(spec)?;
    explain::observe_declared(&client(http, spec, creds.as_ref()), &spec.endpoint, &spec.database, &desired).await
}

/// What `plan` shows of the ClickHouse section.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DdlPlan {
    /// The statements a round would send, in order.
    pub ddl: Vec<String>,
    /// Declared objects and tables that would not be applied, and why; `plan` exits non-zero when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// What could not be checked (offline: column types, that the columns exist, the engine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
}

/// The statements a round would send ([`decide`] without records), against `live` or, without it, against
/// MergeTree tables that have the columns the declaration names (types unknown) and none of its objects.
pub fn plan_ddl(spec: &ClickHouseSpec, live: Option<&LiveSchema>) -> Result<DdlPlan> {
    let desired = validate::desired(spec)?;
    let mut out = DdlPlan::default();
    let assumed;
    let live = match live {
        Some(live) => live,
        None => {
            assumed = LiveSchema { tables: desired.iter().map(|d| (d.name.clone(), assumed_table(d))).collect() };
            out.unchecked.push(
                "offline: column types, that the columns exist, the tables' engines and that the server reads each \
                 query and expression as the checker does are checked against a server only (plan --clickhouse URL)"
                    .into(),
            );
            &assumed
        }
    };
    let plan = decide(spec, live, None)?;
    for t in &plan.tables {
        out.refused.extend(t.error.iter().map(|e| format!("{}: {e}", t.name)));
        out.refused.extend(t.plan.conflicts.iter().map(|c| format!("{}: {c}", t.name)));
        out.ddl.extend(t.plan.actions.iter().map(|a| sql::render(&spec.database, &t.name, a)));
    }
    Ok(out)
}

/// Offline stand-in for a declared table: a MergeTree with every column the declaration names, of unknown type.
fn assumed_table(d: &validate::DesiredTable) -> LiveTable {
    let columns = d
        .projections
        .iter()
        .flat_map(|p| p.columns.iter())
        .chain(d.indexes.iter().flat_map(|x| x.columns.iter()))
        .chain(d.queries.iter().flat_map(|q| q.columns.iter()))
        .chain(d.codecs.iter().map(|c| &c.column))
        .map(|c| (c.clone(), observe::LiveColumn::default()))
        .collect();
    LiveTable { engine: "MergeTree".into(), columns, ..Default::default() }
}

/// Finalizer: with `prune`, drops every projection and index the operator created; without, touches nothing.
/// Each object is dropped on its own; the first failure is the error (the finalizer stays and this is retried).
/// Returns the status with the records that are left (empty once all is dropped).
pub async fn cleanup(
    http: &Http,
    spec: &ClickHouseSpec,
    creds: Option<Credentials>,
    previous: Option<&ClickHouseStatus>,
) -> Result<ClickHouseStatus> {
    let mut status = previous.cloned().unwrap_or_default();
    if !spec.prune || status.managed.iter().all(|m| m.kind == diff::CODEC) {
        return Ok(status);
    }
    let client = client(http, spec, creds.as_ref());
    let live = observe::observe(&client, &spec.endpoint, &spec.database).await?;
    let mut managed = status.managed.clone();
    let deadline = tokio::time::Instant::now() + send::ROUND_DEADLINE;
    for name in round::record_only_tables(&[], &managed) {
        let Some(t) = live.tables.get(&name) else { continue };
        let target =
            Target { client: &client, endpoint: &spec.endpoint, database: &spec.database, table: &name, deadline };
        let plan = diff::plan(None, t, &round::records(&managed, &name), &[], true);
        if let Some(error) = send::send(&target, &plan.actions, &mut managed).await.into_iter().find_map(Step::error) {
            return Err(error);
        }
    }
    managed.retain(|m| m.kind != diff::CODEC && live.tables.contains_key(&m.table));
    status.managed = managed;
    Ok(status)
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
    fn offline_plan_is_the_full_ddl_against_the_declared_tables() {
        let mut spec = spec();
        spec.tables[0]
            .codecs
            .push(perf_operator_api::clickhouse::CodecSpec { column: "timestamp".into(), codec: "Delta, ZSTD".into() });
        let offline = plan_ddl(&spec, None).unwrap();
        assert_eq!(
            offline.ddl,
            [
                "ALTER TABLE `risk`.`events` ADD PROJECTION `p` (SELECT model, count() GROUP BY model)",
                "ALTER TABLE `risk`.`events` ADD INDEX `i` latency_ms TYPE minmax GRANULARITY 1",
                "ALTER TABLE `risk`.`events` MODIFY COLUMN `timestamp` CODEC(Delta, ZSTD)",
                "ALTER TABLE `risk`.`events` MATERIALIZE PROJECTION `p`",
                "ALTER TABLE `risk`.`events` MATERIALIZE INDEX `i`",
            ]
        );
        assert!(offline.refused.is_empty());
        assert!(offline.unchecked[0].contains("column types"), "{:?}", offline.unchecked);

        let missing = plan_ddl(&spec, Some(&LiveSchema::default())).unwrap();
        assert_eq!(missing.refused, ["events: table `risk`.`events` does not exist"]);
        assert!(missing.ddl.is_empty() && missing.unchecked.is_empty());
        let log = observe::LiveTable { engine: "Log".into(), ..Default::default() };
        let live = LiveSchema { tables: [("events".to_string(), log)].into() };
        assert_eq!(
            plan_ddl(&spec, Some(&live)).unwrap().refused,
            ["events: table engine Log has no projections or skipping indexes (a MergeTree is needed)"]
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials { user: "ops".into(), password: "hunter2".into() };
        assert_eq!(format!("{c:?}"), r#"Credentials { user: "ops", password: "<redacted>" }"#);
    }
}
