//! The controller: watches profiles and what they own, and reconciles each profile through the pipeline in
//! [`converge`]: [`observe`] -> [`crate::decide`] -> [`apply`] -> [`report`]. One bad object never poisons the loop: objects that do not deserialize are reported and wait for
//! a change; transient errors back off exponentially per object.

pub mod apply;
pub mod backoff;
pub mod caches;
pub mod claims;
pub mod cleanup;
pub mod converge;
pub mod enforce;
pub mod limits;
pub mod observe;
pub mod orphan;
pub mod policy_registry;
pub mod policy_runtime;
pub mod prometheus_access;
pub mod report;
pub mod retire;
pub mod rollout;
pub mod round;
pub mod run_history;
pub mod slo_rule;
pub mod templates;
pub mod traffic;
pub mod triggers;
pub mod watches;

use crate::api_clients::Clients;
use crate::telemetry::{Metrics, Replica};
use crate::{Error, Result};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::{DeserializeGuard, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use perf_operator_api::{FIELD_MANAGER, PerformanceProfile};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub scope: Scope,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: backoff::Backoff,
    pub prometheus: perf_prometheus::Clients,
    pub policies: policy_runtime::PolicyRuntime,
    /// When a LIST of PrometheusRules last found the type not served (see [`slo_rule::apply`]).
    pub rules_unserved: slo_rule::Unserved,
    /// The same for Envoy Gateway's BackendTrafficPolicies ([`enforce::apply`]).
    pub gateway_unserved: slo_rule::Unserved,
    /// Which profiles name which target and policy ConfigMap, for the watches of those.
    pub references: triggers::References,
    /// The operator's own last write to each owned object, whose watch event starts no round.
    pub own_writes: triggers::OwnWrites,
    /// Reconciles running now, over every watched namespace, at most [`Pace::concurrency`].
    pub slots: tokio::sync::Semaphore,
    /// Of those, the most that rounds of settled profiles may take ([`triggers::settled_share`]): the rest is kept for new and
    /// changed profiles, which would otherwise queue behind every resync and canary poll.
    pub settled_slots: tokio::sync::Semaphore,
    /// Events published per second, with a burst: the recorder keeps each event it sent for minutes (to count
    /// repeats into a series), so an unbounded burst would grow it without bound.
    pub event_budget: governor::DefaultDirectRateLimiter,
    /// Profiles, owned objects and HPAs kept in memory ([`caches`]); empty, so read from the API server, in tests
    /// built on [`Context::new`].
    pub caches: caches::Caches,
    /// One HTTP client for every ClickHouse: connections reused across rounds and profiles.
    pub clickhouse: perf_clickhouse::Http,
    /// PostgreSQL limits per server and credentials, read at most once per [`limits::POSTGRES_TTL`].
    pub postgres_limits: limits::PostgresCache,
    /// Other live shards, and which of them select each profile too ([`crate::shards`]): such a profile is
    /// reconciled by neither.
    pub conflicts: crate::shards::Conflicts,
    /// Canary notifications to the profiles' receivers and the cluster's ([`crate::notify`]).
    pub notifier: crate::notify::Notifier,
    /// The canary runs' webhooks (`analysis.webhooks`), under the egress allow-list for `hook`.
    pub hooks: crate::notify::hooks::HookSender,
    /// Which profile holds each target, and the profiles waiting for one ([`claims`]).
    pub claims: claims::Claims,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Result<Self> {
        let reporter = Reporter { controller: "perf-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            scope: Scope::default(),
            client,
            metrics,
            backoff: backoff::Backoff::default(),
            prometheus: perf_prometheus::Clients::default(),
            policies: policy_runtime::PolicyRuntime::new()?,
            rules_unserved: slo_rule::Unserved::default(),
            gateway_unserved: slo_rule::Unserved::default(),
            references: triggers::References::default(),
            own_writes: triggers::OwnWrites::default(),
            slots: tokio::sync::Semaphore::new(usize::from(Pace::default().concurrency)),
            settled_slots: tokio::sync::Semaphore::new(triggers::settled_share(Pace::default().concurrency)),
            event_budget: governor::RateLimiter::direct(EVENT_QUOTA),
            caches: caches::Caches::default(),
            clickhouse: perf_clickhouse::Http::new(perf_egress::Egress::default()),
            postgres_limits: limits::PostgresCache::default(),
            conflicts: crate::shards::Conflicts::default(),
            notifier: notifier(perf_egress::Egress::default(), None)?,
            hooks: hook_sender(perf_egress::Egress::default())?,
            claims: claims::Claims::default(),
        })
    }

    /// Makes `egress` the rule for every server a profile names: the ClickHouse, Prometheus and policy clients are
    /// built again under it (Redis and PostgreSQL read it from the scope at each connect).
    pub fn set_egress(&mut self, egress: perf_egress::Egress) -> Result<()> {
        self.clickhouse = perf_clickhouse::Http::new(egress.clone());
        self.prometheus = perf_prometheus::Clients::new(egress.clone());
        self.policies.reach(egress.clone())?;
        self.notifier = notifier(egress.clone(), self.scope.notifications.clone())?;
        self.hooks = hook_sender(egress.clone())?;
        self.scope.egress = egress;
        Ok(())
    }

    /// Drops what the process keeps for a profile that left the watch: its backoff, the references it named, its
    /// shard verdict and its metric series; wakes the profiles that waited for its target.
    pub fn forget(&self, profile: &DeserializeGuard<PerformanceProfile>) {
        let (namespace, name) = (profile.namespace().unwrap_or_default(), profile.name_any());
        self.backoff.reset(&ObjectRef::from_obj(profile).erase());
        let waiting = self.references.forget(&namespace, &name);
        self.claims.wake(&namespace, waiting);
        self.conflicts.forget(&namespace, &name);
        self.metrics.profiles.remove_key(&(namespace, name));
    }

    /// Publishes an event; a failure to record one is logged, never fatal. Past the budget the event is dropped
    /// (logged and counted): status holds the same facts.
    pub async fn event(&self, profile: &PerformanceProfile, warning: bool, reason: &str, note: String) {
        if self.event_budget.check().is_err() {
            self.metrics.errors.with_label_values(&["events", "rate_limited"]).inc();
            tracing::warn!(reason, "event dropped: more than the event budget this second");
            return;
        }
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note.chars().take(1024).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &profile.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record event");
        }
    }
}

