//! The command line: `run`, `crd`, `validate`, `plan` (and the component subcommands).

use crate::leader::LeaseConfig;
use crate::telemetry::{self, LogFormat, Metrics, Replica};
use crate::{Error, Result, api_clients, controller, exit_codes, leader, plan, shards, tenancy, validate};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

mod values;
use std::sync::Arc;
use std::time::Duration;
use values::*;

#[derive(Parser, Debug)]
#[command(
    name = "perf-operator",
    version,
    about = "Makes a service fast and keeps it safe: Redis cache, pools, ClickHouse, canary, WASM policies"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "PERF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Name of the binary when installed as a kubectl plugin (`kubectl perf ...`).
pub const PLUGIN_NAME: &str = "kubectl-perf";

/// Parses the command line. Installed (or linked) as `kubectl-perf`, the binary is a kubectl plugin: kubectl runs it
/// with the words after `kubectl perf`, and help and errors say `kubectl perf`.
pub fn parse_args() -> Cli {
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let plugin = argv0.as_deref().and_then(|p| p.file_stem()).is_some_and(|n| n == PLUGIN_NAME);
    if !plugin {
        return Cli::parse();
    }
    let matches = Cli::command().bin_name("kubectl perf").get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the cluster in KUBECONFIG or the in-cluster config.
    // Boxed: its many flags make it several times larger than the other commands.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinition as YAML (or, with --reference, its field reference as Markdown).
    Crd {
        /// Print the field reference (docs/crd-reference.md) instead of the CRD.
        #[arg(long, conflicts_with = "templates")]
        reference: bool,
        /// Print the CRDs of AnalysisTemplate and ClusterAnalysisTemplate (crds/analysistemplates.yaml) instead.
        #[arg(long)]
        templates: bool,
    },
    /// Print the reference tables (docs/reference.md): condition reasons, printer columns, metrics, exit codes and
    /// chart values, generated from the code and the chart.
    Reference,
    /// Check profiles and analysis templates offline (files, directories, multi-document YAML; a profile's
    /// `templateRef`s are resolved against the templates given); prints `file:doc:field: message` lines.
    Validate {
        /// Files or directories.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// Print everything the operator would do for the profiles in a file, without a cluster. Exit codes: 0 planned;
    /// 1 bad input (file, YAML, invalid profile: nothing is planned); 3 planned, but ClickHouse would refuse
    /// (or the operator would not send) some of the declared objects (listed under `refused`).
    Plan(PlanArgs),
    /// Canary rollouts: status, get, pause, resume, promote, retry, abort; analyze a profile's gates against Prometheus now.
    Canary {
        #[command(subcommand)]
        command: perf_canary::CanaryCommand,
    },
    /// WASM policies: evaluate or validate a component offline, for policy authors and CI; promote a profile's
    /// candidate.
    Policy {
        #[command(subcommand)]
        command: crate::promote::PolicyCommand,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Address of the admin server (/metrics, /healthz, /readyz).
    #[arg(long, env = "PERF_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Elect a leader on a Lease so only one replica reconciles.
    #[arg(long, env = "PERF_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (usually the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "perf-operator")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "PERF_LEASE_NAME", default_value = "perf-operator-leader")]
    pub lease_name: String,
    /// Identity of this replica in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "perf-operator-local")]
    pub holder: String,
    /// Lease duration in seconds: a standby takes the lease this long after the leader's last renewal.
    #[arg(long, env = "PERF_LEASE_TTL_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_ttl_seconds: u64,
    /// The leader stops acting when it could not renew for this long; shorter than the lease (default: two thirds
    /// of it), so that two replicas never act at once.
    #[arg(long, env = "PERF_LEASE_RENEW_DEADLINE_SECONDS", value_parser = clap::value_parser!(u64).range(2..))]
    pub lease_renew_deadline_seconds: Option<u64>,
    /// Watch and reconcile only these namespaces (comma-separated or repeated: a namespaced install); all
    /// namespaces when unset.
    #[arg(long, env = "PERF_WATCH_NAMESPACE", value_delimiter = ',')]
    pub watch_namespace: Vec<String>,
    /// Reconcile only profiles matching this label selector: one shard of several instances, as Flux's
    /// `--watch-label-selector`. The default instance of a sharded install takes the profiles no shard claims,
    /// e.g. `!perf.operator.dev/shard`; a shard takes `perf.operator.dev/shard=shard1`.
    #[arg(long, env = "PERF_WATCH_LABEL_SELECTOR")]
    pub watch_label_selector: Option<String>,
    /// Seconds between resyncs of a settled profile (external systems such as ClickHouse drift without events);
    /// each is jittered by 10 %.
    #[arg(long, env = "PERF_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,
    /// Profiles reconciled at the same time, over every watched namespace.
    #[arg(long, env = "PERF_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Milliseconds a trigger waits for more of the same profile before its round starts.
    #[arg(long, env = "PERF_DEBOUNCE_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub debounce_ms: u64,
    /// Seconds a whole reconcile may take before it is dropped and retried with backoff.
    #[arg(long, env = "PERF_RECONCILE_TIMEOUT_SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..))]
    pub reconcile_timeout_seconds: u64,
    /// Sustained requests per second to the API server (watches aside).
    #[arg(long, env = "PERF_KUBE_API_QPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_qps: u32,
    /// Requests to the API server that may go at once after a quiet spell.
    #[arg(long, env = "PERF_KUBE_API_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_burst: u32,
    /// Series per profile on /metrics (about 30 each); false keeps only the operator's own, for very many profiles.
    #[arg(long, env = "PERF_PROFILE_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub profile_metrics: bool,
    /// The cluster's DNS domain: the operator reaches a provisioned Redis at `<name>.<namespace>.svc.<domain>.`, a
    /// fully qualified name resolved once instead of through every search domain first.
    #[arg(long, env = "PERF_CLUSTER_DOMAIN", default_value = "cluster.local", value_parser = dns_name)]
    pub cluster_domain: String,
    /// The header a multi-tenant Prometheus selects its tenant by (`X-Scope-OrgID` for Mimir, Cortex and Loki,
    /// `THANOS-TENANT` for Thanos). When set, every query made for a profile carries it with the profile's
    /// namespace. Profiles may never set a tenant header themselves: that would read another tenant's data.
    #[arg(long, env = "PERF_PROMETHEUS_TENANT_HEADER", value_parser = header_name)]
    pub prometheus_tenant_header: Option<String>,
    /// Servers profiles may name, `[kind=]pattern` (kind: prometheus, clickhouse, postgres, redis, policy, notification, hook; none:
    /// every kind). A pattern is a host (`*.` prefix for any name under it, `{namespace}` inside a label for the
    /// profile's namespace), an address or a CIDR. Once a kind has entries, its servers must match one; without
    /// any, every host outside the reserved ranges is allowed.
    #[arg(long, env = "PERF_EGRESS_ALLOW", value_delimiter = ',', value_parser = egress_entry)]
    pub egress_allow: Vec<String>,
    /// Reserved addresses profiles may reach anyway, as CIDRs: loopback, link-local (cloud metadata), 0.0.0.0/8,
    /// multicast and the API server are denied otherwise (e.g. 127.0.0.0/8 in a test cluster).
    #[arg(long, env = "PERF_EGRESS_ALLOW_RESERVED", value_delimiter = ',', value_parser = reserved_entry)]
    pub egress_allow_reserved: Vec<String>,
    /// ClickHouse databases profiles may alter: names with `*` for any characters and `{namespace}` for the
    /// profile's, with `-` written `_` (e.g. `{namespace}`, `{namespace}_*`). Empty: any but the server's own.
    #[arg(long, env = "PERF_CLICKHOUSE_DATABASES", value_delimiter = ',', value_parser = tenancy::database_pattern)]
    pub clickhouse_database: Vec<String>,
    /// Alert label names profiles may set in `spec.slo.alerts.alertLabels` (they route alerts: `team` would reach
    /// another team's pager). Empty: any the operator does not set itself.
    #[arg(long, env = "PERF_ALERT_LABELS", value_delimiter = ',', value_parser = prometheus_label)]
    pub alert_label: Vec<String>,
    /// PrometheusRule label keys profiles may set in `spec.slo.alerts.ruleLabels` (they select which Prometheus loads
    /// the rule). Empty: any.
    #[arg(long, env = "PERF_RULE_LABELS", value_delimiter = ',')]
    pub rule_label: Vec<String>,
    /// Prometheus of every canary analysis that names none (`spec.canary.analysis.prometheus` unset); without it,
    /// `http://prometheus-operated.monitoring:9090`. The administrator's: the egress allow-list does not apply to it.
    #[arg(long, env = "PERF_DEFAULT_PROMETHEUS", value_parser = prometheus_url)]
    pub default_prometheus: Option<String>,
    /// Whether profiles may name ClusterAnalysisTemplates (the chart's features.clusterAnalysisTemplates: a
    /// namespaced install may grant no cluster-wide read).
    #[arg(long, env = "PERF_CLUSTER_ANALYSIS_TEMPLATES", default_value_t = true, action = clap::ArgAction::Set)]
    pub cluster_analysis_templates: bool,
    /// A file holding the URL of the cluster-wide receiver of canary notifications (a mounted Secret: read at each
    /// notice, so a rotation applies); every profile's run milestones go there too.
    #[arg(long, env = "PERF_NOTIFICATION_URL_FILE")]
    pub notification_url_file: Option<PathBuf>,
    /// Format of that receiver: slack, msteams or generic.
    #[arg(long, env = "PERF_NOTIFICATION_FORMAT", default_value = "slack", value_parser = notification_format)]
    pub notification_format: perf_operator_api::NotificationFormat,
    /// PromQL of the requests Envoy Gateway rejected on one route of a profile with `rateLimit.enforcement.mode:
    /// envoyGateway`, read as its rate-limit policy's rejections when the profile gives no `rejectionsQuery`
    /// (placeholders `{{namespace}}`, `{{route}}`, `{{profile}}`). The administrator's: it may read the gateway's
    /// namespace. Envoy's local rate-limit counters do not tell routes apart, so there is no built-in default.
    #[arg(long, env = "PERF_ENVOY_GATEWAY_REJECTIONS_QUERY", value_parser = rejections_template)]
    pub envoy_gateway_rejections_query: Option<String>,
    /// Memory (MiB) one compilation of a tenant's policy component may use. Components are compiled in a child
    /// process of the operator's own binary with this address-space limit on top of what the process needs to start
    /// (a policy needs a few MiB; the largest shape the load bounds accept stays under 128), killed at the compile
    /// deadline; set the pod's memory limit to the operator's own use plus this.
    #[arg(long, env = "PERF_POLICY_COMPILE_MEMORY_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=65536))]
    pub policy_compile_memory_mib: u64,
    /// Hosts a policy registry may redirect the operator to besides its own (comma-separated or repeated): the CDNs
    /// registries hand blobs to. Any other redirect is refused. An empty value allows none.
    #[arg(
        long = "policy-registry-redirect-host",
        env = "PERF_POLICY_REGISTRY_REDIRECT_HOSTS",
        value_delimiter = ',',
        default_values_t = perf_policy_host::registry::DEFAULT_REDIRECT_HOSTS.map(String::from)
    )]
    pub policy_registry_redirect_hosts: Vec<String>,
    /// A cosign public key (PEM file, or a directory of them; repeatable): every policy component a profile names must
    /// then come from a registry and be signed by one of these keys (built-in policies excepted).
    #[arg(long = "policy-cosign-key", env = "PERF_POLICY_COSIGN_KEYS", value_delimiter = ',', value_name = "FILE.pub")]
    pub policy_cosign_keys: Vec<PathBuf>,
    /// Seconds an API server response may keep a request (not a watch) waiting.
    #[arg(long, env = "PERF_KUBE_API_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub kube_api_timeout_seconds: u64,
}

