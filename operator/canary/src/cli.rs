//! `perf-operator canary ...`: manual control, progress, one-off analysis, and the schedule for `plan`.

use crate::analysis::{Check, QueryContext, checks};
use crate::analyze::{AnalyzeArgs, exit_codes_help};
use crate::command::Command;
use crate::objects;
use crate::split::{self, Split};
use crate::{Error, Result};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use perf_operator_api::{CanarySpec, CanaryStatus, NoDataPolicy, PerformanceProfile, Slo};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

pub use crate::analyze::{
    EXIT_ENDPOINT, EXIT_FAIL, EXIT_INPUT, EXIT_NO_DATA, EXIT_PASS, EXIT_UNREACHABLE, analyze, exit_code,
};

/// Canary commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CanaryCommand {
    /// Show the canary's state; with --watch, print a line at each change until the run ends.
    Status {
        #[command(flatten)]
        profile: ProfileRef,
        #[command(flatten)]
        polling: Polling,
    },
    /// Show the run: status, stage and weights, both sides' Deployments (images, pods ready), latest analyses;
    /// with --watch, again at each change until the run ends.
    Get {
        #[command(flatten)]
        profile: ProfileRef,
        #[command(flatten)]
        polling: Polling,
        /// Output format: text (default) or json (the same fields, for scripts).
        #[arg(short, long, value_enum, default_value_t = ViewFormat::Text)]
        output: ViewFormat,
    },
    /// Hold the run: no analysis, no step; the deadline stops.
    Pause(ProfileRef),
    /// Continue a paused run.
    Resume(ProfileRef),
    /// Pass the current stage now (without its analysis); with --full, skip every remaining stage and promote.
    Promote {
        #[command(flatten)]
        profile: ProfileRef,
        /// Skip every remaining stage and promote now.
        #[arg(long)]
        full: bool,
    },
    /// Run a rolled-back or failed template again from the first stage.
    Retry(ProfileRef),
    /// Roll back now (final for this template).
    Abort(ProfileRef),
    /// Run one analysis now against Prometheus, of a live profile or a file; the exit code says the verdict (see
    /// below).
    #[command(after_help = exit_codes_help())]
    Analyze(AnalyzeArgs),
}

/// How `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewFormat {
    Text,
    Json,
}

/// A profile in a namespace, and how to reach its cluster (kubectl's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileRef {
    /// PerformanceProfile name.
    pub name: String,
    /// Namespace; default: the kube context's.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The kubeconfig file, as kubectl's --kubeconfig; default: KUBECONFIG, ~/.kube/config, then in-cluster.
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context, as kubectl's --context; default: the current one.
    #[arg(long)]
    pub context: Option<String>,
}

/// The client configuration `profile`'s flags name (kubectl's rules: the file, else KUBECONFIG or ~/.kube/config,
/// else in-cluster; the context, else the current one).
pub async fn kube_config(profile: &ProfileRef) -> Result<kube::Config> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let failed = |action: String| move |e: kube::Error| Error::Kube { action, source: Box::new(e) };
    let options = KubeConfigOptions { context: profile.context.clone(), ..KubeConfigOptions::default() };
    match (&profile.kubeconfig, &profile.context) {
        (Some(path), _) => {
            let read = format!("read the kubeconfig {}", path.display());
            let file = Kubeconfig::read_from(path).map_err(|e| failed(read)(kube::Error::InferKubeconfig(e)))?;
            let action = format!("use the kubeconfig {}", path.display());
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| failed(action)(kube::Error::InferKubeconfig(e)))
        }
        (None, Some(context)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| failed(format!("use the kubeconfig context {context}"))(kube::Error::InferKubeconfig(e))),
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| failed("find a kubeconfig or an in-cluster config".into())(kube::Error::InferConfig(e))),
    }
}

pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    perf_operator_api::duration::parse_duration(text)
}

/// A duration more than zero (a deadline of 0 would time every query out before it is asked).
pub(crate) fn positive_interval(text: &str) -> Result<Duration, String> {
    match parse_interval(text)? {
        d if d.is_zero() => Err(format!("{text:?} is zero: expected a duration above 0, e.g. 10s")),
        d => Ok(d),
    }
}

