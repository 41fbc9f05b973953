//! `perf-operator policy eval|validate|bench`: run a policy on example observations, for policy authors and CI (like
//! `kwctl run` or `opa eval`). The operator binary mounts [`PolicyCommand`] and prints what [`run`] returns.

mod bench;
mod files;
mod registry;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::source::sha256_hex;
use crate::types::{CacheInput, RateLimitInput};
use crate::{Error, HostConfig, Policy, PolicyHost, Result, Source, World};
pub use bench::BenchArgs;
pub use registry::{PullArgs, PushArgs, RegistryArgs};

/// The policy ran and failed or refused.
pub const EXIT_FAILED: i32 = 1;
/// Bad input: a file, its size or its JSON, or the command line.
pub const EXIT_INPUT: i32 = 2;
/// The component could not be loaded.
pub const EXIT_LOAD: i32 = 3;

/// Exit codes, the same for every `policy` command: `--help` and the docs' reference are made from it.
pub const EXIT_CODES: [(i32, &str); 4] = [
    (0, "success"),
    (
        EXIT_FAILED,
        "the policy ran and failed or refused (trap, timeout, out_of_memory, bad_output, policy_error, bad_settings)",
    ),
    (EXIT_INPUT, "bad input: a file, its size or its JSON, or the command line"),
    (
        EXIT_LOAD,
        "the component could not be loaded or pulled (load, forbidden_import, wrong_world, digest_mismatch, \
         bad_source, busy, fetch, media_type, signature)",
    ),
];

/// The exit codes as `--help` shows them.
pub fn exit_codes_help() -> String {
    let codes: Vec<String> = EXIT_CODES.iter().map(|(code, meaning)| format!("{code} {meaning}")).collect();
    format!(
        "Exit codes: {}. With --output json the printed object's error.category names the failure.",
        codes.join("; ")
    )
}

#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum PolicyCommand {
    /// Evaluate a policy on an input JSON file and print its decision.
    #[command(after_help = exit_codes_help())]
    Eval(EvalArgs),
    /// Check that a component loads as the world and accepts the settings.
    #[command(after_help = exit_codes_help())]
    Validate(ValidateArgs),
    /// Measure a policy: warm ns per evaluation, fuel per call, peak memory, load and first-call cost, side by side
    /// with the built-in policy of the same world on the same input.
    #[command(after_help = exit_codes_help())]
    Bench(BenchArgs),
    /// Push a component to an OCI registry (as `kwctl push`); prints the digests to pin.
    #[command(after_help = exit_codes_help())]
    Push(PushArgs),
    /// Pull a component from an OCI registry as the operator does (media types, digests, signatures checked).
    #[command(after_help = exit_codes_help())]
    Pull(PullArgs),
    /// The operator's compile worker (`isolate`): a component on stdin, its compiled artifact on stdout.
    #[command(hide = true)]
    CompileWorker(crate::isolate::WorkerArgs),
}

/// Which component to run.
#[derive(Args, Debug, Clone, PartialEq)]
#[group(required = true, multiple = false)]
pub struct PolicySource {
    /// Component file (`.wasm`, at most 16 MiB), or `registry://host/repository:tag|@sha256:...` (pulled as the
    /// operator pulls; see the registry options).
    #[arg(long, value_name = "FILE.wasm|registry://...")]
    pub policy: Option<PathBuf>,
    /// Built-in policy name: adaptive-ttl or adaptive-rate-limit.
    #[arg(long, value_name = "NAME")]
    pub builtin: Option<String>,
}

/// How to print the result.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// For people: the result on stdout, a failure as one line on stderr.
    #[default]
    Text,
    /// For CI: one JSON object on stdout, with `error.category` on failure.
    Json,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: PolicySource,
    /// The world the component implements.
    #[arg(long, value_enum)]
    pub world: World,
    /// Input JSON (at most 1 MiB): a cache input (classes, stats, slo, settings) or a rate-limit input (routes, slo,
    /// settings).
    #[arg(long, value_name = "FILE.json")]
    pub input: PathBuf,
    /// Settings replacing the input's: a JSON object, or a file holding one (at most 64 KiB).
    #[arg(long, value_name = "FILE.json|JSON")]
    pub settings: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
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
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// What to print, where, and the exit code (see [`EXIT_CODES`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub output: String,
    pub exit_code: i32,
    /// Print `output` on stderr (a failure in text mode).
    pub to_stderr: bool,
}

/// Exit code of a failure (see [`EXIT_CODES`]).
pub fn exit_code(error: &Error) -> i32 {
    match error {
        Error::Input { .. } => EXIT_INPUT,
        e if e.is_evaluation_failure() => EXIT_FAILED,
        Error::Internal(_) => EXIT_FAILED,
        _ => EXIT_LOAD,
    }
}