impl RunArgs {
    /// The watch scope and pace these flags ask for.
    pub fn scope(&self) -> controller::Scope {
        controller::Scope {
            namespaces: self.watch_namespace.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect(),
            selector: self.watch_label_selector.clone().filter(|s| !s.trim().is_empty()),
            resync: Duration::from_secs(self.resync_seconds),
            pace: controller::Pace {
                concurrency: self.concurrency,
                debounce: Duration::from_millis(self.debounce_ms),
                reconcile_timeout: Duration::from_secs(self.reconcile_timeout_seconds),
            },
            cluster_domain: self.cluster_domain.trim_end_matches('.').to_string(),
            prometheus_tenant_header: self.prometheus_tenant_header.clone(),
            egress: self.egress(api_server_from_env()),
            clickhouse_databases: self.clickhouse_database.iter().filter(|d| !d.is_empty()).cloned().collect(),
            alert_labels: self.alert_label.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
            rule_labels: self.rule_label.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
            default_prometheus: self.default_prometheus.clone().filter(|p| !p.is_empty()),
            operator_namespace: self.lease_namespace.clone(),
            cluster_templates: self.cluster_analysis_templates,
            notifications: self
                .notification_url_file
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|url_file| crate::notify::ClusterReceiver { url_file, format: self.notification_format }),
            rate_limit_defaults: crate::enforcement::AdminDefaults {
                envoy_gateway_rejections: self.envoy_gateway_rejections_query.clone().filter(|q| !q.is_empty()),
            },
            // Without its own path (a deleted binary) the operator cannot start workers: it compiles in process.
            policy_compile_worker: perf_policy_host::isolate::CompileWorker::this_binary(
                self.policy_compile_memory_mib << 20,
            )
            .map_err(|e| tracing::warn!(error = %e, "no policy compile worker: compiling in process"))
            .ok(),
            policy_redirect_hosts: self
                .policy_registry_redirect_hosts
                .iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            policy_signers: controller::policy_registry::Signers::default(),
        }
    }

    /// The administrator's policy signing keys (`--policy-cosign-key`), read and checked: a bad file stops the start.
    pub fn policy_signers(&self) -> Result<controller::policy_registry::Signers> {
        Ok(controller::policy_registry::Signers::read(&self.policy_cosign_keys)?)
    }

    /// The egress rule these flags ask for; `api_server` are the API server's addresses, always reserved.
    pub fn egress(&self, api_server: Vec<std::net::IpAddr>) -> perf_egress::Egress {
        // Each entry passed its value parser: the rule builds.
        perf_egress::Egress::new(&self.egress_allow, &self.egress_allow_reserved, api_server).unwrap_or_default()
    }

    /// The bounds of the API client for unary calls.
    pub fn api_limits(&self) -> api_clients::Limits {
        api_clients::Limits {
            qps: NonZeroU32::new(self.kube_api_qps).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(self.kube_api_burst.max(self.kube_api_qps)).unwrap_or(NonZeroU32::MIN),
            read_timeout: Duration::from_secs(self.kube_api_timeout_seconds),
        }
    }

    /// The Lease settings; a renew deadline not shorter than the lease is refused.
    pub fn lease(&self) -> Result<LeaseConfig> {
        let ttl = Duration::from_secs(self.lease_ttl_seconds);
        let renew_deadline = self
            .lease_renew_deadline_seconds
            .map_or_else(|| LeaseConfig::default_renew_deadline(ttl), Duration::from_secs);
        if renew_deadline >= ttl {
            return Err(Error::Leader(format!(
                "--lease-renew-deadline-seconds ({}) must be shorter than --lease-ttl-seconds ({}): a standby may \
                 take the lease as soon as it expires",
                renew_deadline.as_secs(),
                ttl.as_secs()
            )));
        }
        Ok(LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            holder: self.holder.clone(),
            ttl,
            renew_deadline,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// A file with one or more PerformanceProfile documents, and the AnalysisTemplate and ClusterAnalysisTemplate
    /// documents their canary metrics name.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Diff the ClickHouse section against this live server (HTTP URL) instead of the declared tables; reports
    /// the EXPLAIN of representative queries too. Credentials in the URL are taken out of it and never printed.
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// ClickHouse user for `--clickhouse` (the profile's Secret is not read).
    #[arg(long, env = "PERF_CLICKHOUSE_USER", requires = "clickhouse")]
    pub clickhouse_user: Option<String>,
    /// File holding the password for `--clickhouse`; else the PERF_CLICKHOUSE_PASSWORD variable.
    #[arg(long, value_name = "FILE", requires = "clickhouse")]
    pub clickhouse_password_file: Option<PathBuf>,
    /// Read the scrape intervals of this Prometheus and warn when a canary's `{{interval}}` (its step interval) is
    /// shorter than two of them.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Decide on these observations (YAML or JSON: `replicas`, `hpaMaxReplicas`, `redis` over one interval, `traffic` per route)
    /// instead of the example values.
    #[arg(long, value_name = "FILE")]
    pub observations: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// The CRD as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> Result<String> {
    let body = yaml_of(&perf_operator_api::crd())?;
    Ok(format!("# Generated by `perf-operator crd` from crds/src; do not edit.\n---\n{body}"))
}

/// The analysis template CRDs as YAML, exactly as checked in as `crds/analysistemplates.yaml`.
pub fn template_crds_yaml() -> Result<String> {
    let mut out = String::from("# Generated by `perf-operator crd --templates` from crds/src; do not edit.\n");
    for crd in perf_operator_api::template_crds() {
        out.push_str("---\n");
        out.push_str(&yaml_of(&crd)?);
    }
    Ok(out)
}

fn yaml_of<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_saphyr::to_string(value).map_err(|e| Error::Manifest { path: "crd".into(), message: e.to_string() })
}

