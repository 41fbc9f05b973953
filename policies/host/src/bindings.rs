//! Host bindings of the two worlds in `policies/wit`. The shared `types` interface maps to [`crate::types`], so the
//! operator fills the same structs it serialises into status and the CLI reads from JSON.

pub mod cache {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "cache-policy",
        with: { "perf:policy/types": crate::types },
    });
}

pub mod rate_limit {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "rate-limit-policy",
        with: { "perf:policy/types": crate::types },
    });
}
