//! One reconcile of the canary section: observe -> analyse if due -> step the machine -> apply objects.
//! The caller (the operator's controller) writes the returned status, condition and events.

use crate::analysis::{Analysis, MetricsSource, QueryContext, analyse, checks};
use crate::machine::{self, CanaryCondition, CanaryEvent, Observed, PrimaryAction, Timing, Workload};
use crate::objects::{self, Role, Split};
use crate::{Error, Result};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use perf_operator_api::ssa::is_subset;
use perf_operator_api::{CanaryPhase, CanarySpec, CanaryStatus, FIELD_MANAGER, PerformanceProfile};
use serde::Serialize;
use std::time::Duration;

/// What the controller does with a reconcile's result.
#[derive(Clone, Debug)]
pub struct CanaryOutcome {
    /// Write to `.status.canary`.
    pub status: CanaryStatus,
    /// Write as the `CanaryReady` condition.
    pub condition: CanaryCondition,
    /// Emit (transitions only).
    pub events: Vec<CanaryEvent>,
    /// Reconcile again after this long.
    pub requeue_after: Duration,
    /// The analysis run in this reconcile, if one was due (for metrics).
    pub analysis: Option<Analysis>,
}

/// What exists in the cluster.
struct World {
    target: Deployment,
    template: PodTemplateSpec,
    hash: String,
    primary: Option<Deployment>,
    canary: Option<Deployment>,
    hpa: Option<HorizontalPodAutoscaler>,
}

/// Reconciles the canary of `profile` (read from the API server, so it has a uid and its status).
#[tracing::instrument(skip_all, fields(profile = %profile.name_any()))]
pub async fn reconcile(
    client: Client,
    profile: &PerformanceProfile,
    prom: &dyn MetricsSource,
    now: Timestamp,
) -> Result<CanaryOutcome> {
    let spec = profile.spec.canary.as_ref().ok_or(Error::NotConfigured)?;
    let timing = Timing::from_spec(spec)?;
    let ns = profile.namespace().ok_or_else(|| Error::InvalidSpec {
        field: "metadata.namespace".into(),
        message: "profile has no namespace".into(),
    })?;
    let target = profile.spec.target_ref.name.clone();
    let owner = objects::owner(profile)?;
    let live = live_profile(&client, &ns, profile).await?;
    let prev = live.status.as_ref().and_then(|s| s.canary.clone()).unwrap_or_default();
    let world = observe(&client, &ns, &target).await?;
    let routed = spec.routing.http_route.is_some();
    let total = world.primary.as_ref().map_or_else(|| objects::replicas(&world.target).max(1), objects::replicas);
    let current = objects::split(total, prev.weight, routed);
    let canary_ready = world.canary.as_ref().is_some_and(|c| {
        objects::annotated_hash(c).as_deref() == Some(world.hash.as_str())
            && objects::replicas(c) == current.canary
            && objects::rollout_complete(c)
    });
    let analysis = if machine::analysis_due(&timing, &prev, now) && prev.run_id.as_deref() == Some(world.hash.as_str())
    {
        let ctx = QueryContext { namespace: ns.clone(), target: target.clone() };
        Some(analyse(prom, &checks(spec, &profile.spec.slo, &ctx)).await)
    } else {
        None
    };
    let observed = Observed {
        target_hash: world.hash.clone(),
        primary: world
            .primary
            .as_ref()
            .map(|p| Workload { hash: objects::annotated_hash(p), ready: objects::rollout_complete(p) }),
        canary_ready,
        analysis: analysis.as_ref().map(|a| a.record(prev.stage_index.unwrap_or(0), prev.weight, now)),
        command: live.annotations().get(objects::COMMAND_ANNOTATION).map(|v| machine::parse_command(v)),
    };
    let decision = machine::step(&timing, &prev, &observed, now);
    let mut status = decision.status;
    let applier = Applier { client: &client, ns: &ns, owner: &owner, world: &world };
    let split = applier.apply(spec, &status, decision.primary, total).await?;
    status.primary_replicas = split.primary;
    status.canary_replicas = split.canary;
    status.achieved_weight = achieved_weight(spec, &status, &split);
    for event in &decision.events {
        tracing::info!(reason = event.reason, "{}", event.message);
    }
    Ok(CanaryOutcome {
        condition: machine::condition(&status),
        requeue_after: machine::requeue_after(&timing, &status, now),
        status,
        events: decision.events,
        analysis,
    })
}

