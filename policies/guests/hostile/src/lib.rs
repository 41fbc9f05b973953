//! Test fixture, not a policy: a cache-policy component that misbehaves on request, so the host tests can check
//! that each misbehaviour is bounded and reported. The settings text selects the behaviour: it is matched with
//! `contains`, so `{"mode":"trap"}` and `trap` both select `trap`. No mode word contains another.
//!
//! Never returns:
//! - `loop`: spins forever (fuel runs out);
//! - `memory-bomb`: allocates 1 MiB blocks until memory runs out;
//! - `trap`: executes `unreachable`.
//!
//! Fails:
//! - `reject`: `validate-settings` refuses the settings and `evaluate` returns an error.
//!
//! Bad decisions (the reason is the settings text unless said otherwise):
//! - `huge-output`: 200 000 decisions and a 1 MiB reason;
//! - `wrong-classes`: one decision whatever the number of input classes;
//! - `ttl-huge`: one decision per class, each with a TTL of `u32::MAX` seconds;
//! - `advice-zero`, `advice-huge`: echoed TTLs with memory advice `max-memory-bytes` 0, resp. `u64::MAX`;
//! - `advice-bad-policy`: echoed TTLs with memory advice `eviction-policy` `"allkeys-lru\u{1b}[31m\n"` (an ANSI
//!   colour and a newline) and no `max-memory-bytes`;
//! - `nasty-reason`: echoed TTLs with the reason [`NASTY_REASON`] (terminal escape, bidi override, line separator,
//!   carriage return, bell, NUL).
//!
//! Correct decisions (echoed TTLs) with a telling reason:
//! - `remember`: reason `previous=<settings>`, where `<settings>` is the settings text of the previous `evaluate`
//!   call on this instance, whatever its mode (empty on the first call). Every call records its settings: one
//!   profile's input showing up in another profile's reason means an instance was shared between them.
//! - `try-grow`: asks for 64 MiB more memory with `try_reserve_exact` (over the host's 16 MiB cap), handles the
//!   refusal, and answers normally with reason `grow refused` (or `grow allowed`): a refused `memory.grow` must
//!   not make a later failure look like an out-of-memory one.
//!
//! Anything else echoes the input TTLs with the settings text as the reason.

// The export glue wit-bindgen generates takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "../../wit", world: "cache-policy" });

use perf::policy::types::{ClassDecision, MemoryAdvice, TtlClass};
use std::sync::Mutex;

/// The reason of `nasty-reason`: an ANSI clear-screen, a right-to-left override, a line separator, a carriage
/// return, a bell and a NUL between plain words.
pub const NASTY_REASON: &str = "ok\u{1b}[2J\u{202e}evil\u{2028}line\r\u{7}\u{0}end";

/// The settings text of the previous `evaluate` call (state kept across calls on purpose: see `remember`).
static PREVIOUS_SETTINGS: Mutex<String> = Mutex::new(String::new());

struct Hostile;

impl Guest for Hostile {
    fn validate_settings(settings: String) -> Result<(), String> {
        if settings.contains("reject") { Err("settings.mode: rejected on purpose".into()) } else { Ok(()) }
    }

    fn evaluate(input: CacheInput) -> Result<CacheOutput, String> {
        let previous = remember(&input.settings);
        let mode = input.settings.as_str();
        if mode.contains("loop") {
            spin();
        }
        if mode.contains("memory-bomb") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                // Keep the allocations observable so they are not optimised away.
                std::hint::black_box(&hoard);
            }
        }
        if mode.contains("trap") {
            core::arch::wasm32::unreachable();
        }
        if mode.contains("reject") {
            return Err("refusing to decide".into());
        }
        Ok(CacheOutput { classes: classes(mode, &input.classes), memory: memory(mode), reason: reason(mode, previous) })
    }
}

fn classes(mode: &str, input: &[TtlClass]) -> Vec<ClassDecision> {
    if mode.contains("huge-output") {
        vec![decision(60); 200_000]
    } else if mode.contains("wrong-classes") {
        vec![decision(60)]
    } else if mode.contains("ttl-huge") {
        vec![decision(u32::MAX); input.len()]
    } else {
        input.iter().map(|c| decision(c.ttl_seconds)).collect()
    }
}

fn memory(mode: &str) -> Option<MemoryAdvice> {
    let advice = |max_memory_bytes, eviction_policy| Some(MemoryAdvice { max_memory_bytes, eviction_policy });
    if mode.contains("advice-zero") {
        advice(Some(0), None)
    } else if mode.contains("advice-huge") {
        advice(Some(u64::MAX), None)
    } else if mode.contains("advice-bad-policy") {
        advice(None, Some("allkeys-lru\u{1b}[31m\n".into()))
    } else {
        None
    }
}

fn reason(mode: &str, previous: String) -> String {
    if mode.contains("huge-output") {
        "x".repeat(1 << 20)
    } else if mode.contains("remember") {
        format!("previous={previous}")
    } else if mode.contains("try-grow") {
        try_grow().into()
    } else if mode.contains("nasty-reason") {
        NASTY_REASON.into()
    } else {
        mode.into()
    }
}

fn decision(ttl_seconds: u32) -> ClassDecision {
    ClassDecision { ttl_seconds, admit: true }
}

/// Records `settings` as the previous call's and returns the one recorded before.
fn remember(settings: &str) -> String {
    // No threads on wasm32: the lock is never contended; a poisoned one (after a trap) is still usable.
    let mut previous = PREVIOUS_SETTINGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    std::mem::replace(&mut *previous, settings.to_string())
}

/// Asks for 64 MiB at once; the host's memory cap refuses the `memory.grow`, the allocator reports it.
fn try_grow() -> &'static str {
    let mut buffer = Vec::<u8>::new();
    let grown = buffer.try_reserve_exact(64 << 20);
    // The buffer escapes, so the allocation cannot be optimised away (nor assumed to succeed).
    std::hint::black_box(&mut buffer);
    if grown.is_ok() { "grow allowed" } else { "grow refused" }
}

/// An endless loop the optimiser cannot remove.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

export!(Hostile);
