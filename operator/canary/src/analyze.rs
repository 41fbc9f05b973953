//! `perf-operator canary analyze`: one analysis of a profile's gates against Prometheus, with no cluster. Every
//! outcome has its own exit code, and the last line printed says the same thing as the code.

use crate::analysis::{Analysis, Asking, Prometheus, QueryContext, Trouble, analyse};
use crate::templates::Templates;
use crate::{Error, Result, objects};
use kube::ResourceExt;
use perf_operator_api::{CheckVerdict, PerformanceProfile};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Every check passed: the stage would advance.
pub const EXIT_PASS: i32 = 0;
/// A check failed (a query Prometheus rejects included).
pub const EXIT_FAIL: i32 = 1;
/// Bad input or usage (clap's own usage errors exit 2 as well): the analysis did not run.
pub const EXIT_INPUT: i32 = 2;
/// No data: too few requests, no series or NaN.
pub const EXIT_NO_DATA: i32 = 3;
/// Prometheus unreachable: refused, DNS, TLS, timeout or a 5xx answer.
pub const EXIT_UNREACHABLE: i32 = 4;
/// Something answered that is not the Prometheus API we may read: 401/403, 404, a redirect, an answer over the
/// size cap, an HTML page.
pub const EXIT_ENDPOINT: i32 = 5;

/// The exit codes with their meaning: `--help` and the docs' reference are made from it.
pub const EXIT_CODES: [(i32, &str); 6] = [
    (EXIT_PASS, "pass: every check passed; the stage would advance"),
    (EXIT_FAIL, "fail: a check failed (a query Prometheus rejects included); it counts toward failureLimit"),
    (
        EXIT_INPUT,
        "bad input or usage: unreadable file, invalid YAML or profile, no canary section, invalid --prometheus URL, \
         a template not found, a live profile that cannot be read",
    ),
    (EXIT_NO_DATA, "no data: too few requests, no series or NaN; the stage would hold"),
    (EXIT_UNREACHABLE, "Prometheus unreachable: connection refused, DNS, TLS, timeout or HTTP 5xx"),
    (
        EXIT_ENDPOINT,
        "wrong endpoint or credentials: HTTP 401/403/404, a redirect, an answer over 4 MiB or an HTML page instead \
         of the Prometheus API",
    ),
];

/// The exit codes as `--help` shows them.
pub fn exit_codes_help() -> String {
    let lines: Vec<String> = EXIT_CODES.iter().map(|(code, meaning)| format!("  {code}  {meaning}")).collect();
    format!("Exit codes:\n{}", lines.join("\n"))
}

/// Arguments of `canary analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// A live PerformanceProfile, read from the cluster with its AnalysisTemplates and ClusterAnalysisTemplates
    /// (kubectl's --kubeconfig, --context and -n); or give a file with -f.
    #[arg(conflicts_with_all = ["file", "templates"], required_unless_present = "file")]
    pub name: Option<String>,
    /// PerformanceProfile YAML with a canary section, instead of a live profile.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Prometheus base URL; default: the profile's `canary.analysis.prometheus`, else the operator's built-in
    /// default (an operator's --default-prometheus is not known here: pass it).
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus: Option<String>,
    /// The live profile's namespace (default: the context's); with -f, the namespace for `{{namespace}}`
    /// (default: the file's, else `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The kubeconfig file, as kubectl's --kubeconfig (a live profile only).
    #[arg(long, conflicts_with = "file")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context, as kubectl's --context (a live profile only).
    #[arg(long, conflicts_with = "file")]
    pub context: Option<String>,
    /// Deadline of the whole analysis (its queries run concurrently), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = crate::cli::positive_interval)]
    pub timeout: Duration,
    /// Credentials, CA and headers for Prometheus.
    #[command(flatten)]
    pub access: crate::access_args::AccessArgs,
    /// Files holding the AnalysisTemplate and ClusterAnalysisTemplate documents the profile's metrics name
    /// (repeatable; other documents are skipped). A template's own Prometheus is asked with the template's headers
    /// only: its Secret and CA are in the cluster.
    #[arg(long = "templates", value_name = "FILE")]
    pub templates: Vec<PathBuf>,
}

/// What an analysis needs, read and checked before any query.
struct Prepared {
    /// The analysis's Prometheus, then each template's own.
    sources: Vec<Prometheus>,
    url: String,
    ctx: QueryContext,
    checks: Vec<crate::analysis::Check>,
    window: String,
}

