//! Test fixture, not a policy: a cache-policy component that misbehaves on request, so the host tests can check
//! that each misbehaviour is bounded and reported. The settings text selects the behaviour:
//! `loop`, `memory-bomb`, `trap`, `huge-output`, `wrong-classes`, `reject`; anything else echoes the input TTLs.

// The export glue wit-bindgen generates takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "../../wit", world: "cache-policy" });

use perf::policy::types::ClassDecision;

struct Hostile;

impl Guest for Hostile {
    fn validate_settings(settings: String) -> Result<(), String> {
        if settings.contains("reject") { Err("settings.mode: rejected on purpose".into()) } else { Ok(()) }
    }

    fn evaluate(input: CacheInput) -> Result<CacheOutput, String> {
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
        let classes = if mode.contains("huge-output") {
            vec![decision(60); 200_000]
        } else if mode.contains("wrong-classes") {
            vec![decision(60)]
        } else {
            input.classes.into_iter().map(|c| decision(c.ttl_seconds)).collect()
        };
        let reason = if mode.contains("huge-output") { "x".repeat(1 << 20) } else { mode.to_string() };
        Ok(CacheOutput { classes, memory: None, reason })
    }
}

fn decision(ttl_seconds: u32) -> ClassDecision {
    ClassDecision { ttl_seconds, admit: true }
}

/// An endless loop the optimiser cannot remove.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

export!(Hostile);
