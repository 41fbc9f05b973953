//! Cost of the pure part of a reconcile (the Rust validation rules and `decide`: desired objects, policy
//! decisions on the built-in policies, the app contract), of `plan` and of `validate` (CEL rules too), per profile,
//! at 1,000 and 10,000 profiles. Prints us per profile and the 10k/1k ratio
//! of total time (linear scaling is ~10). Run: `cargo bench -p perf-operator --bench plan`.

use perf_operator::decide::{Observed, ProvisionedRedis, decide};
use perf_operator::redis_stats::RedisStats;
use perf_operator::{plan, validate};
use perf_operator_api::PerformanceProfile;
use perf_policy_host::{HostConfig, Policy, PolicyHost, World};
use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn profiles(n: usize) -> Vec<PerformanceProfile> {
    let text = include_str!("../../examples/risk-platform.yaml");
    let template: PerformanceProfile = serde_saphyr::from_str(text).expect("example parses");
    (0..n)
        .map(|i| {
            let mut p = template.clone();
            p.metadata.name = Some(format!("svc-{i}"));
            p.metadata.namespace = Some(format!("team-{}", i % 50));
            if let Some(cache) = p.spec.cache.as_mut() {
                cache.ttl_classes[0].ttl_seconds = 60 + (i as u32 % 3600);
            }
            p
        })
        .collect()
}

/// What a reconcile observes for the example, the policies loaded once (as the operator keeps them by digest).
fn observed() -> Observed {
    static POLICIES: OnceLock<(Arc<Policy>, Arc<Policy>)> = OnceLock::new();
    let (cache, rate_limit) = POLICIES.get_or_init(|| {
        let host = PolicyHost::new(HostConfig::default()).expect("host");
        let cache = host.load_builtin(World::Cache, "adaptive-ttl").expect("built-in");
        (cache, host.load_builtin(World::RateLimit, "adaptive-rate-limit").expect("built-in"))
    });
    let redis = RedisStats {
        hits: 7_000,
        misses: 3_000,
        used_memory_bytes: 100 << 20,
        max_memory_bytes: 256 << 20,
        ..Default::default()
    };
    Observed {
        serving: Some(Ok(Some(4))),
        provisioned_redis: Some(Ok(ProvisionedRedis {
            password: Some("x".into()),
            available: true,
            ..Default::default()
        })),
        redis: Some(Ok(redis)),
        cache_policy: Some(Ok(cache.clone())),
        rate_limit_policy: Some(Ok(rate_limit.clone())),
        traffic: Some(Ok(Default::default())),
        ..Observed::default()
    }
}

fn reconcile_compute(p: &PerformanceProfile) -> usize {
    let findings = validate::check_spec(p, "spec");
    let decision = decide(p, &observed(), jiff::Timestamp::UNIX_EPOCH);
    findings.len() + decision.checksum.len() + decision.objects.deployments.len()
}

/// The same without the policies, as the bench measured before policy decisions moved into `decide`.
fn reconcile_compute_without_policies(p: &PerformanceProfile) -> usize {
    let mut p = p.clone();
    if let Some(c) = p.spec.cache.as_mut() {
        c.policy = None;
    }
    if let Some(r) = p.spec.rate_limit.as_mut() {
        r.policy = None;
    }
    let findings = validate::check_spec(&p, "spec");
    let observed = Observed { cache_policy: None, rate_limit_policy: None, ..observed() };
    let decision = decide(&p, &observed, jiff::Timestamp::UNIX_EPOCH);
    findings.len() + decision.checksum.len() + decision.objects.deployments.len()
}

fn time(profiles: &[PerformanceProfile], f: impl Fn(&PerformanceProfile) -> usize) -> Duration {
    // Best of three passes: the machine is shared, the minimum is the least disturbed.
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for p in profiles {
                black_box(f(black_box(p)));
            }
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let small = profiles(1_000);
    let large = profiles(10_000);
    for (name, f) in [
        ("reconcile-compute", reconcile_compute as fn(&PerformanceProfile) -> usize),
        ("  without policies", reconcile_compute_without_policies),
        ("plan", |p: &PerformanceProfile| plan::plan_profile(p, &plan::Observations::default()).objects.len()),
        ("validate (CEL+Rust)", |p: &PerformanceProfile| validate::check_profile(p, "spec").len()),
    ] {
        let t1 = time(&small, f);
        let t10 = time(&large, f);
        println!(
            "{name:>20}: 1k {:>8.1} us/profile | 10k {:>8.1} us/profile | 10k/1k total-time ratio {:.2} (linear = 10)",
            t1.as_secs_f64() * 1e6 / 1_000.0,
            t10.as_secs_f64() * 1e6 / 10_000.0,
            t10.as_secs_f64() / t1.as_secs_f64()
        );
    }
}