/// Renders a value in the chosen format.
pub fn render<T: serde::Serialize>(value: &T, format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(value)? + "\n"),
        OutputFormat::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| Error::Manifest { path: "output".into(), message: e.to_string() }),
    }
}

/// `validate`: prints findings; the exit code is 1 when any profile is invalid and 2 when none was found.
pub fn run_validate(files: &[PathBuf]) -> Result<i32> {
    let report = validate::validate_paths(files)?;
    for f in &report.findings {
        println!("{f}");
    }
    if !report.findings.is_empty() {
        eprintln!("{} problem(s) in {} profile(s)", report.findings.len(), report.profiles);
        return Ok(exit_codes::INVALID);
    }
    if report.profiles == 0 {
        eprintln!("no PerformanceProfile documents found");
        return Ok(exit_codes::NOTHING_FOUND);
    }
    eprintln!("{} profile(s) valid", report.profiles);
    Ok(exit_codes::OK)
}

/// What `plan` printed and how it ends.
pub struct PlanOutput {
    pub text: String,
    /// ClickHouse statements or objects that would be refused (exit code 3 when any).
    pub refused: usize,
}

/// `plan`: the plan of every profile in the file, as one YAML document each (or a JSON array).
pub async fn run_plan(args: &PlanArgs) -> Result<PlanOutput> {
    let loaded = plan::load_resolved(&args.file)?;
    let profiles: Vec<&perf_operator_api::PerformanceProfile> = loaded.iter().map(|(p, _)| p).collect();
    let observations = match &args.observations {
        Some(path) => plan::Observations::read(path)?,
        None => plan::Observations::default(),
    };
    let mut plans: Vec<plan::Plan> =
        loaded.iter().map(|(p, resolved)| plan::plan_resolved(p, resolved.as_ref(), &observations)).collect();
    let mut refused = 0;
    for (profile, plan) in profiles.iter().zip(plans.iter_mut()) {
        let Some(spec) = &profile.spec.clickhouse else { continue };
        let section = match &args.clickhouse {
            Some(url) => {
                let server = plan::clickhouse::Server::new(
                    url,
                    args.clickhouse_user.as_deref(),
                    args.clickhouse_password_file.as_deref(),
                )?;
                let live = server.observe(spec).await?;
                let (mut section, n) = plan::clickhouse::section(spec, Some(&live));
                section["explain"] = plan::clickhouse::explains(spec, &live);
                refused += n;
                section
            }
            None => {
                let (section, n) = plan::clickhouse::section(spec, None);
                refused += n;
                section
            }
        };
        plan.extra.insert("clickhouse".into(), section);
    }
    if let Some(url) = &args.prometheus {
        let scrape = plan::prometheus::scrape_intervals(url).await?;
        for (profile, plan) in profiles.iter().zip(plans.iter_mut()) {
            let warnings = plan::prometheus::interval_warnings(profile, &scrape);
            for warning in &warnings {
                eprintln!("warning: {}: canary: {warning}", plan.profile);
            }
            if let Some(canary) = plan.extra.get_mut("canary").filter(|_| !warnings.is_empty()) {
                canary["warnings"] = serde_json::json!(warnings);
            }
        }
    }
    let text = match args.output {
        OutputFormat::Json if plans.len() == 1 => render(&plans[0], args.output)?,
        OutputFormat::Json => render(&plans, args.output)?,
        OutputFormat::Yaml => {
            let docs: Result<Vec<String>> = plans.iter().map(|p| render(p, OutputFormat::Yaml)).collect();
            docs?.iter().map(|d| format!("---\n{d}")).collect()
        }
    };
    Ok(PlanOutput { text, refused })
}