/// Runs a command, printing to stdout; returns the process exit code.
pub async fn run(cmd: CanaryCommand) -> Result<i32> {
    let mut out = std::io::stdout();
    run_to(cmd, &mut out).await
}

/// [`run`] writing to `out`.
pub async fn run_to(cmd: CanaryCommand, out: &mut (dyn Write + Send)) -> Result<i32> {
    match cmd {
        CanaryCommand::Analyze(args) => analyze(&args, out).await,
        CanaryCommand::Status { profile, polling } => {
            let api = profiles(&profile).await?;
            status(&api, &profile.name, polling, out).await
        }
        CanaryCommand::Get { profile, polling, output } => {
            let api = profiles(&profile).await?;
            get(&api, &profile.name, polling, output, out).await
        }
        CanaryCommand::Pause(p) => send(&p, "pause", out).await,
        CanaryCommand::Resume(p) => send(&p, "resume", out).await,
        CanaryCommand::Promote { profile, full } => {
            let command = if full { Command::PromoteFull } else { Command::Promote };
            send(&profile, command.verb(), out).await
        }
        CanaryCommand::Retry(p) => send(&p, Command::Retry.verb(), out).await,
        CanaryCommand::Abort(p) => send(&p, "abort", out).await,
    }
}

async fn profiles(profile: &ProfileRef) -> Result<Api<PerformanceProfile>> {
    let config = kube_config(profile).await?;
    let client = Client::try_from(config).map_err(Error::kube("connect to the cluster"))?;
    let ns = profile.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    Ok(Api::namespaced(client, &ns))
}

async fn send(profile: &ProfileRef, verb: &str, out: &mut (dyn Write + Send)) -> Result<i32> {
    let api = profiles(profile).await?;
    send_command(&api, &profile.name, verb, Timestamp::now()).await?;
    writeln!(out, "{verb} sent to {}", profile.name).map_err(Error::Output)?;
    Ok(0)
}

