//! Desired vs live: the ordered actions for one table. Pure.

use crate::check::schema;
use crate::observe::LiveTable;
use crate::validate::{DesiredCodec, DesiredIndex, DesiredProjection, DesiredTable};
use perf_operator_api::status::{FailedAttempt, ManagedObject, ObjectStatus};
use std::collections::BTreeMap;

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

/// `ObjectStatus::state` values.
pub const IN_SYNC: &str = "InSync";
pub const APPLYING: &str = "Applying";
pub const MATERIALIZING: &str = "Materializing";
pub const FAILED: &str = "Failed";
pub const REFUSED: &str = "Refused";

/// What a table needs and how far it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TablePlan {
    pub actions: Vec<Action>,
    /// Each declared object: its state, and why when it failed or was refused.
    pub objects: Vec<ObjectStatus>,
    /// Each declared object's definition and live form now: what a refusal of its statement is remembered as.
    pub attempts: BTreeMap<ObjectKey, FailedAttempt>,
    /// Declared objects present and matching.
    pub applied: u32,
    /// Declared objects missing, different or not materialised.
    pub pending: u32,
    /// Declared objects that are not sent: they would drop something the operator did not create, cannot work on
    /// this table (missing column, codec for another type, engine), or failed before and nothing changed since.
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
/// this table; `previous` the objects' status of the last round (a statement that failed is not sent again until
/// its definition or the live object changes). Objects are dropped only if the operator created them, and (when
/// they left the spec) only with `prune`.
pub fn plan(
    desired: Option<&DesiredTable>,
    live: &LiveTable,
    managed: &[ManagedObject],
    previous: &[ObjectStatus],
    prune: bool,
) -> TablePlan {
    let mut out = TablePlan::default();
    let mut b = Buckets::default();
    let empty = DesiredTable::default();
    let d = desired.unwrap_or(&empty);
    let ctx = Context { live, managed, previous };
    for p in &d.projections {
        let obj = Object {
            kind: PROJECTION,
            name: &p.name,
            definition: &p.query,
            canonical: live.declared_projection(&p.query),
            live: live.projection_canonical(&p.name),
            refusal: schema::projection(p, live),
        };
        obj.plan(&ctx, &mut out, &mut b, || Action::AddProjection(p.clone()));
    }
    for x in &d.indexes {
        let obj = Object {
            kind: INDEX,
            name: &x.name,
            definition: &index_text(x),
            canonical: live.declared_index(x),
            live: live.index_canonical(&x.name),
            refusal: schema::index(x, live),
        };
        obj.plan(&ctx, &mut out, &mut b, || Action::AddIndex(x.clone()));
    }
    for c in &d.codecs {
        plan_codec(c, &ctx, &mut out, &mut b);
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

/// The definition recorded for an index: what is sent after `ADD INDEX name`.
pub fn index_text(x: &DesiredIndex) -> String {
    crate::validate::index_definition(&x.expression, &x.index_type, x.granularity)
}

struct Context<'a> {
    live: &'a LiveTable,
    managed: &'a [ManagedObject],
    previous: &'a [ObjectStatus],
}

impl Context<'_> {
    /// The last failure of this object, if neither its definition nor the live object changed since.
    fn unchanged_failure(&self, kind: &str, name: &str, definition: &str, live: &str) -> Option<&ObjectStatus> {
        self.previous.iter().find(|o| {
            o.kind == kind
                && o.name == name
                && o.failed.as_ref().is_some_and(|f| f.definition == definition && f.live == live)
        })
    }
}

struct Object<'a> {
    kind: &'static str,
    name: &'a str,
    /// As sent (and recorded).
    definition: &'a str,
    /// As compared with the live one.
    canonical: String,
    live: Option<String>,
    /// Why it cannot work on this table, if it cannot.
    refusal: Option<String>,
}

