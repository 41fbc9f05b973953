//! Per-table status and the overall `ClickHouseReady` outcome. Pure.

use crate::diff::TablePlan;
use perf_operator_api::status::{ClickHouseStatus, TableStatus};

/// `TableStatus::state` values.
pub const IN_SYNC: &str = "InSync";
pub const APPLYING: &str = "Applying";
pub const MATERIALIZING: &str = "Materializing";
pub const FAILED: &str = "Failed";

/// Status of a table from a fresh plan and the errors of this round (each failed statement, in order).
pub fn table_status(name: &str, plan: &TablePlan, errors: &[String]) -> TableStatus {
    let mut problems = errors.to_vec();
    problems.extend(plan.conflicts.iter().cloned());
    problems.extend(plan.failed_mutations.iter().cloned());
    let state = if !problems.is_empty() {
        FAILED
    } else if plan.pending > 0 {
        APPLYING
    } else if plan.running_mutations > 0 {
        MATERIALIZING
    } else {
        IN_SYNC
    };
    TableStatus {
        name: name.to_string(),
        state: state.to_string(),
        applied: plan.applied,
        pending: plan.pending,
        running_mutations: plan.running_mutations,
        parts_to_do: plan.parts_to_do,
        message: (!problems.is_empty()).then(|| problems.join("; ")),
        objects: plan.objects.clone(),
        queries: Vec::new(),
    }
}

/// A table that could not be planned (unreachable server, missing table).
pub fn failed(name: &str, message: String) -> TableStatus {
    TableStatus { name: name.to_string(), state: FAILED.into(), message: Some(message), ..Default::default() }
}

/// How the component is doing, for the operator to branch on (never on `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Every table in sync.
    Ready,
    /// Changes pending or mutations running, none failed.
    Progressing,
    /// At least one table failed.
    Failed,
}

/// What the operator puts in the `ClickHouseReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Condition status: every table in sync.
    pub ready: bool,
    /// `Ready` when `ready`, `Failed` when `reason` is `Failed`, else `Progressing`.
    pub health: Health,
    /// Condition reason: `InSync`, `Applying`, `Materializing` or `Failed` (worst table wins).
    pub reason: &'static str,
    /// For people: failed tables with their messages, else progress.
    pub message: String,
}

/// The overall outcome of a status.
pub fn outcome(status: &ClickHouseStatus) -> Outcome {
    let with = |state: &str| status.tables.iter().filter(|t| t.state == state).collect::<Vec<_>>();
    let failed = with(FAILED);
    if !failed.is_empty() {
        let message = failed
            .iter()
            .map(|t| format!("{}: {}", t.name, t.message.as_deref().unwrap_or("failed")))
            .collect::<Vec<_>>()
            .join("; ");
        return Outcome { ready: false, health: Health::Failed, reason: FAILED, message };
    }
    let applying = with(APPLYING);
    if !applying.is_empty() {
        let pending: u32 = applying.iter().map(|t| t.pending).sum();
        let message = format!("{pending} change(s) pending on {} table(s)", applying.len());
        return Outcome { ready: false, health: Health::Progressing, reason: APPLYING, message };
    }
    let materializing = with(MATERIALIZING);
    if !materializing.is_empty() {
        let running: u32 = materializing.iter().map(|t| t.running_mutations).sum();
        let parts: u64 = materializing.iter().map(|t| t.parts_to_do).sum();
        let message = format!("{running} mutation(s) running, {parts} part(s) to do");
        return Outcome { ready: false, health: Health::Progressing, reason: MATERIALIZING, message };
    }
    let message = format!("{} table(s) in sync", status.tables.len());
    Outcome { ready: true, health: Health::Ready, reason: IN_SYNC, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_table_decides_the_outcome() {
        let plan = TablePlan { applied: 2, running_mutations: 1, parts_to_do: 3, ..Default::default() };
        let materializing = table_status("a", &plan, &[]);
        assert_eq!(materializing.state, MATERIALIZING);
        let broken = failed("b", "table `db`.`b` does not exist".into());
        let status = ClickHouseStatus { tables: vec![materializing.clone(), broken], ..Default::default() };
        let o = outcome(&status);
        assert_eq!((o.ready, o.health, o.reason), (false, Health::Failed, FAILED));
        assert_eq!(o.message, "b: table `db`.`b` does not exist");
        let status = ClickHouseStatus { tables: vec![materializing], ..Default::default() };
        let o = outcome(&status);
        assert_eq!((o.ready, o.health, o.reason), (false, Health::Progressing, MATERIALIZING));
        assert_eq!(o.message, "1 mutation(s) running, 3 part(s) to do");
        let in_sync = table_status("a", &TablePlan { applied: 2, ..Default::default() }, &[]);
        let o = outcome(&ClickHouseStatus { tables: vec![in_sync], ..Default::default() });
        assert_eq!((o.ready, o.health, o.reason), (true, Health::Ready, IN_SYNC));
    }

    #[test]
    fn conflicts_and_failed_mutations_fail_the_table() {
        let plan = TablePlan {
            failed_mutations: vec!["mutation m (MATERIALIZE INDEX i) failed: boom".into()],
            ..Default::default()
        };
        let t = table_status("events", &plan, &[]);
        assert_eq!(t.state, FAILED);
        assert_eq!(t.message.as_deref(), Some("mutation m (MATERIALIZE INDEX i) failed: boom"));
        let ok = table_status("events", &TablePlan { applied: 3, ..Default::default() }, &[]);
        assert_eq!((ok.state.as_str(), ok.message), (IN_SYNC, None));
    }

    #[test]
    fn every_failed_statement_is_in_the_message() {
        let plan = TablePlan { applied: 2, pending: 2, ..Default::default() };
        let errors = ["statement `A` failed: no".to_string(), "statement `B` failed: neither".to_string()];
        let t = table_status("events", &plan, &errors);
        assert_eq!((t.state.as_str(), t.applied, t.pending), (FAILED, 2, 2));
        assert_eq!(t.message.as_deref(), Some("statement `A` failed: no; statement `B` failed: neither"));
    }
}
