//! `policy eval` / `policy validate` on the example inputs and the hostile fixture.

use std::path::PathBuf;

use perf_policy_host::World;
use perf_policy_host::cli::{EvalArgs, PolicyCommand, PolicySource, ValidateArgs, run};

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
    }))
    .unwrap();
    assert_eq!(outcome.exit_code, 1, "{}", outcome.output);
    let report: serde_json::Value = serde_json::from_str(&outcome.output).unwrap();
    assert_eq!(report["error"]["category"], "trap");
}

#[test]
fn validate_checks_settings_and_refuses_a_missing_input() {
    let validate = |settings: &str| {
        run(PolicyCommand::Validate(ValidateArgs {
            source: builtin("adaptive-ttl"),
            world: World::Cache,
            settings: Some(settings.into()),
        }))
        .unwrap()
    };
    assert_eq!(validate(r#"{"maxFactor": 8}"#).exit_code, 0);
    let refused = validate(r#"{"maxFactor": 0.5}"#);
    assert_eq!(refused.exit_code, 1);
    assert!(refused.output.contains("settings.maxFactor"), "{}", refused.output);
    let err = run(PolicyCommand::Eval(EvalArgs {
        source: builtin("adaptive-ttl"),
        world: World::Cache,
        input: path("missing.json"),
        settings: None,
    }))
    .unwrap_err();
    assert_eq!(err.category(), "input");
}
