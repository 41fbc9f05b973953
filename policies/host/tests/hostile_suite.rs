//! The hostile-component suite: components built from source in `policies/guests` by `policies/build.sh` (see
//! `fixtures/README.md`), one per way a tenant could hurt the operator around a call: at load (compile bombs, extra
//! memories and tables, wrong contract versions, extra exports), across tenants (guest state), and in what the host
//! reports (categories after a refused grow, output ranges, unprintable reasons).

use std::time::{Duration, Instant};

use perf_policy_host::{
    CacheInput, Error, HostConfig, Limits, LoadLimits, PolicyHost, Result, Source, World, source::sha256_hex,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load_as(host: &PolicyHost, tenant: &str, name: &str) -> Result<std::sync::Arc<perf_policy_host::Policy>> {
    let bytes = fixture(name);
    host.load_for(tenant, World::Cache, Source::Pinned { bytes: &bytes, sha256: &sha256_hex(&bytes) })
}

fn host() -> PolicyHost {
    PolicyHost::new(HostConfig::default()).unwrap()
}

/// A large CPU budget, so that memory and output misbehaviours hit their own limit first.
fn patient_host() -> PolicyHost {
    let limits = Limits { fuel: 2_000_000_000, ..Limits::default() };
    PolicyHost::new(HostConfig { limits, ..HostConfig::default() }).unwrap()
}

fn input(settings: &str) -> CacheInput {
    let mut input: CacheInput = serde_json::from_str(include_str!("../../examples/cache-input.json")).unwrap();
    input.settings = settings.to_string();
    input
}

fn category(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Ok(value) => format!("ok: {value:?}"),
        Err(e) => format!("{}: {e}", e.category()),
    }
}

#[test]
fn load_time_refusals_name_their_reason() {
    let cases = [
        ("compile-bomb.wasm", "load: ", "bytes of code, at most 131072 allowed"),
        ("compile-wide.wasm", "load: ", "weighs more than 2097152"),
        ("multi-memory.wasm", "load: ", "2 linear memories"),
        ("many-tables.wasm", "load: ", "tables"),
        ("version-0.1.0.wasm", "wrong_world: ", "perf:policy@0.1.0"),
        ("version-0.3.0.wasm", "wrong_world: ", "perf:policy@0.3.0"),
        ("version-99.0.0.wasm", "wrong_world: ", "perf:policy@99.0.0"),
        ("foreign-package.wasm", "forbidden_import: ", "evil:policy/types@0.2.0"),
        ("extra-export.wasm", "wrong_world: ", "exfiltrate"),
    ];
    for (name, expected_category, detail) in cases {
        let host = host();
        let got = category(load_as(&host, "t", name));
        assert!(got.starts_with(expected_category) && got.contains(detail), "{name}: {got}");
        // Shape and contract-name refusals come before the compiler ever sees the component: an instance other than
        // perf:policy/types is an import the host does not provide, whatever it holds.
        assert_eq!(host.compile_count(), 0, "{name}");
    }
}

