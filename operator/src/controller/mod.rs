//! The controller: watches profiles and what they own, and reconciles each profile through the pipeline in
//! [`profile`]. One bad object never poisons the loop: objects that do not deserialize are reported and wait for
//! a change; transient errors back off exponentially per object.

pub mod apply;
pub mod backoff;
pub mod cache;
pub mod canary;
pub mod clickhouse;
pub mod policies;
pub mod profile;
pub mod secrets;
pub mod status;

use crate::telemetry::Metrics;
use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::{DeserializeGuard, error_boundary::InvalidObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use perf_operator_api::{FIELD_MANAGER, PerformanceProfile};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: backoff::Backoff,
    pub prometheus: canary::PrometheusClients,
    pub policies: policies::PolicyRuntime,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Result<Self> {
        let reporter = Reporter { controller: "perf-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            backoff: backoff::Backoff::default(),
            prometheus: canary::PrometheusClients::default(),
            policies: policies::PolicyRuntime::new()
                .map_err(|e| Error::Component { component: "policies", message: e.to_string() })?,
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
        Ok(profile) => profile::reconcile(Arc::new(profile.clone()), ctx).await,
        Err(invalid) => {
            report_unreadable(invalid, &ctx).await?;
            Ok(Action::await_change())
        }
    }
}

/// A profile that does not even deserialize (e.g. stored before a CRD upgrade): say why in status, then wait.
async fn report_unreadable(invalid: &InvalidObject, ctx: &Context) -> Result<()> {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let namespace = invalid.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    tracing::warn!(%name, %namespace, error = %invalid.error, "profile does not deserialize");
    ctx.metrics.errors.with_label_values(&["profile", "invalid_spec"]).inc();
    let resource = ApiResource::erase::<PerformanceProfile>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let conditions = status::invalid(&[], &invalid.error, invalid.metadata.generation, &now);
    let patch = json!({
        "apiVersion": resource.api_version, "kind": resource.kind,
        "status": { "observedGeneration": invalid.metadata.generation, "phase": "Degraded", "conditions": conditions },
    });
    api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Exponential backoff per object on transient errors; invalid specs do not come here (they wait for a change).
pub fn error_policy(guard: Arc<DeserializeGuard<PerformanceProfile>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.with_label_values(&["profile", error.category()]).inc();
    let key = ObjectRef::from_obj(&*guard).erase();
    let delay = ctx.backoff.next_delay(&key);
    tracing::warn!(error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the controller until shutdown (SIGTERM/SIGINT) or until `stop` resolves (lost leadership).
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let profiles: Api<DeserializeGuard<PerformanceProfile>> = Api::all(client.clone());
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=perf-operator");
    let ctx = Arc::new(Context::new(client.clone(), metrics)?);
    ready.store(true, Ordering::SeqCst);
    let controller = Controller::new(profiles, watcher::Config::default().any_semantic());
    let store = controller.store();
    controller
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        // The target itself: a new pod template starts a canary run, a replica change resizes pools.
        .watches(Api::<Deployment>::all(client.clone()), watcher::Config::default(), move |d| {
            let (name, namespace) = (d.name_any(), d.namespace());
            store
                .state()
                .into_iter()
                .filter(|g| g.0.as_ref().is_ok_and(|p| p.spec.target_ref.name == name && p.namespace() == namespace))
                .map(|g| ObjectRef::from_obj(&*g))
                .collect::<Vec<_>>()
        })
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<Secret>::all(client.clone()), owned)
        .graceful_shutdown_on(async move {
            tokio::select! {
                () = stop => tracing::warn!("stopping: leadership lost"),
                () = shutdown_signal() => tracing::info!("stopping: signal received"),
            }
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
    ready.store(false, Ordering::SeqCst);
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

/// Requeue delay: short while something is in progress, a periodic resync otherwise (external systems such as
/// ClickHouse can drift without any Kubernetes event).
pub fn requeue_after(progressing: bool) -> Duration {
    if progressing { Duration::from_secs(15) } else { Duration::from_secs(300) }
}

/// The name used in spans and logs.
pub fn display_name(profile: &PerformanceProfile) -> String {
    format!("{}/{}", profile.namespace().unwrap_or_default(), profile.name_any())
}