impl Object<'_> {
    fn status(&self, state: &str, message: Option<String>) -> ObjectStatus {
        ObjectStatus {
            kind: self.kind.to_string(),
            name: self.name.to_string(),
            state: state.to_string(),
            message,
            failed: None,
        }
    }

    /// Not sent: refused here, or failed before with nothing changed since.
    fn held(&self, ctx: &Context, out: &mut TablePlan) -> bool {
        let what = self.kind.to_ascii_lowercase();
        if let Some(reason) = &self.refusal {
            out.pending += 1;
            out.conflicts.push(format!("{what} `{}` is not sent: {reason}", self.name));
            out.objects.push(self.status(REFUSED, Some(reason.clone())));
            return true;
        }
        let attempt = self.attempt();
        if let Some(failure) = ctx.unchanged_failure(self.kind, self.name, &attempt.definition, &attempt.live) {
            let message = failure.message.clone().unwrap_or_default();
            out.pending += 1;
            out.conflicts
                .push(format!("{what} `{}` is not resent until it or the live object changes: {message}", self.name));
            let mut status = self.status(FAILED, failure.message.clone());
            status.failed = failure.failed.clone();
            out.objects.push(status);
            return true;
        }
        false
    }

    fn attempt(&self) -> FailedAttempt {
        FailedAttempt { definition: self.definition.to_string(), live: self.live.clone().unwrap_or_default() }
    }

    fn plan(&self, ctx: &Context, out: &mut TablePlan, b: &mut Buckets, add: impl Fn() -> Action) {
        out.attempts.insert(ObjectKey { kind: self.kind, name: self.name.to_string() }, self.attempt());
        let record = ctx.managed.iter().find(|m| m.kind == self.kind && m.name == self.name);
        let in_sync = self.live.as_ref().is_some_and(|l| in_sync(&self.canonical, self.definition, l, record));
        if !in_sync && self.held(ctx, out) {
            return;
        }
        let Some(live_def) = &self.live else {
            b.add.push(add());
            b.materialize.push(materialize(self.kind, self.name));
            out.pending += 1;
            out.objects.push(self.status(APPLYING, None));
            return;
        };
        if !in_sync {
            out.pending += 1;
            if record.is_some() {
                drop_object(ctx.live, self.kind, self.name, b);
                b.add.push(add());
                b.materialize.push(materialize(self.kind, self.name));
                out.objects.push(self.status(APPLYING, None));
            } else {
                let what = self.kind.to_ascii_lowercase();
                let message = format!(
                    "{what} `{}` exists with a different definition ({live_def}) and was not created by the operator; \
                     it is left alone: rename it in the spec or drop it by hand",
                    self.name
                );
                out.objects.push(self.status(REFUSED, Some(message.clone())));
                out.conflicts.push(message);
            }
            return;
        }
        self.follow_mutations(ctx, record, out, b);
    }

    /// In sync: how its materialisation goes.
    fn follow_mutations(&self, ctx: &Context, record: Option<&ManagedObject>, out: &mut TablePlan, b: &mut Buckets) {
        let mut running = false;
        let mut failed = None;
        for m in ctx.live.materialize_mutations(&self.kind.to_ascii_uppercase(), self.name) {
            if m.fail_reason.is_empty() {
                running = true;
                out.running_mutations += 1;
                out.parts_to_do += m.parts_to_do;
            } else {
                let command = m.command.trim();
                let command = command.strip_prefix('(').and_then(|c| c.strip_suffix(')')).unwrap_or(command);
                let message = format!("mutation {} ({command}) failed: {}", m.id, m.fail_reason);
                out.failed_mutations.push(message.clone());
                failed = Some(message);
            }
        }
        if let Some(message) = failed {
            out.objects.push(self.status(FAILED, Some(message)));
            out.applied += 1;
        } else if record.is_some_and(|r| !r.materialized) && !running {
            b.materialize.push(materialize(self.kind, self.name));
            out.pending += 1;
            out.objects.push(self.status(APPLYING, None));
        } else {
            out.applied += 1;
            out.objects.push(self.status(if running { MATERIALIZING } else { IN_SYNC }, None));
        }
    }
}

fn plan_codec(c: &DesiredCodec, ctx: &Context, out: &mut TablePlan, b: &mut Buckets) {
    let live = ctx.live.codec_canonical(&c.column);
    let refusal = match &live {
        None => Some(format!("column `{}` does not exist", c.column)),
        Some(_) => schema::codec(c, ctx.live),
    };
    let obj = Object {
        kind: CODEC,
        name: &c.column,
        definition: &c.codec,
        canonical: ctx.live.declared_codec(c),
        live: live.clone(),
        refusal,
    };
    out.attempts.insert(ObjectKey { kind: CODEC, name: c.column.clone() }, obj.attempt());
    let record = ctx.managed.iter().find(|m| m.kind == CODEC && m.name == c.column);
    if live.as_ref().is_some_and(|l| in_sync(&obj.canonical, obj.definition, l, record)) {
        out.applied += 1;
        out.objects.push(obj.status(IN_SYNC, None));
    } else if !obj.held(ctx, out) {
        out.pending += 1;
        b.codec.push(Action::ModifyCodec(c.clone()));
        out.objects.push(obj.status(APPLYING, None));
    }
}

/// Equal canonical forms, or a record of what was sent and what the server then stored.
fn in_sync(canonical: &str, definition: &str, live: &str, record: Option<&ManagedObject>) -> bool {
    canonical == live || record.is_some_and(|r| r.definition == definition && !r.live.is_empty() && r.live == live)
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