/// Runs `canary analyze`, writing the report to `out`; returns the exit code. Bad input is reported on `out`
/// with [`EXIT_INPUT`]; only a failure to write is an error.
pub async fn analyze(args: &AnalyzeArgs, out: &mut (dyn Write + Send)) -> Result<i32> {
    let prepared = match prepare(args).await {
        Ok(prepared) => prepared,
        // A live profile that cannot be read is bad input too: nothing was analysed.
        Err(e) if matches!(e.category(), "input" | "spec" | "kube") => {
            // One line (YAML errors come with a drawn snippet), so that the last line is the verdict.
            let text = chain(&e);
            let first = text.lines().next().unwrap_or_default();
            writeln!(out, "bad input: {first} (exit {EXIT_INPUT})").map_err(Error::Output)?;
            return Ok(EXIT_INPUT);
        }
        Err(e) => return Err(e),
    };
    let ctx = &prepared.ctx;
    let asking = Asking { namespace: &ctx.namespace, window: &prepared.window, deadline: args.timeout };
    let sources: Vec<&dyn crate::MetricsSource> = prepared.sources.iter().map(|s| s as _).collect();
    let analysis = analyse(&sources, &prepared.checks, asking).await;
    let pods = objects::canary_name(&ctx.target);
    let header = format!("analysis of {}/{} (pods {pods}-*) on {}", ctx.namespace, ctx.target, prepared.url);
    writeln!(out, "{header}").map_err(Error::Output)?;
    print_analysis(&analysis, out).map_err(Error::Output)?;
    let (code, last) = conclusion(&analysis);
    writeln!(out, "{last} (exit {code})").map_err(Error::Output)?;
    Ok(code)
}

async fn prepare(args: &AnalyzeArgs) -> Result<Prepared> {
    let (profile, live) = match (&args.name, &args.file) {
        (Some(name), _) => {
            let (profile, templates) = read_live(args, name).await?;
            (profile, Some(templates))
        }
        (None, Some(file)) => (crate::cli::read_profile(file)?, None),
        (None, None) => {
            let message = "name a live profile, or give a file with -f".into();
            return Err(Error::InvalidSpec { field: "NAME".into(), message });
        }
    };
    // The CRD's rules first (a zero step, a window the server would refuse): what the API server would not store
    // is not analysed.
    if let Some(problem) = perf_operator_api::validation::validate_spec(&profile.spec).into_iter().next() {
        return Err(Error::InvalidSpec { field: problem.field, message: problem.message });
    }
    let spec = profile.spec.canary.as_ref().ok_or(Error::NotConfigured)?;
    let url = args.prometheus.clone().unwrap_or_else(|| spec.analysis.prometheus_url(None).to_string());
    let mut sources = vec![Prometheus::with_access(&url, args.timeout, args.access.access()?)?];
    let namespace = args.namespace.clone().or_else(|| profile.namespace()).unwrap_or_else(|| "default".into());
    let ctx = QueryContext { namespace, target: profile.spec.target_ref.name.clone() };
    // What the operator would refuse is refused here too, before any query.
    if let Some((field, message)) = crate::scope::canary_problems(spec, &ctx).into_iter().next() {
        return Err(Error::InvalidSpec { field, message });
    }
    let templates = match live {
        Some(templates) => templates,
        None => read_templates(&args.templates, &ctx.namespace)?,
    };
    let resolved = crate::templates::resolve(spec, &templates, &ctx).map_err(|problems| {
        let (field, message) = problems.into_iter().next().unwrap_or_default();
        Error::InvalidSpec { field, message }
    })?;
    for endpoint in &resolved.endpoints {
        let headers = endpoint.access.iter().flat_map(|a| a.headers.clone()).collect();
        let access = perf_prometheus::Access { headers, ..Default::default() };
        sources.push(Prometheus::with_access(&endpoint.url, args.timeout, access)?);
    }
    let checks = resolved.checks(&profile.spec.slo, &ctx);
    Ok(Prepared { sources, url, ctx, checks, window: spec.step_interval.clone() })
}

/// A live profile (checked as a file would be) and the templates its metrics name, from the cluster.
async fn read_live(args: &AnalyzeArgs, name: &str) -> Result<(PerformanceProfile, Templates)> {
    use kube::api::Api;
    let at = crate::cli::ProfileRef {
        name: name.to_string(),
        namespace: args.namespace.clone(),
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let client =
        kube::Client::try_from(crate::cli::kube_config(&at).await?).map_err(Error::kube("connect to the cluster"))?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), &ns);
    let profile = profiles.get(name).await.map_err(Error::kube(format!("get PerformanceProfile {ns}/{name}")))?;
    let Some(spec) = &profile.spec.canary else { return Ok((profile, Templates::default())) };
    let templates = crate::template_source::read(&client, &ns, spec, None).await?;
    Ok((profile, templates))
}

