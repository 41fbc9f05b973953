//! `policy bench`: what a policy costs, measured side by side with the built-in policy of its world on the same
//! input, in one run (absolute numbers vary with the machine; the ratio travels).

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{EvalArgs, PolicyId, PolicySource, Ran, files, id, load};
use crate::types::{CacheInput, RateLimitInput};
use crate::{Error, HostConfig, Policy, PolicyHost, Result, World};

#[derive(Args, Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// The policy, world, input and settings, as for `policy eval` (the built-in runs with its default settings).
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Warm evaluations to time.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub iterations: u32,
}

/// Fresh tenants whose first call is timed (instantiation included).
const FIRST_CALLS: u32 = 20;

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Measured {
    load_ms: f64,
    first_call_us: f64,
    warm_ns_per_eval: f64,
    fuel_per_call: u64,
    peak_memory_bytes: usize,
}

enum Input {
    Cache(CacheInput),
    RateLimit(RateLimitInput),
}

impl Input {
    fn evaluate(&self, policy: &Policy) -> Result<()> {
        match self {
            Input::Cache(input) => policy.evaluate_cache(input).map(|o| drop(black_box(o))),
            Input::RateLimit(input) => policy.evaluate_rate_limit(input).map(|o| drop(black_box(o))),
        }
    }

    fn with_settings(&self, settings: String) -> Self {
        match self {
            Input::Cache(input) => Input::Cache(CacheInput { settings, ..input.clone() }),
            Input::RateLimit(input) => Input::RateLimit(RateLimitInput { settings, ..input.clone() }),
        }
    }
}

pub(super) fn run(args: BenchArgs, pulled: Option<&[u8]>) -> Result<Ran, (Option<PolicyId>, Error)> {
    let BenchArgs { eval: args, iterations } = args;
    let no_id = |e| (None, e);
    let bytes = files::read(&args.input, files::MAX_INPUT_BYTES).map_err(no_id)?;
    let mut input = match args.world {
        World::Cache => Input::Cache(files::parse_json(&bytes, &args.input).map_err(no_id)?),
        World::RateLimit => Input::RateLimit(files::parse_json(&bytes, &args.input).map_err(no_id)?),
    };
    if let Some(settings) = args.settings.as_deref().map(files::settings_arg).transpose().map_err(no_id)? {
        input = input.with_settings(settings);
    }
    let (policy, measured) = measure(&args.source, pulled, args.world, &input, iterations)?;
    let builtin = PolicySource { policy: None, builtin: Some(builtin_of(args.world).into()) };
    let (_, reference) = measure(&builtin, None, args.world, &input.with_settings("{}".into()), iterations)?;
    let ratio = measured.warm_ns_per_eval / reference.warm_ns_per_eval.max(f64::MIN_POSITIVE);
    let text = table(&measured, &reference, ratio, builtin_of(args.world));
    let body = json!({
        "bench": { "policy": measured, "builtin": { "name": builtin_of(args.world), "measured": reference },
                   "warmRatio": ratio, "iterations": iterations },
    });
    Ok(Ran { policy: id(&policy), body, text: Some(text) })
}

fn builtin_of(world: World) -> &'static str {
    match world {
        World::Cache => "adaptive-ttl",
        World::RateLimit => "adaptive-rate-limit",
    }
}

/// Loads on a fresh host (so the compilation is timed), then times first calls and warm calls.
fn measure(
    source: &PolicySource,
    pulled: Option<&[u8]>,
    world: World,
    input: &Input,
    iterations: u32,
) -> Result<(std::sync::Arc<Policy>, Measured), (Option<PolicyId>, Error)> {
    let host = PolicyHost::new(HostConfig::default()).map_err(|e| (None, e))?;
    let started = Instant::now();
    let policy = load(&host, source, pulled, world).map_err(|e| (None, e))?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let failed = |e| (id(&policy), e);
    let mut first = Duration::ZERO;
    for tenant in 0..FIRST_CALLS {
        let fresh = host
            .cached(&format!("bench-{tenant}"), world, policy.sha256())
            .ok_or_else(|| failed(Error::Internal("a loaded policy was not cached".into())))?;
        let fresh = fresh.map_err(failed)?;
        let started = Instant::now();
        input.evaluate(&fresh).map_err(failed)?;
        first += started.elapsed();
    }
    for _ in 0..iterations.min(1_000) {
        input.evaluate(&policy).map_err(failed)?;
    }
    let started = Instant::now();
    for _ in 0..iterations {
        input.evaluate(&policy).map_err(failed)?;
    }
    let measured = Measured {
        load_ms,
        first_call_us: first.as_secs_f64() * 1e6 / f64::from(FIRST_CALLS),
        warm_ns_per_eval: started.elapsed().as_secs_f64() * 1e9 / f64::from(iterations),
        fuel_per_call: policy.last_fuel_used(),
        peak_memory_bytes: policy.peak_memory_bytes(),
    };
    Ok((policy, measured))
}

fn table(policy: &Measured, builtin: &Measured, ratio: f64, builtin_name: &str) -> String {
    let row = |name: &str, m: &Measured| {
        format!(
            "{name:<22} {:>10.1} {:>14.1} {:>12.0} {:>10} {:>12}\n",
            m.load_ms, m.first_call_us, m.warm_ns_per_eval, m.fuel_per_call, m.peak_memory_bytes
        )
    };
    format!(
        "{:<22} {:>10} {:>14} {:>12} {:>10} {:>12}\n{}{}warm cost: {ratio:.2}x the built-in\n",
        "",
        "load ms",
        "first call us",
        "warm ns",
        "fuel",
        "peak memory",
        row("policy", policy),
        row(&format!("built-in {builtin_name}"), builtin),
    )
}