fn notifier(
    egress: perf_egress::Egress,
    cluster: Option<crate::notify::ClusterReceiver>,
) -> Result<crate::notify::Notifier> {
    crate::notify::Notifier::new(egress, cluster)
        .map_err(|e| crate::Error::Component { component: "notifications", message: e.to_string() })
}

fn hook_sender(egress: perf_egress::Egress) -> Result<crate::notify::hooks::HookSender> {
    crate::notify::hooks::HookSender::new(egress)
        .map_err(|e| crate::Error::Component { component: "webhooks", message: e.to_string() })
}

/// Events the process publishes: 20 a second, bursts of 100.
const EVENT_QUOTA: governor::Quota = governor::Quota::per_second(nonzero(20)).allow_burst(nonzero(100));

/// `n` as a NonZeroU32 in a const (quotas); 0 becomes 1.
pub(crate) const fn nonzero(n: u32) -> std::num::NonZeroU32 {
    match std::num::NonZeroU32::new(n) {
        Some(n) => n,
        None => std::num::NonZeroU32::MIN,
    }
}

/// Reconciles one watched object: one of at most [`Pace::concurrency`] at a time, within
/// [`Pace::reconcile_timeout`] (counted once it runs, not while it waits for a slot).
pub async fn reconcile(guard: Arc<DeserializeGuard<PerformanceProfile>>, ctx: Arc<Context>) -> Result<Action> {
    // The semaphore is never closed; were it, the round would be refused rather than run unbounded.
    let closed = |_| Error::Component { component: "controller", message: "the reconcile slots are closed".into() };
    let _settled = match triggers::settled(&guard) {
        true => Some(ctx.settled_slots.acquire().await.map_err(closed)?),
        false => None,
    };
    let _slot = ctx.slots.acquire().await.map_err(closed)?;
    let limit = ctx.scope.pace.reconcile_timeout;
    match &guard.0 {
        Ok(profile) => {
            // Another live shard selecting this profile too: neither acts on it.
            let others = ctx.conflicts.of(&ctx.client, profile).await?;
            if !others.is_empty() {
                shard_conflict(profile, &others, &ctx).await;
                return Ok(Action::requeue(ctx.scope.requeue_after(false)));
            }
            tokio::time::timeout(limit, converge::reconcile(Arc::new(profile.clone()), ctx.clone()))
                .await
                .unwrap_or(Err(Error::ReconcileTimeout(limit)))
        }
        Err(invalid) => {
            report_unreadable(invalid, &ctx).await?;
            Ok(Action::await_change())
        }
    }
}