/// The templates in `paths` a profile of `namespace` may name.
fn read_templates(paths: &[PathBuf], namespace: &str) -> Result<Templates> {
    let mut docs = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile { path: shown.clone(), source })?;
        let values: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| Error::ParseProfile { path: shown.clone(), message: e.to_string() })?;
        docs.extend(values);
    }
    Templates::from_documents(&docs, namespace)
        .map_err(|message| Error::InvalidSpec { field: "--templates".into(), message })
}

/// `error: cause: cause`, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Exit code for an analysis: see [`EXIT_CODES`].
pub fn exit_code(analysis: &Analysis) -> i32 {
    conclusion(analysis).0
}

/// The exit code and the last line that says the same.
fn conclusion(analysis: &Analysis) -> (i32, String) {
    let not_passing = |verdict| {
        let names: Vec<&str> =
            analysis.outcomes.iter().filter(|o| o.verdict == verdict).map(|o| o.name.as_str()).collect();
        names.join(", ")
    };
    match (analysis.verdict, analysis.held_by()) {
        (CheckVerdict::Pass, _) => (EXIT_PASS, "pass: every check passed; the stage would advance".into()),
        (CheckVerdict::Fail, _) => {
            let failed = analysis.failing();
            let no_data = analysis.outcomes.iter().all(|o| o.verdict != CheckVerdict::Fail);
            let why = if no_data { " (no data, and onNoData: fail)" } else { "" };
            (EXIT_FAIL, format!("fail: {}{why}; the check counts toward failureLimit", failed.join(", ")))
        }
        (CheckVerdict::NoData, Some(Trouble::Endpoint)) => {
            (EXIT_ENDPOINT, format!("wrong endpoint or credentials: {}", first_reason(analysis, Trouble::Endpoint)))
        }
        (CheckVerdict::NoData, Some(Trouble::Unreachable)) => {
            (EXIT_UNREACHABLE, format!("unreachable: {}", first_reason(analysis, Trouble::Unreachable)))
        }
        (CheckVerdict::NoData, _) => {
            let missing = not_passing(CheckVerdict::NoData);
            (EXIT_NO_DATA, format!("no data: {missing}; the stage would hold (never a pass)"))
        }
    }
}

fn first_reason(analysis: &Analysis, trouble: Trouble) -> String {
    let outcome = analysis.outcomes.iter().find(|o| o.trouble == Some(trouble));
    outcome.and_then(|o| o.reason.clone()).unwrap_or_default()
}

fn print_analysis(analysis: &Analysis, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
    writeln!(out, "{:<16} {:>14} {:<22} VERDICT", "CHECK", "VALUE", "THRESHOLD")?;
    for o in &analysis.outcomes {
        let value = o.value.map_or_else(|| "-".to_string(), shown);
        let verdict = match o.verdict {
            CheckVerdict::Pass => "pass",
            CheckVerdict::Fail => "FAIL",
            CheckVerdict::NoData => "no data",
        };
        writeln!(out, "{:<16} {:>14} {:<22} {verdict}", o.name, value, o.threshold)?;
        if let Some(reason) = &o.reason {
            writeln!(out, "    reason: {reason}")?;
        }
        writeln!(out, "    query:  {}", o.query)?;
    }
    Ok(())
}

