//! Cost of the pure part of a reconcile (the Rust validation rules and `decide`: desired objects, policy
//! decisions on the built-in policies, the app contract), of `plan` and of `validate` (CEL rules too), per profile,
//! at 1,000 and 10,000 profiles. Prints us per profile and the 10k/1k ratio
//! of total time (linear scaling is ~10). Run: `cargo bench -p perf-operator --bench plan`.

use perf_operator::decide::decide;
use perf_operator::{plan, validate};
use perf_operator_api::PerformanceProfile;
use std::hint::black_box;
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

fn reconcile_compute(p: &PerformanceProfile) -> usize {
    let findings = validate::check_spec(p, "spec");
    let observed = plan::Observations { replicas: Some(4), ..Default::default() }.observed(p);
    let decision = decide(p, &observed, jiff::Timestamp::UNIX_EPOCH);
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