#[test]
fn a_patch_release_of_the_contract_loads_and_decides() {
    let host = host();
    let policy = load_as(&host, "t", "version-0.2.1.wasm").unwrap();
    assert_eq!(policy.evaluate_cache(&input(r#"{"mode":"echo"}"#)).unwrap().classes.len(), 10);
}

#[test]
fn a_compilation_past_its_deadline_is_refused_and_remembered_for_a_while() {
    let load_limits = LoadLimits { compile_deadline: Duration::from_millis(1), ..LoadLimits::default() };
    let host = PolicyHost::new(HostConfig { load_limits, ..HostConfig::default() }).unwrap();
    let first = load_as(&host, "a", "compile-heavy.wasm").unwrap_err();
    assert!(matches!(&first, Error::CompileTimeout { detail, .. } if detail.contains("took longer than")), "{first}");
    assert!(first.to_string().contains("tried again later"), "{first}");
    assert!(!first.is_load_failure(), "a missed deadline may be the machine's load, not the component's");
    // The failure is kept by digest for a while: the next load (another tenant too) answers at once.
    let started = Instant::now();
    let again = load_as(&host, "b", "compile-heavy.wasm").unwrap_err();
    assert_eq!(again.to_string(), first.to_string());
    assert!(started.elapsed() < Duration::from_millis(500), "answered from memory, not recompiled");
    // Built-ins are trusted: they compile without waiting for the slot the refused compilation still holds.
    let ttl = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    assert_eq!(ttl.evaluate_cache(&input("{}")).unwrap().classes.len(), 10);
}

#[test]
fn a_missed_compile_deadline_is_compiled_again_once_its_time_is_up() {
    let load_limits = LoadLimits {
        compile_deadline: Duration::from_millis(1),
        compile_timeout_kept: Duration::ZERO,
        ..LoadLimits::default()
    };
    let host = PolicyHost::new(HostConfig { load_limits, ..HostConfig::default() }).unwrap();
    let first = load_as(&host, "a", "compile-heavy.wasm").unwrap_err();
    assert_eq!(first.category(), "compile_timeout", "{first}");
    // Its time is up at once here: nothing is answered from memory, the next load tries again (and meets the slot
    // the first compilation still holds, or its own deadline).
    let digest = sha256_hex(&fixture("compile-heavy.wasm"));
    assert!(host.cached("b", World::Cache, &digest).is_none(), "the missed deadline is forgotten");
    let again = load_as(&host, "b", "compile-heavy.wasm").unwrap_err();
    assert!(matches!(again.category(), "compile_timeout" | "busy"), "{again}");
}

#[test]
fn compiled_components_past_the_memory_budget_are_forgotten_least_recently_used_first() {
    // A budget smaller than any component: each new one pushes out every other.
    let host = PolicyHost::new(HostConfig { max_compiled_bytes: 1, ..HostConfig::default() }).unwrap();
    let digest = |name: &str| sha256_hex(&fixture(name));
    load_as(&host, "a", "hostile.wasm").unwrap();
    assert!(host.cached("a", World::Cache, &digest("hostile.wasm")).is_some());
    load_as(&host, "b", "version-0.2.1.wasm").unwrap();
    assert!(host.cached("a", World::Cache, &digest("hostile.wasm")).is_none(), "the older one is forgotten");
    assert!(host.cached("b", World::Cache, &digest("version-0.2.1.wasm")).is_some(), "the new one stays");
    assert!(host.compiled_bytes() > 0);
    // Forgotten is not refused: loading it again compiles it again.
    let compiled = host.compile_count();
    load_as(&host, "a", "hostile.wasm").unwrap();
    assert_eq!(host.compile_count(), compiled + 1);

    // Within a budget, nothing goes; a component no tenant holds, unused for `idle_after`, does.
    let host = PolicyHost::new(HostConfig { idle_after: Duration::from_millis(50), ..HostConfig::default() }).unwrap();
    load_as(&host, "a", "hostile.wasm").unwrap();
    load_as(&host, "b", "version-0.2.1.wasm").unwrap();
    assert!(host.cached("a", World::Cache, &digest("hostile.wasm")).is_some(), "both kept within the budget");
    host.release_idle(Instant::now() + Duration::from_secs(1));
    assert_eq!(host.tenant_policies(), 0, "idle tenants released");
    assert_eq!(host.compiled_bytes(), 0, "and the components they held forgotten");
}

#[test]
fn a_heavy_but_allowed_component_compiles_within_the_default_deadline() {
    let host = host();
    let policy = load_as(&host, "t", "compile-heavy.wasm").unwrap();
    assert_eq!(policy.evaluate_cache(&input(r#"{"mode":"echo"}"#)).unwrap().classes.len(), 10);
}

#[test]
fn one_profiles_guest_state_never_reaches_another() {
    let host = host();
    let a = load_as(&host, "shop/a", "hostile.wasm").unwrap();
    let b = load_as(&host, "shop/b", "hostile.wasm").unwrap();
    let secret = r#"{"mode":"remember","secret":"tenant-a-card-4111"}"#;
    a.evaluate_cache(&input(secret)).unwrap();
    let seen_by_b = b.evaluate_cache(&input(r#"{"mode":"remember"}"#)).unwrap().reason;
    assert!(!seen_by_b.contains("tenant-a"), "{seen_by_b}");
    // Not vacuous: the guest does keep state, within its own tenant.
    let seen_by_a = a.evaluate_cache(&input(r#"{"mode":"remember"}"#)).unwrap().reason;
    assert!(seen_by_a.contains("tenant-a-card-4111"), "{seen_by_a}");
    // The same tenant loading again gets its own policy back; the compiled component is shared.
    let a_again = load_as(&host, "shop/a", "hostile.wasm").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &a_again));
    assert_eq!(host.compile_count(), 1);
}

#[test]
fn idle_instances_are_dropped() {
    let host = host();
    let policy = load_as(&host, "shop/a", "hostile.wasm").unwrap();
    policy.evaluate_cache(&input(r#"{"mode":"echo"}"#)).unwrap();
    assert_eq!((policy.warm_instances(), host.tenant_policies()), (1, 1));
    host.release_idle(Instant::now());
    assert_eq!(policy.warm_instances(), 1, "not idle yet");
    host.release_idle(Instant::now() + host.config().idle_after);
    assert_eq!((policy.warm_instances(), host.tenant_policies()), (0, 0));
    // A policy still held works on: it instantiates afresh.
    assert!(policy.evaluate_cache(&input(r#"{"mode":"echo"}"#)).is_ok());
}

#[test]
fn idle_instances_of_all_tenants_hold_at_most_the_warm_memory_budget() {
    // Room for two instances of the hostile guest (one memory each, its initial size), not three.
    let probe = host();
    load_as(&probe, "probe", "hostile.wasm").unwrap().evaluate_cache(&input("echo")).unwrap();
    let one = probe.warm_memory_bytes();
    assert!(one > 0, "a kept instance holds its memory in the budget");
    let host = PolicyHost::new(HostConfig { max_warm_memory_bytes: 2 * one, ..HostConfig::default() }).unwrap();
    let tenants: Vec<_> = ["ns/a", "ns/b", "ns/c"].iter().map(|t| load_as(&host, t, "hostile.wasm").unwrap()).collect();
    for policy in &tenants {
        assert!(policy.evaluate_cache(&input("echo")).is_ok());
    }
    let kept: Vec<usize> = tenants.iter().map(|p| p.warm_instances()).collect();
    assert_eq!(kept, [1, 1, 0], "the third instance is dropped after its call");
    assert_eq!(host.warm_memory_bytes(), 2 * one);
    // The third tenant still decides, on a fresh instance each time; a reused instance gives its bytes back while
    // it runs, so the budget never counts one instance twice.
    for _ in 0..3 {
        for policy in &tenants {
            assert!(policy.evaluate_cache(&input("echo")).is_ok());
        }
    }
    assert_eq!(host.warm_memory_bytes(), 2 * one);
    // Idle tenants give their memory back; a dropped policy gives back what it kept.
    host.release_idle(Instant::now());
    host.release_idle(Instant::now() + host.config().idle_after);
    assert_eq!(host.warm_memory_bytes(), 0);
    let again = load_as(&host, "ns/d", "hostile.wasm").unwrap();
    again.evaluate_cache(&input("echo")).unwrap();
    assert_eq!(host.warm_memory_bytes(), one);
    host.forget(again.sha256());
    drop(again);
    assert_eq!(host.warm_memory_bytes(), 0);
}

#[test]
fn a_refused_grow_does_not_colour_later_failures() {
    let host = patient_host();
    let policy = load_as(&host, "t", "hostile.wasm").unwrap();
    let grown = policy.evaluate_cache(&input(r#"{"mode":"try-grow"}"#)).unwrap();
    assert_eq!(grown.reason, "grow refused");
    assert_eq!(policy.warm_instances(), 1, "a handled refusal keeps the instance");
    let steps = [("trap", "trap"), ("try-grow", "ok"), ("memory-bomb", "out_of_memory"), ("trap", "trap")];
    for (mode, expected) in steps {
        let got = category(policy.evaluate_cache(&input(&format!(r#"{{"mode":"{mode}"}}"#))));
        assert!(got.starts_with(expected), "{mode}: {got}");
    }
    // With the default budget, a loop right after a refused grow is a timeout.
    let host = self::host();
    let policy = load_as(&host, "t", "hostile.wasm").unwrap();
    policy.evaluate_cache(&input(r#"{"mode":"try-grow"}"#)).unwrap();
    let got = category(policy.evaluate_cache(&input(r#"{"mode":"loop"}"#)));
    assert!(got.starts_with("timeout"), "{got}");
}

#[test]
fn outputs_outside_the_contract_are_refused_and_reasons_are_cleaned() {
    let host = patient_host();
    let policy = load_as(&host, "t", "hostile.wasm").unwrap();
    for (mode, detail) in [
        ("advice-zero", "maxMemoryBytes 0"),
        ("advice-huge", "maxMemoryBytes 18446744073709551615"),
        ("advice-bad-policy", "evictionPolicy"),
        ("ttl-huge", "ttlSeconds 4294967295"),
    ] {
        let got = category(policy.evaluate_cache(&input(&format!(r#"{{"mode":"{mode}"}}"#))));
        assert!(got.starts_with("bad_output") && got.contains(detail), "{mode}: {got}");
        assert!(!got.chars().any(char::is_control), "{mode}: {got:?}");
    }
    let reason = policy.evaluate_cache(&input(r#"{"mode":"nasty-reason"}"#)).unwrap().reason;
    assert!(reason.starts_with("ok") && reason.ends_with("end"), "{reason:?}");
    let unsafe_char = |c: char| c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c);
    assert!(!reason.chars().any(unsafe_char), "{reason:?}");
}