/// Before the profile goes away (its finalizer): give the target back its pods, as many as the primary runs, since
/// the primary and canary are garbage-collected with the profile.
pub async fn finalize(client: Client, profile: &PerformanceProfile) -> Result<()> {
    let ns = profile.namespace().unwrap_or_else(|| "default".into());
    let target = &profile.spec.target_ref.name;
    let deployments: Api<Deployment> = Api::namespaced(client, &ns);
    let Some(primary) =
        deployments.get_opt(&objects::primary_name(target)).await.map_err(Error::kube("get primary"))?
    else {
        return Ok(());
    };
    let body = objects::target_replicas(target, objects::replicas(&primary));
    deployments.patch(target, &params(), &Patch::Apply(&body)).await.map_err(Error::kube("restore target replicas"))?;
    Ok(())
}

/// The profile as the API server holds it now: the run's state is its status there. The controller's cache can lag
/// behind the status the previous reconcile wrote, since that reconcile's own writes (the canary Deployment it
/// scaled) trigger the next one at once; stepped from the cached status, a run would analyse a stage and step again,
/// or go back a stage.
async fn live_profile(client: &Client, ns: &str, profile: &PerformanceProfile) -> Result<PerformanceProfile> {
    let name = profile.name_any();
    let api: Api<PerformanceProfile> = Api::namespaced(client.clone(), ns);
    api.get(&name).await.map_err(Error::kube(format!("get PerformanceProfile {name}")))
}

async fn observe(client: &Client, ns: &str, target: &str) -> Result<World> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let get = |name: String| {
        let api = deployments.clone();
        async move { api.get_opt(&name).await.map_err(Error::kube(format!("get Deployment {name}"))) }
    };
    let target_deployment = get(target.to_string())
        .await?
        .ok_or_else(|| Error::TargetNotFound { namespace: ns.into(), name: target.into() })?;
    let template = target_deployment.spec.as_ref().map(|s| s.template.clone()).ok_or_else(|| Error::InvalidSpec {
        field: "spec.targetRef.name".into(),
        message: format!("Deployment {target} has no spec"),
    })?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let hpas = hpas.list(&ListParams::default()).await.map_err(Error::kube("list HorizontalPodAutoscalers"))?;
    Ok(World {
        hash: objects::template_hash(&template)?,
        template,
        primary: get(objects::primary_name(target)).await?,
        canary: get(objects::canary_name(target)).await?,
        hpa: objects::target_hpa(&hpas.items, target).cloned(),
        target: target_deployment,
    })
}

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

struct Applier<'a> {
    client: &'a Client,
    ns: &'a str,
    owner: &'a OwnerReference,
    world: &'a World,
}

