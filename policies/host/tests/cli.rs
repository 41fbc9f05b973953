//! `policy eval` / `policy validate` on the example inputs and the hostile fixture.

use std::path::PathBuf;

use perf_policy_host::World;
use perf_policy_host::cli::{BenchArgs, EvalArgs, Output, PolicyCommand, PolicySource, ValidateArgs};

/// The CLI's commands, run as the binary runs them (on a runtime: a registry source is pulled asynchronously).
fn run(command: PolicyCommand) -> perf_policy_host::Result<perf_policy_host::cli::Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(perf_policy_host::cli::run(command))
}

fn path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn builtin(name: &str) -> PolicySource {
    PolicySource { policy: None, builtin: Some(name.into()) }
}

#[test]
fn eval_prints_the_decision_of_a_builtin() {
    let outcome = run(PolicyCommand::Eval(EvalArgs {
        source: builtin("adaptive-rate-limit"),
        world: World::RateLimit,
        input: path("../examples/rate-limit-input.json"),
        settings: None,
        registry: Default::default(),
        output: Output::Json,
    }))
    .unwrap();
    assert_eq!(outcome.exit_code, 0, "{}", outcome.output);
    let report: serde_json::Value = serde_json::from_str(&outcome.output).unwrap();
    assert_eq!(report["decision"]["routes"].as_array().unwrap().len(), 20);
    assert_eq!(report["decision"]["routes"][0]["route"], "/api/v1/risk");
    assert_eq!(report["policy"]["world"], "rate-limit");
}