/// The API server's in-cluster address (`KUBERNETES_SERVICE_HOST`), when set.
fn api_server_from_env() -> Vec<std::net::IpAddr> {
    std::env::var("KUBERNETES_SERVICE_HOST").ok().and_then(|h| h.parse().ok()).into_iter().collect()
}

/// The addresses of the API server the kubeconfig names, and its in-cluster address: reserved for every profile.
async fn api_server_addresses(config: &kube::Config) -> Vec<std::net::IpAddr> {
    let mut addresses = api_server_from_env();
    let url = &config.cluster_url;
    if let Some(host) = url.host() {
        let port = url.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(found) = tokio::net::lookup_host((bare, port)).await {
            addresses.extend(found.map(|a| a.ip()));
        }
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

/// `run`: admin server, leader election, controller; returns when shut down or when leadership is lost. The admin
/// server is bound first, so `/healthz` answers from the start and `/readyz` as [`telemetry::Replica`] says.
pub async fn run_operator(args: RunArgs) -> Result<()> {
    let lease = args.leader_election.then(|| args.lease()).transpose()?;
    let config = kube::Config::infer().await.map_err(|e| Error::Kube(kube::Error::InferConfig(e)))?;
    let mut scope = args.scope();
    scope.egress = args.egress(api_server_addresses(&config).await);
    scope.policy_signers = args.policy_signers()?;
    let clients = api_clients::Clients::from_config(config, args.api_limits())?;
    let metrics = Arc::new(Metrics::new()?);
    if !args.profile_metrics {
        metrics.profiles.turn_off();
    }
    let replica = Replica::new(&metrics);
    let listener = telemetry::bind_admin(args.admin_addr).await?;
    let admin = tokio::spawn(telemetry::serve_admin(listener, metrics.clone(), replica.clone()));
    let ctx = controller::prepare(&clients, metrics, scope)?;
    let result = match lease {
        Some(config) => run_elected(ctx, clients, replica, config).await,
        None => {
            replica.leading();
            controller::run(ctx, clients, replica).await
        }
    };
    admin.abort();
    result
}

/// The shard guard loops for ever; were it to end, the controller would stop with it.
fn unreachable_guard() -> Result<()> {
    Err(Error::Leader("the shard guard stopped".into()))
}

/// Waits for the lease (a ready standby meanwhile, its caches filling), then reconciles while it holds it.
/// Leadership lost stops the controller at once, reconciles in flight included: by the renew deadline it must have
/// stopped acting.
async fn run_elected(
    ctx: Arc<controller::Context>,
    clients: api_clients::Clients,
    replica: Replica,
    config: LeaseConfig,
) -> Result<()> {
    let (lock, renewed) = leader::acquire(clients.unary.clone(), &config, &replica).await?;
    let (unary, scope) = (clients.unary.clone(), ctx.scope.clone());
    let lead = async {
        // Before the first round: a profile another live shard also selects is reconciled by neither.
        if let Err(e) = shards::announce(&unary, &config, &scope).await {
            tracing::warn!(error = %e, "could not write this shard's selector on its Lease");
        }
        shards::refresh(&unary, &config, &scope, &ctx.conflicts).await;
        let guard = shards::guard(unary.clone(), config.clone(), scope.clone(), &ctx.conflicts);
        tokio::select! {
            () = guard => unreachable_guard(),
            result = controller::run(ctx.clone(), clients, replica.clone()) => result,
        }
    };
    // The lease is renewed from the start, while the shards are checked too.
    tokio::select! {
        result = lead => {
            result?;
            leader::release(&lock).await;
            Ok(())
        }
        reason = leader::hold(&lock, &config, renewed) => {
            replica.stopping();
            Err(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cluster_domain_is_a_dns_name() {
        assert_eq!(run_args(&[]).scope().cluster_domain, "cluster.local");
        assert_eq!(run_args(&["--cluster-domain", "corp.example."]).scope().cluster_domain, "corp.example");
        for bad in ["", "Cluster.Local", "a..b", "-a.b", "a_b", "a b"] {
            let parsed = Cli::try_parse_from(["perf-operator", "run", &format!("--cluster-domain={bad}")]);
            let error = parsed.expect_err(bad).to_string();
            assert!(error.contains("--cluster-domain") && error.contains("is not a DNS name"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from([&["perf-operator", "run"], args].concat()).expect("parses");
        match cli.command {
            Command::Run(run) => *run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn the_renew_deadline_is_shorter_than_the_lease_or_refused() {
        let lease = run_args(&["--lease-ttl-seconds", "6"]).lease().expect("the default deadline");
        assert_eq!((lease.ttl, lease.renew_deadline), (Duration::from_secs(6), Duration::from_secs(4)));
        assert_eq!(lease.retry_period(), Duration::from_secs(4) / 3);
        let error = run_args(&["--lease-ttl-seconds", "6", "--lease-renew-deadline-seconds", "6"]).lease().unwrap_err();
        assert!(error.to_string().contains("must be shorter than --lease-ttl-seconds"), "{error}");
    }

    #[test]
    fn namespaces_selector_and_pace_come_from_the_flags() {
        let run = run_args(&[
            "--watch-namespace",
            "team-a,team-b",
            "--watch-namespace",
            "team-c",
            "--watch-label-selector",
            "!perf.operator.dev/shard",
            "--concurrency",
            "4",
            "--debounce-ms",
            "0",
            "--kube-api-qps",
            "200",
            "--kube-api-burst",
            "10",
        ]);
        let scope = run.scope();
        assert_eq!(scope.namespaces, ["team-a", "team-b", "team-c"]);
        assert_eq!(scope.selector.as_deref(), Some("!perf.operator.dev/shard"));
        assert_eq!((scope.pace.concurrency, scope.pace.debounce), (4, Duration::ZERO));
        let limits = run.api_limits();
        assert_eq!((limits.qps.get(), limits.burst.get()), (200, 200), "a burst below the rate is raised to it");
        let every = run_args(&[]).scope();
        assert!(every.namespaces.is_empty() && every.selector.is_none(), "by default every namespace and profile");
        assert!(Cli::try_parse_from(["perf-operator", "run", "--concurrency", "0"]).is_err(), "no concurrency");
    }
}