impl Applier<'_> {
    /// Applies what the status asks for; returns the pod split in effect.
    async fn apply(
        &self,
        spec: &CanarySpec,
        status: &CanaryStatus,
        primary: PrimaryAction,
        total: u32,
    ) -> Result<Split> {
        let w = self.world;
        let routed = spec.routing.http_route.is_some();
        if let Some(hpa) = &w.hpa {
            let desired = objects::primary_hpa(hpa, &w.target, self.owner);
            self.put::<HorizontalPodAutoscaler>(&desired).await?;
        }
        let promote = primary == PrimaryAction::Promote && status.run_id.as_deref() == Some(w.hash.as_str());
        if (primary == PrimaryAction::Create && w.primary.is_none()) || promote {
            let replicas = if promote { total } else { objects::replicas(&w.target).max(1) };
            let desired = objects::workload(&w.target, Role::Primary, &w.template, &w.hash, replicas, self.owner)?;
            self.put::<Deployment>(&desired).await?;
        }
        let split = objects::split(total, status.weight, routed);
        if status.phase == CanaryPhase::Initializing {
            return Ok(objects::split(total, 0, routed));
        }
        let canary = objects::workload(&w.target, Role::Canary, &w.template, &w.hash, split.canary, self.owner)?;
        self.put::<Deployment>(&canary).await?;
        if objects::replicas(&w.target) != 0 {
            let name = w.target.name_any();
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), self.ns);
            let body = objects::target_replicas(&name, 0);
            api.patch(&name, &params(), &Patch::Apply(&body)).await.map_err(Error::kube("scale the target to zero"))?;
        }
        if let Some(route) = &spec.routing.http_route {
            for service in objects::route_services(&w.target, route.port, self.owner) {
                self.put::<Service>(&service).await?;
            }
            self.route(&route.name, routed_weight(spec, status)).await?;
        }
        Ok(split)
    }

    async fn put<K>(&self, object: &K) -> Result<()>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), self.ns);
        let action = format!("apply {} {name}", K::kind(&()));
        let mut body = serde_json::to_value(object).map_err(|source| Error::Encode { what: "object", source })?;
        body["apiVersion"] = K::api_version(&()).into();
        body["kind"] = K::kind(&()).into();
        // A settled run writes nothing: skip what the live object already holds.
        let live = api.get_opt(&name).await.map_err(Error::kube(format!("get {} {name}", K::kind(&()))))?;
        let live = live.map(|l| serde_json::to_value(l)).transpose();
        let live = live.map_err(|source| Error::Encode { what: "object", source })?;
        if live.is_some_and(|l| is_subset(&body, &l)) {
            return Ok(());
        }
        api.patch(&name, &params(), &Patch::Apply(&body)).await.map_err(Error::kube(action))?;
        Ok(())
    }

    async fn route(&self, name: &str, canary_weight: u32) -> Result<()> {
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), self.ns, &resource);
        let live = api.get(name).await.map_err(Error::kube(format!("get HTTPRoute {name}")))?;
        let live = serde_json::to_value(&live).map_err(|source| Error::Encode { what: "HTTPRoute", source })?;
        let body = objects::route_weights(&live, &self.world.target.name_any(), canary_weight)?;
        if is_subset(&body, &live) {
            return Ok(());
        }
        api.patch(name, &params(), &Patch::Apply(&body))
            .await
            .map_err(Error::kube(format!("set weights of HTTPRoute {name}")))?;
        Ok(())
    }
}

/// Canary share of the traffic in effect, None without a run: with a route, the weight set on it (the previous
/// stage's while the stage's pods start); by replica ratio, the canary's share of the pods.
fn achieved_weight(spec: &CanarySpec, status: &CanaryStatus, split: &Split) -> Option<u32> {
    let routed = spec.routing.http_route.is_some();
    (status.weight > 0).then(|| if routed { routed_weight(spec, status) } else { split.achieved_weight })
}