/// A value as Prometheus writes the special ones.
fn shown(value: f64) -> String {
    match value {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "+Inf".into(),
        v if v == f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v:.4}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &str, prometheus: &str) -> AnalyzeArgs {
        let file = PathBuf::from(file);
        let timeout = Duration::from_secs(1);
        AnalyzeArgs {
            name: None,
            file: Some(file),
            prometheus: Some(prometheus.into()),
            namespace: None,
            kubeconfig: None,
            context: None,
            timeout,
            access: Default::default(),
            templates: Vec::new(),
        }
    }

    async fn run(args: &AnalyzeArgs) -> (i32, String) {
        let mut out = Vec::new();
        let code = analyze(args, &mut out).await.unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("perf-canary-analyze-{}-{name}.yaml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    const PROFILE: &str = "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata: {name: web}\n\
                           spec:\n  targetRef: {name: web}\n";

    #[tokio::test]
    async fn bad_input_has_its_own_code_and_says_what_is_wrong() {
        let no_canary = write("no-canary", PROFILE);
        let with_canary = write("canary", &format!("{PROFILE}  canary: {{stepInterval: 30s}}\n"));
        let bad_yaml = write("bad-yaml", "spec: [unclosed");
        let zero_step = write("zero-step", &format!("{PROFILE}  canary: {{stepInterval: 0s}}\n"));
        let placeholder = write(
            "placeholder",
            &format!(
                "{PROFILE}  canary:\n    analysis:\n      metrics:\n      - {{name: m, max: 1, query: 'up{{namespace=\"{{{{namespace}}}}\", x=\"{{{{pod}}}}\"}}'}}\n"
            ),
        );
        let cases = [
            (args(zero_step.to_str().unwrap(), "http://127.0.0.1:9"), "spec.canary.stepInterval"),
            (args(placeholder.to_str().unwrap(), "http://127.0.0.1:9"), "unknown placeholder {{pod}}"),
            (args("/nonexistent/profile.yaml", "http://127.0.0.1:9"), "cannot read /nonexistent/profile.yaml: "),
            (args(bad_yaml.to_str().unwrap(), "http://127.0.0.1:9"), "is not a PerformanceProfile"),
            (args(no_canary.to_str().unwrap(), "http://127.0.0.1:9"), "profile has no canary section"),
            (args(with_canary.to_str().unwrap(), "not a url"), "invalid Prometheus URL \"not a url\""),
        ];
        for (args, expected) in cases {
            let (code, out) = run(&args).await;
            assert_eq!(code, EXIT_INPUT, "{out}");
            let last = out.lines().last().unwrap_or_default();
            assert!(last.starts_with("bad input: ") && last.contains(expected) && last.ends_with("(exit 2)"), "{out}");
            assert_eq!(out.lines().count(), 1, "no query ran: {out}");
        }
    }

    #[tokio::test]
    async fn templates_come_from_the_files_given_and_a_missing_one_is_bad_input() {
        let uses = write(
            "uses-template",
            &format!(
                "{PROFILE}  canary:\n    analysis:\n      metrics:\n      - {{name: mesh, templateRef: {{kind: ClusterAnalysisTemplate, name: mesh}}, args: {{workload: web}}}}\n"
            ),
        );
        let templates = write(
            "templates",
            "apiVersion: perf.operator.dev/v1alpha1\nkind: ClusterAnalysisTemplate\nmetadata: {name: mesh}\nspec:\n  \
             query: 'sum(up{workload=\"{{args.workload}}\"})'\n  args: [{name: workload}]\n  min: 1\n  \
             prometheus: http://127.0.0.1:9\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        );
        let (code, out) = run(&args(uses.to_str().unwrap(), "http://127.0.0.1:9")).await;
        assert_eq!(code, EXIT_INPUT, "{out}");
        assert!(
            out.contains("spec.canary.analysis.metrics[0].templateRef: ClusterAnalysisTemplate mesh not found"),
            "{out}"
        );
        let with_templates =
            AnalyzeArgs { templates: vec![templates], ..args(uses.to_str().unwrap(), "http://127.0.0.1:9") };
        let (code, out) = run(&with_templates).await;
        assert_eq!(code, EXIT_UNREACHABLE, "resolved, then asked: {out}");
        assert!(out.contains(r#"query:  sum(up{workload="web"})"#), "{out}");
    }

    #[test]
    fn special_values_are_shown_as_prometheus_writes_them() {
        assert_eq!([shown(f64::NAN), shown(f64::INFINITY), shown(0.5)], ["NaN", "+Inf", "0.5000"]);
    }

    #[test]
    fn a_run_failed_by_missing_data_names_the_checks_in_its_last_line() {
        use perf_operator_api::NoDataPolicy;
        let outcome = |name: &str, verdict, on_no_data| crate::analysis::Outcome {
            name: name.into(),
            query: "q".into(),
            value: None,
            threshold: "< 1".into(),
            verdict,
            reason: Some("the query returned no series".into()),
            trouble: None,
            on_no_data,
        };
        let analysis = Analysis {
            outcomes: vec![
                outcome("requests", CheckVerdict::Pass, NoDataPolicy::Fail),
                outcome("p99-latency", CheckVerdict::NoData, NoDataPolicy::Fail),
            ],
            verdict: CheckVerdict::Fail,
        };
        let (code, line) = conclusion(&analysis);
        assert_eq!(code, EXIT_FAIL);
        assert_eq!(line, "fail: p99-latency (no data, and onNoData: fail); the check counts toward failureLimit");
    }
}
