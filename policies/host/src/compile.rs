//! Compiling a component without letting it stall other work: on its own thread, one slot of a few, under a
//! wall-clock deadline. Compilation is bounded first by the shape check (`preflight`); the deadline catches what
//! slips through. A thread cannot be stopped, so a compilation past its deadline keeps its slot until it ends: the
//! slots bound the CPU that refused components can take, and evaluations never wait for them.

use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::lock;
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

/// Compiles `bytes` on a slot's thread; gives up waiting after `limit` (for the slot and the compilation together).
pub(crate) fn compile(
    engine: &Engine,
    slots: &Arc<Slots>,
    sha256: &str,
    bytes: &[u8],
    limit: Duration,
) -> Result<Component> {
    let deadline = Instant::now() + limit;
    let Some(slot) = slots.acquire(deadline) else {
        return Err(Error::Busy(format!(
            "every compile slot stayed busy for {limit:?} (a long compilation is still running); retried later"
        )));
    };
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
        Ok(Ok(component)) => Ok(component),
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
