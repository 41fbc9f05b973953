//! Desired vs live: the ordered actions for one table. Pure.

use crate::observe::LiveTable;
use crate::validate::{DesiredCodec, DesiredIndex, DesiredProjection, DesiredTable};
use perf_operator_api::status::ManagedObject;

/// `ManagedObject::kind` values.
pub const PROJECTION: &str = "Projection";
pub const INDEX: &str = "Index";
pub const CODEC: &str = "Codec";

/// One change to a table, in the order they must run.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Stop an unfinished mutation of an object about to be dropped (a failed one would block the table).
    KillMutation {
        mutation_id: String,
        object: ObjectKey,
    },
    DropProjection {
        name: String,
    },
    DropIndex {
        name: String,
    },
    AddProjection(DesiredProjection),
    AddIndex(DesiredIndex),
    ModifyCodec(DesiredCodec),
    MaterializeProjection {
        name: String,
    },
    MaterializeIndex {
        name: String,
    },
}

/// The object an action belongs to. An object's actions depend on its earlier ones (MATERIALIZE on ADD, ADD on
/// the DROP that makes room for it, DROP on the KILL of its mutation); actions of different objects do not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// [`PROJECTION`], [`INDEX`] or [`CODEC`].
    pub kind: &'static str,
    /// Projection or index name, or column name for a codec.
    pub name: String,
}

impl Action {
    /// The object this action changes.
    pub fn object(&self) -> ObjectKey {
        let (kind, name) = match self {
            Action::KillMutation { object, .. } => return object.clone(),
            Action::DropProjection { name } | Action::MaterializeProjection { name } => (PROJECTION, name),
            Action::AddProjection(p) => (PROJECTION, &p.name),
            Action::DropIndex { name } | Action::MaterializeIndex { name } => (INDEX, name),
            Action::AddIndex(x) => (INDEX, &x.name),
            Action::ModifyCodec(c) => (CODEC, &c.column),
        };
        ObjectKey { kind, name: name.clone() }
    }
}

/// What a table needs and how far it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TablePlan {
    pub actions: Vec<Action>,
    /// Declared objects present and matching.
    pub applied: u32,
    /// Declared objects missing, different or not materialised.
    pub pending: u32,
    /// Declared objects that cannot be applied without dropping something the operator did not create.
    pub conflicts: Vec<String>,
    /// Failed materialisations of declared objects, with the server's reason.
    pub failed_mutations: Vec<String>,
    /// Unfinished materialisations of declared objects.
    pub running_mutations: u32,
    pub parts_to_do: u64,
}

/// Buckets so the actions come out in execution order whatever order objects are visited in.
#[derive(Default)]
struct Buckets {
    kill: Vec<Action>,
    drop: Vec<Action>,
    add: Vec<Action>,
    codec: Vec<Action>,
    materialize: Vec<Action>,
}

/// Plans one table. `desired` is `None` when the table left the spec; `managed` are the operator's records for
/// this table. Objects are dropped only if the operator created them, and (when they left the spec) only with
/// `prune`.
pub fn plan(desired: Option<&DesiredTable>, live: &LiveTable, managed: &[ManagedObject], prune: bool) -> TablePlan {
    let mut out = TablePlan::default();
    let mut b = Buckets::default();
    let empty = DesiredTable::default();
    let d = desired.unwrap_or(&empty);
    for p in &d.projections {
        let live_def = live.projection_canonical(&p.name);
        let obj = Object { kind: PROJECTION, name: &p.name, canonical: &p.canonical, live: live_def };
        obj.plan(live, managed, &mut out, &mut b, || Action::AddProjection(p.clone()));
    }
    for x in &d.indexes {
        let live_def = live.index_canonical(&x.name);
        let obj = Object { kind: INDEX, name: &x.name, canonical: &x.canonical, live: live_def };
        obj.plan(live, managed, &mut out, &mut b, || Action::AddIndex(x.clone()));
    }
    for c in &d.codecs {
        plan_codec(c, live, managed, &mut out, &mut b);
    }
    for m in managed.iter().filter(|m| m.kind != CODEC) {
        let declared = d.projections.iter().any(|p| p.name == m.name) || d.indexes.iter().any(|x| x.name == m.name);
        let exists = live.projections.contains_key(&m.name) || live.indexes.contains_key(&m.name);
        if prune && !declared && exists {
            drop_object(live, &m.kind, &m.name, &mut b);
        }
    }
    out.actions = [b.kill, b.drop, b.add, b.codec, b.materialize].concat();
    out
}

struct Object<'a> {
    kind: &'static str,
    name: &'a str,
    canonical: &'a str,
    live: Option<String>,
}