/// Sets the command annotation to `VERB@NOW` (the nonce makes a repeated verb a new command).
pub async fn send_command(api: &Api<PerformanceProfile>, name: &str, verb: &str, now: Timestamp) -> Result<()> {
    let value = format!("{verb}@{now}");
    let patch = serde_json::json!({ "metadata": { "annotations": { objects::COMMAND_ANNOTATION: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(format!("annotate {name}")))?;
    Ok(())
}

/// Whether, and how often, a command polls until the run ends (`status`, `get`).
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Polling {
    /// Keep polling and print again at each change, until the run ends.
    #[arg(long, short)]
    pub watch: bool,
    /// Poll interval for --watch, e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = positive_interval)]
    pub interval: Duration,
}

/// `get`: the view of the run (see [`crate::view`]); with `watch`, again at each change until the run ends.
pub async fn get(
    api: &Api<PerformanceProfile>,
    name: &str,
    polling: Polling,
    format: ViewFormat,
    out: &mut (dyn Write + Send),
) -> Result<i32> {
    let deployments: Api<Deployment> = Api::namespaced(api.clone().into_client(), api.namespace().unwrap_or("default"));
    let mut last = String::new();
    loop {
        let profile = api.get(name).await.map_err(Error::kube(format!("get PerformanceProfile {name}")))?;
        let target = &profile.spec.target_ref.name;
        let read = |name: String| {
            let api = deployments.clone();
            async move { api.get_opt(&name).await.map_err(Error::kube(format!("get Deployment {name}"))) }
        };
        let (primary, canary) =
            futures::try_join!(read(objects::primary_name(target)), read(objects::canary_name(target)))?;
        let view = crate::view::View::of(&profile, primary.as_ref(), canary.as_ref());
        let shown = match format {
            ViewFormat::Text => crate::view::render(&view, Timestamp::now(), 5),
            ViewFormat::Json => {
                serde_json::to_string_pretty(&view).map_err(|source| Error::Encode { what: "the view", source })? + "\n"
            }
        };
        // Compared as data: the text's deadline counts down, the view's is a fixed time.
        let compared = serde_json::to_string(&view).unwrap_or_default();
        if compared != last {
            if !last.is_empty() {
                writeln!(out, "---").map_err(Error::Output)?;
            }
            write!(out, "{shown}").map_err(Error::Output)?;
            last = compared;
        }
        if !polling.watch || view.settled() {
            return Ok(0);
        }
        tokio::time::sleep(polling.interval).await;
    }
}

/// Prints the status; with `watch`, a line per change until the run is over.
pub async fn status(
    api: &Api<PerformanceProfile>,
    name: &str,
    polling: Polling,
    out: &mut (dyn Write + Send),
) -> Result<i32> {
    let mut last = String::new();
    loop {
        let profile = api.get(name).await.map_err(Error::kube(format!("get PerformanceProfile {name}")))?;
        let status = profile.status.and_then(|s| s.canary).unwrap_or_default();
        let mut line = progress_line(&status, Timestamp::now());
        if profile.spec.suspend {
            // The run stands still until the profile is resumed: say why.
            line.push_str(" (profile suspended: spec.suspend)");
        }
        if line != last {
            writeln!(out, "{line}").map_err(Error::Output)?;
            last = line;
        }
        if !polling.watch || crate::view::settled(status.phase) {
            return Ok(0);
        }
        tokio::time::sleep(polling.interval).await;
    }
}

/// One line about a run, e.g. `Progressing stage 2/4 weight 25% (achieved 25%) canary 1/primary 3 ...`.
pub fn progress_line(s: &CanaryStatus, now: Timestamp) -> String {
    let mut line = format!("{:?}", s.phase);
    if s.paused {
        line.push_str(" (paused)");
    }
    if let Some(stage) = &s.stage {
        line.push_str(&format!(" stage {stage}"));
    }
    line.push_str(&format!(" weight {}%", s.weight));
    if let Some(achieved) = s.achieved_weight.filter(|a| *a != s.weight) {
        line.push_str(&format!(" (achieved {achieved}%)"));
    }
    line.push_str(&format!(
        " pods canary {} primary {} failed checks {}",
        s.canary_replicas, s.primary_replicas, s.failed_checks
    ));
    if let Some(deadline) = &s.deadline {
        let left = deadline.0.duration_since(now).as_secs().max(0);
        line.push_str(&format!(" deadline in {left}s"));
    }
    if let Some(message) = &s.message {
        line.push_str(&format!(": {message}"));
    }
    line
}

/// Reads a profile from YAML and checks it like the API server would.
pub fn read_profile(path: &std::path::Path) -> Result<PerformanceProfile> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile { path: shown.clone(), source })?;
    let profile: PerformanceProfile = serde_saphyr::from_str(&text)
        .map_err(|e| Error::ParseProfile { path: shown.clone(), message: e.to_string() })?;
    let problems = perf_operator_api::validation::validate_spec(&profile.spec);
    if !problems.is_empty() {
        let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(Error::ParseProfile { path: shown, message });
    }
    Ok(profile)
}

/// The schedule `plan` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// `replicaRatio` or `httpRoute`.
    pub routing: &'static str,
    pub step_interval: String,
    pub progress_deadline: String,
    pub failure_limit: u32,
    pub min_requests: u32,
    pub on_no_data: NoDataPolicy,
    pub stages: Vec<ScheduledStage>,
    pub checks: Vec<Check>,
    /// The webhooks with their placeholders substituted, in the order a round calls them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<PlannedHook>,
}

/// A webhook as a run would call it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedHook {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub url: String,
    pub timeout: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// One stage of the schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledStage {
    /// 1-based.
    pub stage: u32,
    pub weight: u32,
    #[serde(flatten)]
    pub pods: Split,
}

/// Stages, weights, pod counts (for `replicas` primary pods, not autoscaled: with an HPA on the target the primary
/// keeps its pods and the canary caps at 50 %), rendered queries and thresholds.
pub fn plan_schedule(spec: &CanarySpec, slo: &Slo, ctx: &QueryContext, replicas: u32) -> Schedule {
    let routed = spec.routing.http_route.is_some();
    let stages = spec
        .stages
        .iter()
        .enumerate()
        .map(|(i, &weight)| ScheduledStage {
            stage: i as u32 + 1,
            weight,
            pods: split::split(replicas, weight, split::mode(routed, false)),
        })
        .collect();
    Schedule {
        routing: if routed { "httpRoute" } else { "replicaRatio" },
        step_interval: spec.step_interval.clone(),
        progress_deadline: spec.progress_deadline.clone(),
        failure_limit: spec.analysis.failure_limit,
        min_requests: spec.analysis.min_requests,
        on_no_data: spec.analysis.on_no_data,
        stages,
        checks: checks(spec, slo, ctx),
        webhooks: planned_hooks(spec, ctx),
    }
}