/// Route weight: the stage's once its canary pods are ready, the previous stage's while they start.
fn routed_weight(spec: &CanarySpec, status: &CanaryStatus) -> u32 {
    match status.phase {
        CanaryPhase::Progressing | CanaryPhase::Promoting => status.weight,
        CanaryPhase::WaitingForPods => {
            let index = status.stage_index.unwrap_or(0) as usize;
            index.checked_sub(1).and_then(|i| spec.stages.get(i)).copied().unwrap_or(0)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::QueryFuture;
    use jiff::SignedDuration;
    use kube::api::PostParams;
    use perf_operator_api::{HttpRouteRef, PerformanceProfileSpec, RoutingSpec, TargetRef};
    use serde_json::json;

    const NS: &str = "shop";

    /// Prometheus answering as for a healthy canary: plenty of requests, 50 ms p99, no errors.
    struct Healthy;

    impl MetricsSource for Healthy {
        fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
            let value = match promql {
                q if q.contains("increase(") => 1000.0,
                q if q.contains("histogram_quantile") => 0.05,
                _ => 0.0,
            };
            Box::pin(std::future::ready(Ok(Some(value))))
        }
    }

    /// An in-memory API server holding profile `checkout` (1m steps) and its target `web` (3 pods of `shop/web:1`).
    async fn cluster() -> Client {
        let spec = PerformanceProfileSpec {
            target_ref: TargetRef { name: "web".into(), ..TargetRef::default() },
            canary: Some(CanarySpec { step_interval: "1m".into(), ..CanarySpec::default() }),
            ..PerformanceProfileSpec::default()
        };
        let mut profile = PerformanceProfile::new("checkout", spec);
        profile.metadata.namespace = Some(NS.into());
        let target: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": NS, "labels": { "app": "web" } },
            "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web" } },
                      "template": { "metadata": { "labels": { "app": "web" } },
                                    "spec": { "containers": [{ "name": "app", "image": "shop/web:1" }] } } }
        }))
        .unwrap();
        kube_fake_client::ClientBuilder::new()
            .with_resource::<PerformanceProfile>()
            .with_status_subresource::<PerformanceProfile>()
            .with_status_subresource::<Deployment>()
            .with_object(profile)
            .with_object(target)
            .build()
            .await
            .unwrap()
    }

    /// One reconcile of `profile` as the controller passes it (possibly from its cache), status written back, then
    /// every Deployment's pods ready.
    async fn step(client: &Client, profile: &PerformanceProfile, now: Timestamp) -> CanaryOutcome {
        let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), NS);
        let outcome = reconcile(client.clone(), profile, &Healthy, now).await.unwrap();
        let mut written = profiles.get("checkout").await.unwrap();
        written.status.get_or_insert_with(Default::default).canary = Some(outcome.status.clone());
        written.metadata.managed_fields = None;
        profiles.replace_status("checkout", &PostParams::default(), &written).await.unwrap();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        for d in deployments.list(&ListParams::default()).await.unwrap().items {
            let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = json!({ "status": { "replicas": n, "readyReplicas": n, "updatedReplicas": n,
                                             "observedGeneration": d.metadata.generation } });
            let name = d.name_any();
            deployments.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        }
        outcome
    }

    #[tokio::test]
    async fn a_cached_profile_older_than_the_last_step_does_not_step_the_run_again() {
        let client = cluster().await;
        let profiles: Api<PerformanceProfile> = Api::namespaced(client.clone(), NS);
        let at = |s: i64| Timestamp::from_second(1_700_000_000).unwrap() + SignedDuration::from_secs(s);
        for t in 0..2 {
            step(&client, &profiles.get("checkout").await.unwrap(), at(t)).await;
        }
        let image =
            json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "shop/web:2" }] } } } });
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        deployments.patch("web", &PatchParams::default(), &Patch::Merge(&image)).await.unwrap();
        for t in 2..4 {
            step(&client, &profiles.get("checkout").await.unwrap(), at(t)).await;
        }
        let cached = profiles.get("checkout").await.unwrap();
        assert_eq!(cached.status.as_ref().unwrap().canary.as_ref().unwrap().phase, CanaryPhase::Progressing);

        let advanced = step(&client, &cached, at(63)).await;
        assert_eq!((advanced.status.stage_index, advanced.events[0].reason), (Some(1), "StageAdvanced"));
        // The canary Deployment that step scaled triggers the next reconcile at once, while the controller's cache
        // still holds the profile from before the step's status write.
        let again = step(&client, &cached, at(63) + SignedDuration::from_millis(200)).await;
        assert!(again.analysis.is_none(), "analysed stage 1 twice");
        assert!(again.events.is_empty(), "stepped twice: {:?}", again.events);
        assert_eq!(again.status.stage_index, Some(1), "went back a stage");
        assert_eq!(again.status.analyses, advanced.status.analyses);
    }

    #[test]
    fn with_a_route_the_achieved_weight_is_the_one_on_the_route() {
        let routed = CanarySpec {
            routing: RoutingSpec { http_route: Some(HttpRouteRef { name: "web".into(), port: 80 }) },
            ..CanarySpec::default()
        };
        let status = |phase, stage_index: u32| CanaryStatus {
            phase,
            stage_index: Some(stage_index),
            weight: routed.stages[stage_index as usize],
            ..CanaryStatus::default()
        };
        let pods = objects::split(4, 50, true);
        // Stage 3 (50 %) starting: its pods are not ready, the route still sends the previous stage's 25 %.
        assert_eq!(achieved_weight(&routed, &status(CanaryPhase::WaitingForPods, 2), &pods), Some(25));
        assert_eq!(achieved_weight(&routed, &status(CanaryPhase::WaitingForPods, 0), &pods), Some(0));
        assert_eq!(achieved_weight(&routed, &status(CanaryPhase::Progressing, 2), &pods), Some(50));
        let idle = CanaryStatus { weight: 0, ..status(CanaryPhase::Succeeded, 3) };
        assert_eq!(achieved_weight(&routed, &idle, &pods), None);
        // By replica ratio it is the canary's share of the pods.
        let by_pods = objects::split(9, 25, false);
        assert_eq!(
            achieved_weight(&CanarySpec::default(), &status(CanaryPhase::WaitingForPods, 1), &by_pods),
            Some(25)
        );
    }
}
