//! `perf-operator policy eval|validate`: run a policy on example observations, for policy authors and CI (like
//! `kwctl run` or `opa eval`). The operator binary mounts [`PolicyCommand`] and prints what [`run`] returns.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use crate::source::sha256_hex;
use crate::types::{CacheInput, RateLimitInput};
use crate::{Error, HostConfig, Policy, PolicyHost, Result, Source, World};

#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum PolicyCommand {
    /// Evaluate a policy on an input JSON file and print its decision.
    Eval(EvalArgs),
    /// Check that a component loads as the world and accepts the settings.
    Validate(ValidateArgs),
}

/// Which component to run.
#[derive(Args, Debug, Clone, PartialEq)]
#[group(required = true, multiple = false)]
pub struct PolicySource {
    /// Component file (`.wasm`).
    #[arg(long, value_name = "FILE.wasm")]
    pub policy: Option<PathBuf>,
    /// Built-in policy name: adaptive-ttl or adaptive-rate-limit.
    #[arg(long, value_name = "NAME")]
    pub builtin: Option<String>,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: PolicySource,
    /// The world the component implements.
    #[arg(long, value_enum)]
    pub world: World,
    /// Input JSON: a cache input (classes, stats, slo, settings) or a rate-limit input (routes, slo, settings).
    #[arg(long, value_name = "FILE.json")]
    pub input: PathBuf,
    /// Settings replacing the input's: a JSON object, or a file holding one.
    #[arg(long, value_name = "FILE.json|JSON")]
    pub settings: Option<String>,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: PolicySource,
    /// The world the component implements.
    #[arg(long, value_enum)]
    pub world: World,
    /// Settings to validate: a JSON object, or a file holding one (default `{}`).
    #[arg(long, value_name = "FILE.json|JSON")]
    pub settings: Option<String>,
}

/// What to print and the exit code: 0 success, 1 the policy failed or refused (the printed JSON says why).
/// Errors before the policy runs (files, JSON, load) are returned as `Err`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub output: String,
    pub exit_code: i32,
}

pub fn run(command: PolicyCommand) -> Result<Outcome> {
    let host = PolicyHost::new(HostConfig::default())?;
    match command {
        PolicyCommand::Eval(args) => eval(&host, args),
        PolicyCommand::Validate(args) => validate(&host, args),
    }
}

fn eval(host: &PolicyHost, args: EvalArgs) -> Result<Outcome> {
    let policy = load(host, &args.source, args.world)?;
    let input = read(&args.input)?;
    let settings = args.settings.as_deref().map(settings_arg).transpose()?;
    let result = match args.world {
        World::Cache => {
            let mut input: CacheInput = parse_json(&input, &args.input)?;
            if let Some(settings) = settings {
                input.settings = settings;
            }
            let names = input.classes.iter().map(|c| ("name", c.name.as_str()));
            policy.evaluate_cache(&input).map(|out| with_names(json!(out), "classes", names))
        }
        World::RateLimit => {
            let mut input: RateLimitInput = parse_json(&input, &args.input)?;
            if let Some(settings) = settings {
                input.settings = settings;
            }
            let names = input.routes.iter().map(|r| ("route", r.route.as_str()));
            policy.evaluate_rate_limit(&input).map(|out| with_names(json!(out), "routes", names))
        }
    };
    Ok(outcome(&policy, result.map(|decision| json!({ "decision": decision }))))
}

fn validate(host: &PolicyHost, args: ValidateArgs) -> Result<Outcome> {
    let policy = load(host, &args.source, args.world)?;
    let settings = args.settings.as_deref().map(settings_arg).transpose()?.unwrap_or_else(|| "{}".into());
    Ok(outcome(&policy, policy.validate_settings(&settings).map(|()| json!({ "settings": "valid" }))))
}

fn load(host: &PolicyHost, source: &PolicySource, world: World) -> Result<std::sync::Arc<Policy>> {
    match (&source.policy, &source.builtin) {
        (Some(path), _) => {
            let bytes = read(path)?;
            // A local file is trusted as given: its own digest is the pin.
            host.load(world, Source::Pinned { bytes: &bytes, sha256: &sha256_hex(&bytes) })
        }
        (None, Some(name)) => host.load_builtin(world, name),
        (None, None) => Err(Error::Input { what: "policy".into(), detail: "expected --policy or --builtin".into() }),
    }
}

fn outcome(policy: &Policy, result: Result<serde_json::Value>) -> Outcome {
    let (mut report, exit_code) = match result {
        Ok(value) => (value, 0),
        Err(e) => (json!({ "error": { "category": e.category(), "message": e.to_string() } }), 1),
    };
    report["policy"] = json!({ "sha256": policy.sha256(), "world": policy.world() });
    let output = serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    Outcome { output, exit_code }
}

/// Outputs are positional; for people, print each entry with the name of its input entry.
fn with_names<'a>(
    mut output: serde_json::Value,
    list: &str,
    names: impl Iterator<Item = (&'a str, &'a str)>,
) -> serde_json::Value {
    if let Some(entries) = output.get_mut(list).and_then(serde_json::Value::as_array_mut) {
        for (entry, (key, name)) in entries.iter_mut().zip(names) {
            if let Some(object) = entry.as_object_mut() {
                object.insert(key.to_string(), json!(name));
            }
        }
    }
    output
}

/// `--settings`: inline JSON if it starts with `{`, else a file; must be a JSON object.
fn settings_arg(arg: &str) -> Result<String> {
    let text = if arg.trim_start().starts_with('{') { arg.to_string() } else { read_text(Path::new(arg))? };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) if value.is_object() => Ok(value.to_string()),
        Ok(_) => Err(Error::Input { what: "--settings".into(), detail: "expected a JSON object".into() }),
        Err(e) => Err(Error::Input { what: "--settings".into(), detail: format!("invalid JSON: {e}") }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Input { what: format!("reading {}", path.display()), detail: e.to_string() })
}

fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|e| Error::Input { what: format!("reading {}", path.display()), detail: e.to_string() })
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Input { what: format!("parsing {}", path.display()), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: PolicyCommand,
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn eval_parses_and_needs_exactly_one_source() {
        let cli =
            Cli::try_parse_from(["x", "eval", "--builtin", "adaptive-ttl", "--world", "cache", "--input", "in.json"])
                .unwrap();
        let PolicyCommand::Eval(args) = cli.command else { panic!("expected eval") };
        assert_eq!((args.world, args.source.builtin.as_deref()), (World::Cache, Some("adaptive-ttl")));
        assert!(Cli::try_parse_from(["x", "eval", "--world", "cache", "--input", "in.json"]).is_err());
        let both = ["x", "validate", "--builtin", "a", "--policy", "p.wasm", "--world", "rate-limit"];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn settings_must_be_an_object() {
        assert_eq!(settings_arg(r#"{ "a": 1 }"#).unwrap(), r#"{"a":1}"#);
        assert_eq!(settings_arg("{nope").unwrap_err().category(), "input");
        assert!(settings_arg("/does/not/exist.json").unwrap_err().to_string().contains("/does/not/exist.json"));
    }
}