#[test]
fn eval_reports_a_policy_failure_with_exit_code_1() {
    let outcome = run(PolicyCommand::Eval(EvalArgs {
        source: PolicySource { policy: Some(path("tests/fixtures/hostile.wasm")), builtin: None },
        world: World::Cache,
        input: path("../examples/cache-input.json"),
        settings: Some(r#"{"mode": "trap"}"#.into()),
        registry: Default::default(),
        output: Output::Json,
    }))
    .unwrap();
    assert_eq!(outcome.exit_code, 1, "{}", outcome.output);
    let report: serde_json::Value = serde_json::from_str(&outcome.output).unwrap();
    assert_eq!(report["error"]["category"], "trap");
}

#[test]
fn validate_checks_settings() {
    let validate = |settings: &str| {
        run(PolicyCommand::Validate(ValidateArgs {
            source: builtin("adaptive-ttl"),
            world: World::Cache,
            settings: Some(settings.into()),
            registry: Default::default(),
            output: Output::Text,
        }))
        .unwrap()
    };
    assert_eq!(validate(r#"{"maxFactor": 8}"#).exit_code, 0);
    let refused = validate(r#"{"maxFactor": 0.5}"#);
    assert_eq!((refused.exit_code, refused.to_stderr), (1, true));
    assert!(refused.output.starts_with("error (bad_settings): "), "{}", refused.output);
    assert!(refused.output.contains("settings.maxFactor"), "{}", refused.output);
}

fn eval(source: PolicySource, world: World, input: &str, settings: Option<&str>) -> (i32, serde_json::Value) {
    let outcome = run(PolicyCommand::Eval(EvalArgs {
        source,
        world,
        input: path(input),
        settings: settings.map(str::to_string),
        registry: Default::default(),
        output: Output::Json,
    }))
    .unwrap();
    let report = serde_json::from_str(&outcome.output).unwrap_or_else(|e| panic!("{e}: {}", outcome.output));
    (outcome.exit_code, report)
}

fn fixture(name: &str) -> PolicySource {
    PolicySource { policy: Some(path(&format!("tests/fixtures/{name}"))), builtin: None }
}

/// A source, world, input and settings, and the exit code and category expected.
type Case = (PolicySource, World, &'static str, Option<&'static str>, i32, &'static str);

/// Every failure has its own exit code and category in the JSON, so CI can tell them apart.
#[test]
fn exit_codes_and_categories_tell_failures_apart() {
    let cache_input = "../examples/cache-input.json";
    let cases: [Case; 7] = [
        (builtin("adaptive-ttl"), World::Cache, cache_input, None, 0, ""),
        (fixture("hostile.wasm"), World::Cache, cache_input, Some(r#"{"mode":"loop"}"#), 1, "timeout"),
        (fixture("hostile.wasm"), World::Cache, cache_input, Some(r#"{"mode":"ttl-huge"}"#), 1, "bad_output"),
        (builtin("adaptive-ttl"), World::Cache, "missing.json", None, 2, "input"),
        (builtin("adaptive-ttl"), World::Cache, "/dev/zero", None, 2, "input"),
        (fixture("hostile.wasm"), World::RateLimit, cache_input, None, 3, "wrong_world"),
        (fixture("multi-memory.wasm"), World::Cache, cache_input, None, 3, "load"),
    ];
    for (source, world, input, settings, code, category) in cases {
        let what = format!("{source:?} {input} {settings:?}");
        let (exit_code, report) = eval(source, world, input, settings);
        assert_eq!(exit_code, code, "{what}: {report}");
        if code == 0 {
            assert!(report.get("error").is_none(), "{what}: {report}");
        } else {
            assert_eq!(report["error"]["category"], category, "{what}: {report}");
            assert_eq!(report["error"]["exitCode"], code, "{what}: {report}");
        }
    }
}

#[test]
fn a_load_failure_in_text_mode_is_one_line_with_its_category() {
    let outcome = run(PolicyCommand::Validate(ValidateArgs {
        source: fixture("version-99.0.0.wasm"),
        world: World::Cache,
        settings: None,
        registry: Default::default(),
        output: Output::Text,
    }))
    .unwrap();
    assert_eq!((outcome.exit_code, outcome.to_stderr), (3, true));
    assert!(outcome.output.starts_with("error (wrong_world): "), "{}", outcome.output);
    assert!(outcome.output.contains("perf:policy@99.0.0"), "{}", outcome.output);
    assert_eq!(outcome.output.lines().count(), 1, "{}", outcome.output);
}

#[test]
fn a_reason_is_never_printed_raw() {
    let (code, report) =
        eval(fixture("hostile.wasm"), World::Cache, "../examples/cache-input.json", Some(r#"{"mode":"nasty-reason"}"#));
    assert_eq!(code, 0, "{report}");
    let reason = report["decision"]["reason"].as_str().unwrap();
    assert!(reason.chars().all(|c| !c.is_control() && !('\u{2028}'..='\u{202e}').contains(&c)), "{reason:?}");
    assert!(reason.contains("\\u{202e}") && reason.contains("\\u{1b}"), "{reason:?}");
}

fn bench(settings: &str, iterations: u32, output: Output) -> perf_policy_host::cli::Outcome {
    let eval = EvalArgs {
        source: fixture("hostile.wasm"),
        world: World::Cache,
        input: path("../examples/cache-input.json"),
        settings: Some(settings.into()),
        registry: Default::default(),
        output,
    };
    run(PolicyCommand::Bench(BenchArgs { eval, iterations })).unwrap()
}

#[test]
fn bench_compares_with_the_builtin() {
    let outcome = bench(r#"{"mode":"echo"}"#, 200, Output::Json);
    assert_eq!(outcome.exit_code, 0, "{}", outcome.output);
    let report: serde_json::Value = serde_json::from_str(&outcome.output).unwrap();
    for side in [&report["bench"]["policy"], &report["bench"]["builtin"]["measured"]] {
        assert!(side["warmNsPerEval"].as_f64().unwrap() > 0.0, "{report}");
        assert!(side["fuelPerCall"].as_u64().unwrap() > 0, "{report}");
        assert!(side["peakMemoryBytes"].as_u64().unwrap() >= 65_536, "{report}");
    }
    assert_eq!(report["bench"]["builtin"]["name"], "adaptive-ttl");
    assert!(report["bench"]["warmRatio"].as_f64().unwrap() > 0.0);
    let text = bench(r#"{"mode":"echo"}"#, 10, Output::Text);
    assert!(text.output.contains("built-in adaptive-ttl") && text.output.contains("warm ns"), "{}", text.output);
    let failing = bench(r#"{"mode":"trap"}"#, 10, Output::Text);
    assert_eq!((failing.exit_code, failing.to_stderr), (1, true), "{}", failing.output);
}
