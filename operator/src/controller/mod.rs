//! The controller: watches profiles and what they own, and reconciles each profile through the pipeline in
//! [`converge`]: [`observe`] -> [`crate::decide`] -> [`apply`] -> [`report`]. One bad object never poisons the loop: objects that do not deserialize are reported and wait for
//! a change; transient errors back off exponentially per object.

pub mod apply;
pub mod backoff;
pub mod cleanup;
pub mod converge;
pub mod limits;
pub mod observe;
pub mod policy_runtime;
pub mod prometheus_access;
pub mod report;
pub mod rollout;
pub mod slo_rule;
pub mod traffic;

use crate::telemetry::{Metrics, Replica};
use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::{DeserializeGuard, PartialObjectMeta, error_boundary::InvalidObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
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
        })
    }

    /// Publishes an event; a failure to record one is logged, never fatal.
    pub async fn event(&self, profile: &PerformanceProfile, warning: bool, reason: &str, note: String) {
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

/// Reconciles one watched object.
pub async fn reconcile(guard: Arc<DeserializeGuard<PerformanceProfile>>, ctx: Arc<Context>) -> Result<Action> {
    match &guard.0 {
        Ok(profile) => converge::reconcile(Arc::new(profile.clone()), ctx).await,
        Err(invalid) => {
            report_unreadable(invalid, &ctx).await?;
            Ok(Action::await_change())
        }
    }
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
    let delay = ctx.backoff.next_delay(&key);
    tracing::warn!(error = %crate::error::chain(error), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the controller until shutdown (SIGTERM/SIGINT) or until `stop` resolves (lost leadership). The replica is
/// ready once the controller has started, and neither ready nor leader once it stops.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    replica: Replica,
    scope: Scope,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let profiles: Api<DeserializeGuard<PerformanceProfile>> = scope.api(&client);
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=perf-operator");
    let ctx = Arc::new(Context { scope: scope.clone(), ..Context::new(client.clone(), metrics)? });
    replica.started();
    let stopping = replica.clone();
    let controller = Controller::new(profiles, watcher::Config::default().any_semantic());
    let store = controller.store();
    // A profile deleted without a finalizer is never reconciled again: its series go when the cache drops it.
    let live = store.clone();
    ctx.metrics.profiles.follow(move |(ns, name)| live.get(&ObjectRef::new(name).within(ns)).is_some());
    let policy_store = store.clone();
    controller
        .owns(scope.api::<Deployment>(&client), owned.clone())
        // The target itself: a new pod template starts a canary run, a replica change resizes pools.
        .watches(scope.api::<Deployment>(&client), watcher::Config::default(), move |d| {
            let (name, namespace) = (d.name_any(), d.namespace());
            store
                .state()
                .into_iter()
                .filter(|g| g.0.as_ref().is_ok_and(|p| p.spec.target_ref.name == name && p.namespace() == namespace))
                .map(|g| ObjectRef::from_obj(&*g))
                .collect::<Vec<_>>()
        })
        // Policy components in ConfigMaps, metadata only (the bytes are read when reconciling): an edit in place is
        // checked against the profile's pin without a restart.
        .watches(scope.api::<PartialObjectMeta<ConfigMap>>(&client), watcher::Config::default(), move |cm| {
            policy_runtime::profiles_using_config_map(policy_store.state(), cm.namespace().as_deref(), &cm.name_any())
        })
        .owns(scope.api::<Service>(&client), owned.clone())
        .owns(scope.api::<ConfigMap>(&client), owned.clone())
        .owns(scope.api::<Secret>(&client), owned)
        .graceful_shutdown_on(async move {
            tokio::select! {
                () = stop => tracing::warn!("stopping: leadership lost"),
                () = shutdown_signal() => tracing::info!("stopping: signal received"),
            }
            stopping.stopping();
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
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

/// What one operator process watches, and how often it resyncs.
#[derive(Clone, Debug)]
pub struct Scope {
    /// One namespace (a namespace-scoped install, as Flagger's `-namespace`), or every namespace.
    pub namespace: Option<String>,
    /// Periodic resync of a settled profile: external systems such as ClickHouse drift without any event.
    pub resync: Duration,
}

impl Default for Scope {
    fn default() -> Self {
        Self { namespace: None, resync: Duration::from_secs(300) }
    }
}

impl Scope {
    /// An API of kind `K` over the watched namespaces.
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    /// Requeue delay: short while something is in progress, the resync period otherwise.
    pub fn requeue_after(&self, progressing: bool) -> Duration {
        if progressing { Duration::from_secs(15).min(self.resync) } else { self.resync }
    }
}

/// The name used in spans and logs.
pub fn display_name(profile: &PerformanceProfile) -> String {
    format!("{}/{}", profile.namespace().unwrap_or_default(), profile.name_any())
}