impl Object<'_> {
    fn plan(
        &self,
        live: &LiveTable,
        managed: &[ManagedObject],
        out: &mut TablePlan,
        b: &mut Buckets,
        add: impl Fn() -> Action,
    ) {
        let record = managed.iter().find(|m| m.kind == self.kind && m.name == self.name);
        let Some(live_def) = &self.live else {
            b.add.push(add());
            b.materialize.push(materialize(self.kind, self.name));
            out.pending += 1;
            return;
        };
        if !in_sync(self.canonical, live_def, record) {
            out.pending += 1;
            if record.is_some() {
                drop_object(live, self.kind, self.name, b);
                b.add.push(add());
                b.materialize.push(materialize(self.kind, self.name));
            } else {
                let what = self.kind.to_ascii_lowercase();
                out.conflicts.push(format!(
                    "{what} `{}` exists with a different definition ({live_def}) and was not created by the operator; \
                     it is left alone: rename it in the spec or drop it by hand",
                    self.name
                ));
            }
            return;
        }
        let mut running = false;
        for m in live.materialize_mutations(&self.kind.to_ascii_uppercase(), self.name) {
            if m.fail_reason.is_empty() {
                running = true;
                out.running_mutations += 1;
                out.parts_to_do += m.parts_to_do;
            } else {
                let command = m.command.trim();
                let command = command.strip_prefix('(').and_then(|c| c.strip_suffix(')')).unwrap_or(command);
                out.failed_mutations.push(format!("mutation {} ({command}) failed: {}", m.id, m.fail_reason));
            }
        }
        if record.is_some_and(|r| !r.materialized) && !running {
            b.materialize.push(materialize(self.kind, self.name));
            out.pending += 1;
        } else {
            out.applied += 1;
        }
    }
}

fn plan_codec(c: &DesiredCodec, live: &LiveTable, managed: &[ManagedObject], out: &mut TablePlan, b: &mut Buckets) {
    let Some(live_def) = live.codec_canonical(&c.column) else {
        out.pending += 1;
        out.conflicts.push(format!("column `{}` does not exist", c.column));
        return;
    };
    let record = managed.iter().find(|m| m.kind == CODEC && m.name == c.column);
    if in_sync(&c.canonical, &live_def, record) || codec_matches(&c.canonical, &live_def) {
        out.applied += 1;
    } else {
        out.pending += 1;
        b.codec.push(Action::ModifyCodec(c.clone()));
    }
}

/// The server reformats what it stores; a record of what was sent and what it then stored stands for equality.
fn in_sync(desired: &str, live: &str, record: Option<&ManagedObject>) -> bool {
    desired == live || record.is_some_and(|r| r.definition == desired && !r.live.is_empty() && r.live == live)
}

/// A declared codec without parameters means the server's default ones, which it then spells out
/// (`Gorilla` is stored as `Gorilla(8)` on Float64, `ZSTD` as `ZSTD(1)`).
fn codec_matches(desired: &str, live: &str) -> bool {
    let (d, l): (Vec<&str>, Vec<&str>) = (split_codecs(desired), split_codecs(live));
    d.len() == l.len() && d.iter().zip(&l).all(|(d, l)| d == l || (!d.contains('(') && l.split('(').next() == Some(*d)))
}

/// Splits a rendered chain `A, B(1, 2)` at the commas between codecs.
fn split_codecs(chain: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in chain.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(chain[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(chain[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

fn materialize(kind: &str, name: &str) -> Action {
    match kind {
        PROJECTION => Action::MaterializeProjection { name: name.to_string() },
        _ => Action::MaterializeIndex { name: name.to_string() },
    }
}

fn drop_object(live: &LiveTable, kind: &str, name: &str, b: &mut Buckets) {
    let kind = if kind == PROJECTION { PROJECTION } else { INDEX };
    for m in live.materialize_mutations(&kind.to_ascii_uppercase(), name) {
        let object = ObjectKey { kind, name: name.to_string() };
        b.kill.push(Action::KillMutation { mutation_id: m.id.clone(), object });
    }
    b.drop.push(match kind {
        PROJECTION => Action::DropProjection { name: name.to_string() },
        _ => Action::DropIndex { name: name.to_string() },
    });
}

/// Updates the operator's records from a fresh observation: fills in how the server stored what was just
/// created, and forgets objects that no longer exist (dropped by hand, or their table was dropped).
pub fn refresh_managed(managed: &mut Vec<ManagedObject>, observed: &crate::observe::LiveSchema) {
    managed.retain_mut(|m| {
        let Some(t) = observed.tables.get(&m.table) else { return false };
        let live = match m.kind.as_str() {
            PROJECTION => t.projection_canonical(&m.name),
            INDEX => t.index_canonical(&m.name),
            _ => t.codec_canonical(&m.name),
        };
        match live {
            Some(l) if m.live.is_empty() => {
                m.live = l;
                true
            }
            Some(_) => true,
            None => false,
        }
    });
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
