//! Per-call limits and the store state that enforces the memory cap.

use wasmtime::ResourceLimiter;

/// Bounds applied to every policy call.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// CPU budget of one call in wasmtime fuel units (about one per wasm instruction). Fuel rather than an epoch
    /// deadline: it counts the policy's own work, so a busy node that deschedules the thread cannot time out a
    /// healthy policy (we saw 5 ms epoch deadlines fire on ~3 us calls on a loaded 2-core machine).
    pub fuel: u64,
    /// Cap on the linear memory of one instance.
    pub memory_bytes: usize,
    /// Most classes or routes a policy may return (and the host accepts as input).
    pub max_items: usize,
    /// Longest `reason` (and any other free string) a policy may return.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 10 M fuel is a few ms of CPU; the example policies use 3-8 k per call (see the benchmark).
        Self { fuel: 10_000_000, memory_bytes: 16 << 20, max_items: 1024, max_string_bytes: 1024 }
    }
}

/// Data of every policy `Store`: only the memory limiter, since no import needs host state.
pub(crate) struct StoreState {
    pub(crate) limiter: MemoryCap,
}

impl StoreState {
    pub(crate) fn new(memory_bytes: usize) -> Self {
        Self { limiter: MemoryCap { memory_bytes, denied: false } }
    }
}

/// Like `wasmtime::StoreLimits`, but remembers that it refused a growth, so a trap that follows (Rust guests abort
/// when an allocation fails) is reported as out-of-memory rather than as a plain trap.
pub(crate) struct MemoryCap {
    memory_bytes: usize,
    pub(crate) denied: bool,
}

/// A policy needs one table per core module; a few spare for the component adapter glue.
const MAX_TABLE_ELEMENTS: usize = 100_000;
const MAX_INSTANCES: usize = 16;
const MAX_TABLES: usize = 16;
const MAX_MEMORIES: usize = 4;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