fn planned_hooks(spec: &CanarySpec, ctx: &QueryContext) -> Vec<PlannedHook> {
    let hooks = crate::hooks::HookContext {
        profile: "",
        namespace: &ctx.namespace,
        target: &ctx.target,
        routing: &spec.routing,
    };
    perf_operator_api::HookType::ALL
        .into_iter()
        .flat_map(|kind| crate::hooks::calls(spec, kind, &hooks, &perf_operator_api::CanaryStatus::default(), ""))
        .map(|call| PlannedHook {
            name: call.name,
            kind: call.kind.name(),
            url: call.url,
            timeout: format!("{}s", call.timeout.as_secs()),
            metadata: call.payload.metadata,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use perf_operator_api::CanaryPhase;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        canary: CanaryCommand,
    }

    #[test]
    fn the_schedule_lists_the_webhooks_as_a_run_would_call_them() {
        let mut spec = CanarySpec::default();
        spec.routing.canary_port = Some(8080);
        let metadata = [("cmd".to_string(), "hey http://{{canaryAddress}}/".to_string())].into();
        spec.analysis.webhooks = vec![perf_operator_api::Hook {
            name: "load".into(),
            kind: perf_operator_api::HookType::Rollout,
            url: "http://lt.{{namespace}}/".into(),
            timeout: Some("5s".into()),
            metadata,
        }];
        let ctx = QueryContext { namespace: "shop".into(), target: "web".into() };
        let schedule = plan_schedule(&spec, &Slo::default(), &ctx, 4);
        let hook = &schedule.webhooks[0];
        assert_eq!((hook.kind, hook.url.as_str(), hook.timeout.as_str()), ("rollout", "http://lt.shop/", "5s"));
        assert_eq!(hook.metadata["cmd"], "hey http://web-canary.shop.svc:8080/");
        let without = plan_schedule(&CanarySpec::default(), &Slo::default(), &ctx, 4);
        assert!(serde_json::to_value(&without).unwrap().get("webhooks").is_none());
    }

    #[test]
    fn cli_is_well_formed_and_parses_commands() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["x", "pause", "web", "-n", "shop"]);
        assert!(
            matches!(cli.canary, CanaryCommand::Pause(ProfileRef { ref name, namespace: Some(ref ns), .. }) if name == "web" && ns == "shop")
        );
        let cli = Cli::parse_from(["x", "status", "web", "--watch", "--interval", "500ms"]);
        assert!(
            matches!(cli.canary, CanaryCommand::Status { polling: Polling { watch: true, interval }, .. } if interval == Duration::from_millis(500))
        );
    }

    #[test]
    fn analyze_help_lists_every_exit_code() {
        let help = Cli::command().find_subcommand_mut("analyze").unwrap().render_help().to_string();
        for code in [EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_ENDPOINT] {
            assert!(help.contains(&format!("\n  {code}  ")), "exit {code} missing from:\n{help}");
        }
        let live = Cli::parse_from(["x", "analyze", "web", "-n", "shop", "--context", "prod"]);
        assert!(
            matches!(live.canary, CanaryCommand::Analyze(AnalyzeArgs { name: Some(ref n), file: None, .. }) if n == "web")
        );
        for wrong in [
            &["x", "analyze"][..],
            &["x", "analyze", "web", "-f", "p.yaml"],
            &["x", "analyze", "-f", "p.yaml", "--context", "prod"],
            &["x", "analyze", "web", "--templates", "t.yaml"],
        ] {
            assert!(Cli::try_parse_from(wrong).is_err(), "{wrong:?} parsed");
        }
        let get = Cli::parse_from(["x", "get", "web", "-w", "-o", "json"]);
        assert!(matches!(
            get.canary,
            CanaryCommand::Get { polling: Polling { watch: true, .. }, output: ViewFormat::Json, .. }
        ));
        let cli = Cli::parse_from(["x", "analyze", "-f", "p.yaml", "--timeout", "3s"]);
        assert!(
            matches!(cli.canary, CanaryCommand::Analyze(AnalyzeArgs { timeout, .. }) if timeout == Duration::from_secs(3))
        );
    }

    #[test]
    fn plan_lists_stages_pods_queries_and_thresholds() {
        let ctx = QueryContext { namespace: "shop".into(), target: "web".into() };
        let schedule = plan_schedule(&CanarySpec::default(), &Slo::default(), &ctx, 9);
        let weights: Vec<(u32, u32, u32, u32)> =
            schedule.stages.iter().map(|s| (s.weight, s.pods.primary, s.pods.canary, s.pods.achieved_weight)).collect();
        // The primary gives pods up as the canary grows, never leaving fewer than 9 serving.
        assert_eq!(weights, [(10, 9, 1, 10), (25, 9, 3, 25), (50, 5, 5, 50), (100, 0, 9, 100)]);
        let json = serde_json::to_value(&schedule).unwrap();
        assert_eq!(json["stages"][1]["achievedWeight"], 25);
        assert_eq!(json["checks"][1]["name"], "p99-latency");
        assert!(json["checks"][2]["query"].as_str().unwrap().contains("web-canary-.*"));
    }

    #[test]
    fn progress_line_shows_stage_weight_and_time_left() {
        let now = Timestamp::from_second(1_000).unwrap();
        let status = CanaryStatus {
            phase: CanaryPhase::Progressing,
            stage: Some("2/4".into()),
            weight: 25,
            achieved_weight: Some(20),
            deadline: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::from_second(1_090).unwrap(),
            )),
            ..CanaryStatus::default()
        };
        let line = progress_line(&status, now);
        assert!(line.starts_with("Progressing stage 2/4 weight 25% (achieved 20%)"), "{line}");
        assert!(line.contains("deadline in 90s"), "{line}");
    }

    #[test]
    fn a_deadline_of_zero_is_refused() {
        assert!(positive_interval("0s").unwrap_err().contains("is zero"));
        assert!(positive_interval("0").is_err());
        assert_eq!(positive_interval("1500ms"), Ok(std::time::Duration::from_millis(1500)));
    }

    #[tokio::test]
    async fn the_kubeconfig_and_context_flags_pick_the_cluster_as_kubectl_does() {
        let path = std::env::temp_dir().join(format!("perf-canary-kubeconfig-{}.yaml", std::process::id()));
        let file = "apiVersion: v1\nkind: Config\ncurrent-context: a\n\
            clusters:\n- {name: a, cluster: {server: 'https://a.example:6443'}}\n\
            - {name: b, cluster: {server: 'https://b.example:6443'}}\n\
            users:\n- {name: u, user: {token: t}}\n\
            contexts:\n- {name: a, context: {cluster: a, user: u, namespace: team-a}}\n\
            - {name: b, context: {cluster: b, user: u, namespace: team-b}}\n";
        std::fs::write(&path, file).unwrap();
        let reference = |context: Option<&str>| ProfileRef {
            name: "web".into(),
            namespace: None,
            kubeconfig: Some(path.clone()),
            context: context.map(String::from),
        };
        let current = kube_config(&reference(None)).await.unwrap();
        assert_eq!((current.cluster_url.host(), current.default_namespace.as_str()), (Some("a.example"), "team-a"));
        let other = kube_config(&reference(Some("b"))).await.unwrap();
        assert_eq!((other.cluster_url.host(), other.default_namespace.as_str()), (Some("b.example"), "team-b"));
        let missing = kube_config(&reference(Some("c"))).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("kubeconfig"), "{missing}");
        let absent = ProfileRef { kubeconfig: Some("/nonexistent/kubeconfig".into()), ..reference(None) };
        let error = kube_config(&absent).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(error, "read the kubeconfig /nonexistent/kubeconfig");
        let _ = std::fs::remove_file(&path);
    }
}