/// Runs a command. Async for the registry's requests; compiling and evaluating block the calling thread.
pub async fn run(command: PolicyCommand) -> Result<Outcome> {
    let host = PolicyHost::new(HostConfig::default())?;
    Ok(match command {
        PolicyCommand::Eval(args) => {
            let output = args.output;
            let pulled = registry::pulled_source(&args.source, &args.registry).await;
            report(output, pulled.map_err(|e| (None, e)).and_then(|p| eval(&host, args, p.as_deref())))
        }
        PolicyCommand::Validate(args) => {
            let output = args.output;
            let pulled = registry::pulled_source(&args.source, &args.registry).await;
            report(output, pulled.map_err(|e| (None, e)).and_then(|p| validate(&host, args, p.as_deref())))
        }
        PolicyCommand::Bench(args) => {
            let output = args.eval.output;
            let pulled = registry::pulled_source(&args.eval.source, &args.eval.registry).await;
            report(output, pulled.map_err(|e| (None, e)).and_then(|p| bench::run(args, p.as_deref())))
        }
        PolicyCommand::Push(args) => {
            let output = args.output;
            report(output, registry::run_push(args).await)
        }
        PolicyCommand::Pull(args) => {
            let output = args.output;
            report(output, registry::run_pull(args).await)
        }
        // Its output is binary and goes straight to stdout: the binary's `main` calls `isolate::serve` itself.
        PolicyCommand::CompileWorker(_) => Outcome {
            output: "policy compile-worker is run by the operator, through isolate::serve".into(),
            exit_code: EXIT_INPUT,
            to_stderr: true,
        },
    })
}

/// The result of a command: the policy it ran, its report, and how people read it (default: the report as JSON).
struct Ran {
    policy: Option<PolicyId>,
    body: serde_json::Value,
    text: Option<String>,
}

impl Ran {
    fn new(policy: &Policy, body: serde_json::Value) -> Self {
        Self { policy: id(policy), body, text: None }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PolicyId {
    sha256: String,
    world: World,
}

fn id(policy: &Policy) -> Option<PolicyId> {
    Some(PolicyId { sha256: policy.sha256().to_string(), world: policy.world() })
}

fn eval(host: &PolicyHost, args: EvalArgs, pulled: Option<&[u8]>) -> Result<Ran, (Option<PolicyId>, Error)> {
    let policy = load(host, &args.source, pulled, args.world).map_err(|e| (None, e))?;
    let failed = |e| (id(&policy), e);
    let input = files::read(&args.input, files::MAX_INPUT_BYTES).map_err(failed)?;
    let settings = args.settings.as_deref().map(files::settings_arg).transpose().map_err(failed)?;
    let decision = match args.world {
        World::Cache => {
            let mut input: CacheInput = files::parse_json(&input, &args.input).map_err(failed)?;
            if let Some(settings) = settings {
                input.settings = settings;
            }
            let names = input.classes.iter().map(|c| ("name", c.name.as_str()));
            policy.evaluate_cache(&input).map(|out| with_names(json!(out), "classes", names))
        }
        World::RateLimit => {
            let mut input: RateLimitInput = files::parse_json(&input, &args.input).map_err(failed)?;
            if let Some(settings) = settings {
                input.settings = settings;
            }
            let names = input.routes.iter().map(|r| ("route", r.route.as_str()));
            policy.evaluate_rate_limit(&input).map(|out| with_names(json!(out), "routes", names))
        }
    };
    decision.map(|d| Ran::new(&policy, json!({ "decision": d }))).map_err(failed)
}

fn validate(host: &PolicyHost, args: ValidateArgs, pulled: Option<&[u8]>) -> Result<Ran, (Option<PolicyId>, Error)> {
    let policy = load(host, &args.source, pulled, args.world).map_err(|e| (None, e))?;
    let failed = |e| (id(&policy), e);
    let settings = args.settings.as_deref().map(files::settings_arg).transpose().map_err(failed)?;
    let settings = settings.unwrap_or_else(|| "{}".into());
    policy.validate_settings(&settings).map(|()| Ran::new(&policy, json!({ "settings": "valid" }))).map_err(failed)
}

/// Loads the source: `pulled` holds the bytes of a registry source, pulled and checked already.
pub(crate) fn load(
    host: &PolicyHost,
    source: &PolicySource,
    pulled: Option<&[u8]>,
    world: World,
) -> Result<std::sync::Arc<Policy>> {
    // A local file or a pulled component (checked against its pin by the pull) is trusted as given: its own digest
    // is the pin here.
    match (pulled, &source.policy, &source.builtin) {
        (Some(bytes), _, _) => host.load(world, Source::Pinned { bytes, sha256: &sha256_hex(bytes) }),
        (None, Some(path), _) => {
            let bytes = files::read(path, host.config().load_limits.max_component_bytes)?;
            host.load(world, Source::Pinned { bytes: &bytes, sha256: &sha256_hex(&bytes) })
        }
        (None, None, Some(name)) => host.load_builtin(world, name),
        (None, None, None) => {
            Err(Error::Input { what: "policy".into(), detail: "expected --policy or --builtin".into() })
        }
    }
}

fn report(mode: Output, result: Result<Ran, (Option<PolicyId>, Error)>) -> Outcome {
    match result {
        Ok(ran) => {
            let output = match mode {
                Output::Json => {
                    let mut object = ran.body;
                    object["policy"] = json!(ran.policy);
                    pretty(&object)
                }
                Output::Text => ran.text.unwrap_or_else(|| pretty(&ran.body)),
            };
            Outcome { output, exit_code: 0, to_stderr: false }
        }
        Err((policy, error)) => {
            let exit_code = exit_code(&error);
            let output = match mode {
                Output::Json => pretty(&json!({
                    "policy": policy,
                    "error": { "category": error.category(), "message": error.to_string(), "exitCode": exit_code },
                })),
                Output::Text => format!("error ({}): {error}", error.category()),
            };
            Outcome { output, exit_code, to_stderr: mode == Output::Text }
        }
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
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
