//! Compiling a component without letting it stall other work: one slot of a few, under a wall-clock deadline.
//! Compilation is bounded first by the shape check (`preflight`). The operator compiles in a worker process
//! (`isolate`) with its own memory limit, killed at the deadline, so the slot is free again at the deadline. Without
//! a worker (the CLI) it compiles on its own thread; a thread cannot be stopped, so a compilation past its deadline
//! keeps its slot until it ends: the slots bound the CPU that refused components can take, and evaluations never
//! wait for them.

use std::collections::HashSet;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::lock;
use crate::isolate::{self, CompileWorker};
use crate::{Error, Result};

/// Compilations running now, out of `max`.
pub(crate) struct Slots {
    running: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// A held slot, released when the compilation ends (not when its caller stops waiting).
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&self.0.running) -= 1;
        self.0.freed.notify_one();
    }
}

impl Slots {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { running: Mutex::new(0), freed: Condvar::new(), max: max.max(1) })
    }

    /// Waits until `deadline` for a free slot.
    fn acquire(self: &Arc<Self>, deadline: Instant) -> Option<Slot> {
        let mut running = lock(&self.running);
        while *running >= self.max {
            let left = deadline.checked_duration_since(Instant::now())?;
            running =
                self.freed.wait_timeout(running, left).map(|(guard, _)| guard).unwrap_or_else(|p| p.into_inner().0);
        }
        *running += 1;
        Some(Slot(Arc::clone(self)))
    }
}

/// Namespaces with a compilation under way (waiting for a slot, or running for a caller still waiting): one each.
/// The slots are few and taken in turn, so one tenant loading many components would otherwise queue ahead of every
/// other tenant's; with one each, another tenant waits behind at most one compilation per namespace.
#[derive(Default)]
pub(crate) struct Turns(Mutex<HashSet<String>>);

/// A namespace's turn, given back when the load that took it ends.
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    namespace: String,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        lock(&self.turns.0).remove(&self.namespace);
    }
}

impl Turns {
    /// The turn of `tenant`'s namespace (`namespace/name`), or Busy while another load of that namespace compiles.
    /// Loads of no tenant (the CLI, tests) take none.
    pub(crate) fn take(&self, tenant: &str) -> Result<Option<Turn<'_>>> {
        let namespace = tenant.split('/').next().unwrap_or_default();
        if namespace.is_empty() {
            return Ok(None);
        }
        if !lock(&self.0).insert(namespace.to_string()) {
            return Err(Error::Busy(format!(
                "another policy component of namespace {namespace} is compiling; this one is compiled after it"
            )));
        }
        Ok(Some(Turn { turns: self, namespace: namespace.to_string() }))
    }
}

/// Compiles `bytes` within `limit` (for the slot and the compilation together): in `worker`, killed at the
/// deadline, or else on a slot's thread, given up on at the deadline.
pub(crate) fn compile(
    engine: &Engine,
    slots: &Arc<Slots>,
    worker: Option<&CompileWorker>,
    sha256: &str,
    bytes: &[u8],
    limit: Duration,
) -> Result<(Component, Option<u64>)> {
    let deadline = Instant::now() + limit;
    let Some(slot) = slots.acquire(deadline) else {
        return Err(Error::Busy(format!(
            "every compile slot stayed busy for {limit:?} (a long compilation is still running); retried later"
        )));
    };
    if let Some(worker) = worker {
        let compiled = isolate::compile(worker, engine, sha256, bytes, deadline);
        drop(slot);
        let compiled = compiled?;
        return Ok((compiled.component, compiled.peak_rss_bytes));
    }
    let (sender, receiver) = sync_channel(1);
    let (engine, owned) = (engine.clone(), bytes.to_vec());
    std::thread::Builder::new()
        .name("policy-compile".into())
        .spawn(move || {
            let _slot = slot;
            // The receiver may be gone (deadline passed): then the result is simply dropped.
            let _ = sender.send(Component::new(&engine, &owned));
        })
        .map_err(|e| Error::Internal(format!("starting a compile thread: {e}")))?;
    // wasmtime's messages may quote names from the component: cleaned like any policy-provided text.
    let load = |detail: String| Error::Load { sha256: sha256.to_string(), detail: crate::check::clean(&detail, 2048) };
    match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(component)) => Ok((component, None)),
        Ok(Err(e)) => Err(load(format!("{e:#}"))),
        Err(RecvTimeoutError::Timeout) => Err(Error::CompileTimeout {
            sha256: sha256.to_string(),
            detail: format!(
                "compiling it took longer than {limit:?} (a policy should compile in well under a second); it is \
                 tried again later"
            ),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(Error::Internal("the compile thread ended without a result".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_compilation_per_namespace_at_a_time() {
        let turns = Turns::default();
        let first = turns.take("team-a/web").unwrap();
        assert!(first.is_some());
        let busy = turns.take("team-a/api").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(busy.contains("namespace team-a is compiling"), "{busy}");
        assert!(turns.take("team-b/web").unwrap().is_some(), "another namespace has its own turn");
        assert!(turns.take("").unwrap().is_none(), "no tenant, no turn");
        drop(first);
        assert!(turns.take("team-a/api").unwrap().is_some(), "given back when the load ends");
    }
}