/// Says why a profile two shards select is left alone; each shard says it, neither acts on it.
async fn shard_conflict(profile: &PerformanceProfile, others: &std::collections::BTreeSet<String>, ctx: &Context) {
    ctx.metrics.errors.with_label_values(&["profile", "shard_conflict"]).inc();
    let others = others.iter().cloned().collect::<Vec<_>>().join(", ");
    let note = format!(
        "also selected by the shard of Lease {others}: neither shard reconciles it until its labels or the shards' \
         --watch-label-selector leave it to one"
    );
    tracing::warn!(%others, "profile selected by two shards; not reconciled");
    ctx.event(profile, true, "ShardConflict", note).await;
}

/// A profile that does not even deserialize (e.g. stored before a CRD upgrade): say why in status, then wait. The
/// status is read raw and sent back whole with new conditions: under server-side apply anything left out would be
/// removed, and the records in it (ClickHouse objects to prune, a canary run) must outlive a bad object.
async fn report_unreadable(invalid: &InvalidObject, ctx: &Context) -> Result<()> {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let namespace = invalid.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    tracing::warn!(%name, %namespace, error = %invalid.error, "profile does not deserialize");
    ctx.metrics.errors.with_label_values(&["profile", "invalid_spec"]).inc();
    let resource = ApiResource::erase::<PerformanceProfile>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let Some(live) = api.get_opt(&name).await? else { return Ok(()) };
    let previous = live.data.get("status");
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let status = crate::conditions::for_unreadable(previous, &invalid.error, live.metadata.generation, &now);
    if previous == Some(&status) {
        return Ok(());
    }
    let patch = json!({ "apiVersion": resource.api_version, "kind": resource.kind, "status": status });
    api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Exponential backoff per object on transient errors; invalid specs do not come here (they wait for a change).
pub fn error_policy(guard: Arc<DeserializeGuard<PerformanceProfile>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.with_label_values(&["profile", error.category()]).inc();
    let key = ObjectRef::from_obj(&*guard).erase();
    // Jittered, so profiles failing together (an API server or shared Redis outage) do not retry together.
    let delay = triggers::jittered(ctx.backoff.next_delay(&key), 0.2);
    tracing::warn!(error = %crate::error::chain(error), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Builds the context of a process and starts its caches ([`caches`]), before any leadership: a standby's caches
/// are warm when it takes over.
pub fn prepare(clients: &Clients, metrics: Arc<Metrics>, scope: Scope) -> Result<Arc<Context>> {
    let slots = tokio::sync::Semaphore::new(usize::from(scope.pace.concurrency.max(1)));
    let settled_slots = tokio::sync::Semaphore::new(triggers::settled_share(scope.pace.concurrency));
    let base = Context::new(clients.unary.clone(), metrics)?;
    let mut context = Context { scope: scope.clone(), slots, settled_slots, ..base };
    if let Some(worker) = &scope.policy_compile_worker {
        context.policies.compile_in(worker.clone())?;
    }
    context.policies.registry_rules(scope.policy_redirect_hosts.clone(), scope.policy_signers.clone())?;
    context.set_egress(scope.egress.clone())?;
    context.caches = caches::Caches::start(&clients.watch, &scope.namespaces);
    let ctx = Arc::new(context);
    let (caches, ready) = (ctx.caches.clone(), ctx.metrics.caches_ready.clone());
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        caches.listed().await;
        ready.set(1);
        tracing::info!(after = ?started.elapsed(), "caches listed");
    });
    Ok(ctx)
}

/// Runs the controller until shutdown (SIGTERM/SIGINT), letting reconciles in flight finish; a caller that loses
/// leadership drops the returned future instead. The replica is ready once the controller has started, and neither
/// ready nor leader once it stops. Each watched namespace gets a controller of its own (a watch covers one
/// namespace or all of them); they share the context, so the concurrency limit and the clients are the process's.
pub async fn run(ctx: Arc<Context>, clients: Clients, replica: Replica) -> Result<()> {
    replica.started();
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let stopping = replica.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: signal received");
        stopping.stopping();
        let _ = shutdown.send(true);
    });
    let namespaces: Vec<Option<String>> = match ctx.scope.namespaces.as_slice() {
        [] => vec![None],
        listed => listed.iter().cloned().map(Some).collect(),
    };
    let controllers = namespaces.into_iter().map(|namespace| {
        let mut stopped = stopped.clone();
        let controller = watches::controller(&ctx, &clients.watch, namespace.as_deref());
        controller
            .graceful_shutdown_on(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile loop");
                }
            })
    });
    futures::future::join_all(controllers).await;
    replica.stopping();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// What one operator process watches, and how it paces its work.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Namespaces to watch (a namespaced install, as Flagger's `-namespace`); empty: every namespace.
    pub namespaces: Vec<String>,
    /// Only profiles matching this label selector: one shard of several operator instances (as Flux's
    /// `--watch-label-selector`).
    pub selector: Option<String>,
    /// Periodic resync of a settled profile: external systems such as ClickHouse drift without any event.
    pub resync: Duration,
    pub pace: Pace,
    /// The cluster's DNS domain, for the fully qualified names the operator itself resolves.
    pub cluster_domain: String,
    /// Header set to the profile's namespace on every query made for it (`--prometheus-tenant-header`).
    pub prometheus_tenant_header: Option<String>,
    /// Where profiles may make the operator connect (`--egress-allow`, `--egress-allow-reserved`); the reserved
    /// ranges are denied by default.
    pub egress: perf_egress::Egress,
    /// ClickHouse databases a profile may name (`--clickhouse-database`, `{namespace}` for the profile's); empty:
    /// any but the server's own.
    pub clickhouse_databases: Vec<String>,
    /// Alert label names profiles may set (`--alert-label`); empty: any the operator does not set itself.
    pub alert_labels: Vec<String>,
    /// PrometheusRule label keys profiles may set (`--rule-label`); empty: any.
    pub rule_labels: Vec<String>,
    /// Prometheus of a canary analysis that names none (`--default-prometheus`).
    pub default_prometheus: Option<String>,
    /// The operator's own namespace, where a ClusterAnalysisTemplate's Secret and CA are read.
    pub operator_namespace: String,
    /// Whether profiles may name ClusterAnalysisTemplates (`--cluster-analysis-templates`).
    pub cluster_templates: bool,
    /// The cluster-wide receiver of canary notifications (`--notification-url-file`).
    pub notifications: Option<crate::notify::ClusterReceiver>,
    /// The administrator's defaults of rate-limit enforcement (`--envoy-gateway-rejections-query`).
    pub rate_limit_defaults: crate::enforcement::AdminDefaults,
    /// How tenants' policy components are compiled: in a worker process with its own memory limit (the operator
    /// binary itself, `--policy-compile-memory-mib`); None compiles in this process (tests of the controller).
    pub policy_compile_worker: Option<perf_policy_host::isolate::CompileWorker>,
    /// Hosts registry sources may redirect to besides their own (`--policy-registry-redirect-host`).
    pub policy_redirect_hosts: Vec<String>,
    /// Keys that must have signed every tenant's policy component (`--policy-cosign-key`).
    pub policy_signers: policy_registry::Signers,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            selector: None,
            resync: Duration::from_secs(300),
            pace: Pace::default(),
            cluster_domain: "cluster.local".into(),
            prometheus_tenant_header: None,
            egress: perf_egress::Egress::default(),
            clickhouse_databases: Vec::new(),
            alert_labels: Vec::new(),
            rule_labels: Vec::new(),
            default_prometheus: None,
            operator_namespace: "perf-operator".into(),
            cluster_templates: true,
            notifications: None,
            rate_limit_defaults: crate::enforcement::AdminDefaults::default(),
            policy_compile_worker: None,
            policy_redirect_hosts: perf_policy_host::registry::DEFAULT_REDIRECT_HOSTS.map(String::from).to_vec(),
            policy_signers: policy_registry::Signers::default(),
        }
    }
}

/// How much work the controller takes on at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Profiles reconciled at the same time, over every watched namespace.
    pub concurrency: u16,
    /// A trigger waits this long for more of the same profile before the round starts (kube-runtime's trailing
    /// debounce: the events of one apply arrive within milliseconds of each other).
    pub debounce: Duration,
    /// A whole reconcile may take at most this long; past it the round is dropped and retried with backoff.
    pub reconcile_timeout: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self { concurrency: 16, debounce: Duration::from_millis(250), reconcile_timeout: Duration::from_secs(120) }
    }
}

impl Scope {
    /// Requeue delay: short while something is in progress, the resync period otherwise, jittered by 10 % so
    /// that profiles created together spread their resyncs.
    pub fn requeue_after(&self, progressing: bool) -> Duration {
        let period = if progressing { Duration::from_secs(15).min(self.resync) } else { self.resync };
        triggers::jittered(period, 0.1)
    }
}

/// The name used in spans and logs.
pub fn display_name(profile: &PerformanceProfile) -> String {
    format!("{}/{}", profile.namespace().unwrap_or_default(), profile.name_any())
}
