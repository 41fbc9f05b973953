//! Hostile components: each misbehaviour is bounded and reported with its category, and the host keeps serving.
//! `fixtures/hostile.wasm` is built from `policies/guests/hostile` by `policies/build.sh`.

use std::sync::Arc;

use perf_policy_host::{CacheInput, HostConfig, Limits, Policy, PolicyHost, Source, World, source::sha256_hex};

const HOSTILE: &[u8] = include_bytes!("fixtures/hostile.wasm");

fn host() -> PolicyHost {
    PolicyHost::new(HostConfig::default()).unwrap()
}

fn hostile(host: &PolicyHost) -> Arc<Policy> {
    host.load(World::Cache, Source::Pinned { bytes: HOSTILE, sha256: &sha256_hex(HOSTILE) }).unwrap()
}

fn input(mode: &str) -> CacheInput {
    let mut input: CacheInput = serde_json::from_str(include_str!("../../examples/cache-input.json")).unwrap();
    input.settings = format!(r#"{{"mode":"{mode}"}}"#);
    input
}

/// A host with a large CPU budget, so that a misbehaviour that is not a loop hits its own limit first (with the
/// default budget, filling 16 MiB may run out of fuel before memory: bounded either way).
fn patient_host() -> PolicyHost {
    let limits = Limits { fuel: 2_000_000_000, ..Limits::default() };
    PolicyHost::new(HostConfig { limits, ..HostConfig::default() }).unwrap()
}

/// The misbehaving call fails with `category`, then a normal call on the same policy succeeds.
fn assert_bounded(host: PolicyHost, mode: &str, category: &str) {
    let policy = hostile(&host);
    let err = policy.evaluate_cache(&input(mode)).unwrap_err();
    assert_eq!(err.category(), category, "{mode}: {err}");
    // A trap leaves guest state untrustworthy: that instance is dropped. Refused output comes from a completed call.
    let kept = usize::from(category == "bad_output");
    assert_eq!(policy.warm_instances(), kept, "{mode}: warm instances after the failure");
    let echo = policy.evaluate_cache(&input("echo")).unwrap();
    assert_eq!(echo.classes.len(), 10, "{mode}: next call");
    // Other policies on the same host are unaffected.
    let ttl = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let mut example = input("echo");
    example.settings = "{}".into();
    assert_eq!(ttl.evaluate_cache(&example).unwrap().classes.len(), 10, "{mode}: another policy");
}

#[test]
fn endless_loop_times_out() {
    assert_bounded(host(), "loop", "timeout");
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    assert_bounded(patient_host(), "memory-bomb", "out_of_memory");
}

#[test]
fn trap_is_reported() {
    assert_bounded(patient_host(), "trap", "trap");
}

#[test]
fn huge_output_is_refused() {
    assert_bounded(patient_host(), "huge-output", "bad_output");
}

#[test]
fn output_naming_unknown_classes_is_refused() {
    assert_bounded(patient_host(), "wrong-classes", "bad_output");
}

#[test]
fn policy_error_keeps_the_instance() {
    let host = host();
    let policy = hostile(&host);
    assert_eq!(policy.evaluate_cache(&input("reject")).unwrap_err().category(), "policy_error");
    assert_eq!(policy.warm_instances(), 1);
    assert_eq!(policy.validate_settings("reject").unwrap_err().category(), "bad_settings");
}

#[test]
fn component_importing_a_capability_is_refused_at_load() {
    let wasi_env = wat::parse_str(
        r#"(component
             (import "wasi:cli/environment@0.2.0" (instance
               (export "get-environment" (func (result (list (tuple string string)))))))
           )"#,
    )
    .unwrap();
    let host = host();
    let err = host.load(World::Cache, Source::Pinned { bytes: &wasi_env, sha256: &sha256_hex(&wasi_env) }).unwrap_err();
    assert_eq!(err.category(), "forbidden_import", "{err}");
    assert!(err.to_string().contains("wasi:cli/environment@0.2.0"), "{err}");
    // The host still serves.
    assert!(hostile(&host).evaluate_cache(&input("echo")).is_ok());
}

#[test]
fn wrong_world_is_refused_at_load() {
    let host = host();
    let err = host.load_builtin(World::Cache, "adaptive-rate-limit").unwrap_err();
    assert_eq!(err.category(), "wrong_world", "{err}");
    let empty = wat::parse_str("(component)").unwrap();
    let err = host.load(World::RateLimit, Source::Pinned { bytes: &empty, sha256: &sha256_hex(&empty) }).unwrap_err();
    assert_eq!(err.category(), "wrong_world", "{err}");
    let err =
        host.load(World::Cache, Source::Pinned { bytes: b"not wasm", sha256: &sha256_hex(b"not wasm") }).unwrap_err();
    assert_eq!(err.category(), "load", "{err}");
}

#[test]
fn pin_mismatch_is_refused_before_compiling() {
    let host = host();
    let wrong = sha256_hex(b"something else");
    let err = host.load(World::Cache, Source::Pinned { bytes: HOSTILE, sha256: &wrong }).unwrap_err();
    assert_eq!(err.category(), "digest_mismatch", "{err}");
    assert_eq!(host.compile_count(), 0);
    let err = host.load(World::Cache, Source::Pinned { bytes: HOSTILE, sha256: "ABC" }).unwrap_err();
    assert_eq!(err.category(), "bad_source", "{err}");
}

#[test]
fn component_is_compiled_once_per_digest() {
    let host = host();
    let first = hostile(&host);
    let again = hostile(&host);
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(host.compile_count(), 1);
    host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    assert_eq!(host.compile_count(), 2);
    // A failed world check does not recompile either.
    assert!(host.load_builtin(World::RateLimit, "adaptive-ttl").is_err());
    assert_eq!(host.compile_count(), 2);
    host.forget(first.sha256());
    hostile(&host);
    assert_eq!(host.compile_count(), 3);
}

#[test]
fn precompiled_components_are_reused_from_disk() {
    let dir = std::env::temp_dir().join(format!("perf-policy-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = HostConfig { cache_dir: Some(dir.clone()), ..HostConfig::default() };
    let first = PolicyHost::new(config.clone()).unwrap();
    hostile(&first);
    assert_eq!(first.compile_count(), 1);
    let second = PolicyHost::new(config).unwrap();
    let policy = hostile(&second);
    assert_eq!(second.compile_count(), 0, "loaded from {}", dir.display());
    assert!(policy.evaluate_cache(&input("echo")).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluator_runs_calls_off_the_async_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let host = Arc::new(host());
    let evaluator = perf_policy_host::Evaluator::new(2);
    runtime.block_on(async {
        let policy = evaluator
            .load_builtin(Arc::clone(&host), String::new(), World::Cache, "adaptive-ttl".into())
            .await
            .unwrap();
        let mut example = input("echo");
        example.settings = "{}".into();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (evaluator, policy, example) = (evaluator.clone(), Arc::clone(&policy), example.clone());
            calls.spawn(async move { evaluator.evaluate_cache(policy, example).await });
        }
        // One endless loop among them does not hold up the rest, and is cut when its fuel runs out.
        let err = evaluator.evaluate_cache(hostile(&host), input("loop")).await.unwrap_err();
        assert_eq!(err.category(), "timeout");
        while let Some(result) = calls.join_next().await {
            assert_eq!(result.unwrap().unwrap().classes.len(), 10);
        }
    });
}
