//! Per-call limits, load limits, and the store state that enforces the memory cap.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Bounds applied to every policy call.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// CPU budget of one call in wasmtime fuel units (about one per wasm instruction). Fuel rather than an epoch
    /// deadline: it counts the policy's own work, so a busy node that deschedules the thread cannot time out a
    /// healthy policy (we saw 5 ms epoch deadlines fire on ~3 us calls on a loaded 2-core machine).
    pub fuel: u64,
    /// Cap on the memory of one instance (a policy has exactly one linear memory, see [`LoadLimits`]).
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

/// Bounds checked before a component is compiled, and the compile deadline. The shape bounds keep the compiler's
/// work (register allocation is superlinear in a function's locals and size) small; the deadline catches the rest.
/// The built-in policies use a small fraction of each (see `preflight`'s tests).
#[derive(Clone, Debug, PartialEq)]
pub struct LoadLimits {
    pub max_component_bytes: usize,
    /// Core modules in the component (a Rust guest has 3: its code and two adapter shims).
    pub max_core_modules: usize,
    /// Core instances the component creates (each may hold memory).
    pub max_core_instances: usize,
    /// Functions defined across all core modules.
    pub max_functions: usize,
    /// Locals of one function, parameters excluded.
    pub max_locals: u32,
    /// Code bytes of one function body.
    pub max_function_bytes: usize,
    /// Code bytes of all function bodies together.
    pub max_code_bytes: usize,
    /// Code bytes of all function bodies, each weighted by its locals (`preflight::weight`): what bounds the whole
    /// compile. The register allocator's cost per byte grows with the values live at once, so 128 KiB functions of
    /// 2 000 locals cost ~8x plain code: 32 of them (4 MiB) took 10.6 s to compile here, far more than one.
    pub max_compile_weight: usize,
    /// Linear memories defined across the component: exactly one is what the worlds need.
    pub max_memories: usize,
    /// Tables defined across the component.
    pub max_tables: usize,
    /// Core types of every core module and the component's own types (each costs the compiler several KiB).
    pub max_types: usize,
    /// Parameters and results of one function type: what every call of that type, and every block typed by it,
    /// passes.
    pub max_type_values: u32,
    /// Function references in all element segments (each costs the compiler about 2 KiB).
    pub max_element_items: usize,
    /// Globals defined across core modules: instance memory outside the linear memory's cap.
    pub max_globals: usize,
    /// Blocks, loops and ifs of one function: the compiler's memory grows with their square.
    pub max_frames: u32,
    /// Of those, the ones typed by a function type (values passed in, or several out).
    pub max_typed_frames: u32,
    /// Values one function's calls pass in and out, each call counting 2 more (`preflight::Flow::call_values`).
    pub max_call_values: u64,
    /// Wall time a compilation may take before the load is refused (it runs on its own thread; see `compile`).
    pub compile_deadline: Duration,
    /// How long a missed compile deadline is believed before the component is compiled again. Not for ever: a busy
    /// machine (every tenant's components compiling after a restart) can make a fine component miss it. Not at once
    /// either: a component truly too costly would take a compile slot every round.
    pub compile_timeout_kept: Duration,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_component_bytes: 16 << 20,
            max_core_modules: 8,
            max_core_instances: 16,
            max_functions: 20_000,
            max_locals: 2_000,
            max_function_bytes: 128 << 10,
            max_code_bytes: 4 << 20,
            max_compile_weight: 2 << 20,
            max_memories: 1,
            max_tables: 4,
            max_types: 4096,
            max_type_values: 64,
            max_element_items: 10_000,
            max_globals: 1000,
            max_frames: 4096,
            max_typed_frames: 256,
            max_call_values: 65_536,
            compile_deadline: Duration::from_secs(20),
            compile_timeout_kept: Duration::from_secs(600),
        }
    }
}

/// Data of every policy `Store`: only the memory limiter, since no import needs host state.
pub(crate) struct StoreState {
    pub(crate) limiter: MemoryCap,
}

impl StoreState {
    pub(crate) fn new(memory_bytes: usize, tables: usize) -> Self {
        Self { limiter: MemoryCap { memory_bytes, tables, denied: false, table_denied: false, peak: 0 } }
    }
}

/// Like `wasmtime::StoreLimits`, but remembers that it refused a growth during the current call, so a trap that
/// follows (Rust guests abort when an allocation fails) is reported as out-of-memory rather than as a plain trap.
/// `denied` is reset before every call: a refusal the guest handled must not colour a later, unrelated failure.
pub(crate) struct MemoryCap {
    memory_bytes: usize,
    tables: usize,
    pub(crate) denied: bool,
    /// Likewise for a table growth (or a table's initial size at instantiation).
    pub(crate) table_denied: bool,
    /// Largest memory size granted, for `policy bench` and metrics.
    pub(crate) peak: usize,
}

/// Elements of one table: a policy's function table holds its indirect-call targets, a few hundred at most.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Core instances of one store; `LoadLimits::max_core_instances` refuses more at load, this is the backstop.
const MAX_INSTANCES: usize = 16;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.denied |= !allowed;
        if allowed {
            self.peak = self.peak.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= MAX_TABLE_ELEMENTS;
        self.table_denied |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        self.tables
    }

    /// One memory per instance, so the cap per memory is the cap per instance.
    fn memories(&self) -> usize {
        1
    }
}
