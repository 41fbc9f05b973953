//! One step of the canary section in three parts, so the decision can be tested and printed without a cluster:
//! [`observe`] reads the cluster (and Prometheus when an analysis is due), [`decide`] is pure (clock passed in): it
//! steps the [`machine`] and builds every object ([`objects`]), and [`apply`] writes what differs from the live
//! objects. The caller (the operator's controller) passes the profile fresh from the API server, then writes the
//! step's status and condition and emits its events.

use crate::analysis::{self, Analysis, Asking, MetricsSource, QueryContext, analyse};
use crate::cadence;
use crate::hooks::{self, Facts, HookCall, HookCaller, HookContext};
use crate::machine::{self, CanaryCondition, CanaryEvent, CommandRequest, Observed, PrimaryAction, Timing, Workload};
use crate::objects::{self, Role};
use crate::split::{self, Mode, Split};
use crate::templates::Resolved;
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
use serde_json::Value;
use std::time::Duration;

/// Everything a step needs, read from the cluster and Prometheus.
#[derive(Clone, Debug)]
pub struct Observation {
    /// Boxed: three Deployments are large, and an observation travels by value through every layer of observe (each
    /// of which, in a debug build, keeps its own copy on the stack).
    world: Box<World>,
    /// The run's state: the profile's `.status.canary`.
    prev: CanaryStatus,
    /// The command annotation, if set.
    command: Option<CommandRequest>,
    /// Run only when one was due, so a step never queries Prometheus for nothing.
    analysis: Option<Analysis>,
    /// `analysis` is a quick check within the step, not the step's full analysis.
    quick: bool,
    /// The quick-check cadence in effect (zero: off); see [`crate::cadence::check_interval`].
    check_interval: std::time::Duration,
    /// What the webhooks called this round answered.
    hooks: hooks::Results,
}

impl Observation {
    /// The analysis run while observing, if one was due.
    pub fn analysis(&self) -> Option<&Analysis> {
        self.analysis.as_ref()
    }
}

/// What exists in the cluster.
#[derive(Clone, Debug)]
struct World {
    target: Deployment,
    template: PodTemplateSpec,
    hash: String,
    primary: Option<Deployment>,
    /// The template the primary ran before its current one, as its newest older ReplicaSet holds it (read only
    /// during a promotion, for an abort).
    primary_previous: Option<PodTemplateSpec>,
    canary: Option<Deployment>,
    hpa: Option<HorizontalPodAutoscaler>,
}

/// Pure: the machine step, the pod split, achieved weight, and the writes to make.
#[derive(Clone, Debug)]
pub struct Step {
    /// Write to `.status.canary`.
    pub status: CanaryStatus,
    /// Write as the `CanaryReady` condition.
    pub condition: CanaryCondition,
    /// Emit (transitions only).
    pub events: Vec<CanaryEvent>,
    /// Reconcile again after this long.
    pub requeue_after: Duration,
    /// The analysis run for this step, if one was due (for metrics).
    pub analysis: Option<Analysis>,
    /// `analysis` was a quick check within the step (see [`crate::cadence`]).
    pub quick: bool,
    /// Webhooks to call once the step is applied: `post-rollout` when the run ended, `event` for each event.
    pub after: Vec<HookCall>,
    writes: Writes,
}

/// The objects a step writes, in the order [`apply`] writes them (the primary before the target loses its pods).
#[derive(Clone, Debug, Default)]
struct Writes {
    /// `<target>-primary` HPA, the clone of the target's.
    hpa: Option<HorizontalPodAutoscaler>,
    /// The primary, when created or promoted.
    primary: Option<Deployment>,
    /// The canary sized for the stage; none while the primary is being set up.
    canary: Option<Deployment>,
    /// Name and apply body (`spec.replicas: 0` only) of the target, while it still runs pods the primary now serves.
    target_to_zero: Option<(String, Value)>,
    /// Backend Services of the HTTPRoute.
    services: Vec<Service>,
    route: Option<RouteWeight>,
}

/// The canary's share of an HTTPRoute; the rest of the body comes from the live route at apply time.
#[derive(Clone, Debug)]
struct RouteWeight {
    route: String,
    target: String,
    canary_weight: u32,
}

/// Where a step finds the target's HPA: a LIST of the namespace's HPAs, or the answer of a caller that caches them.
#[derive(Clone, Debug)]
pub enum TargetHpa {
    Read,
    Known(Option<Box<HorizontalPodAutoscaler>>),
}

/// Where an analysis asks: the canary spec with its templates resolved, and its Prometheus sources (the
/// analysis's own first, then those of templates that name their own, as [`Resolved::endpoints`] lists them).
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub resolved: &'a Resolved,
    pub prometheus: &'a [&'a dyn MetricsSource],
    /// Sends the run's webhooks; without one (a dry run) none is called.
    pub hooks: Option<&'a dyn HookCaller>,
}

/// Reads the target, primary, canary and HPA of `profile` (fresh from the API server, so it has a uid and its
/// status), and runs the analysis if one is due at `now`.
#[tracing::instrument(skip_all, fields(profile = %profile.name_any()))]
pub async fn observe(
    client: &Client,
    profile: &PerformanceProfile,
    sources: Sources<'_>,
    now: Timestamp,
    hpa: TargetHpa,
) -> Result<Observation> {
    let Some(&prom) = sources.prometheus.first() else {
        return Err(Error::InvalidSpec {
            field: "spec.canary.analysis.prometheus".into(),
            message: "no Prometheus".into(),
        });
    };
    let spec = canary_spec(profile)?;
    let timing = Timing::from_spec(spec)?;
    let ns = namespace(profile)?;
    let target = &profile.spec.target_ref.name;
    let prev = profile.status.as_ref().and_then(|s| s.canary.clone()).unwrap_or_default();
    let mut world = read_world(client, &ns, target, hpa).await?;
    if prev.phase == CanaryPhase::Promoting
        && let Some(primary) = &world.primary
    {
        // Boxed: the read is rare and its future would otherwise enlarge every step's.
        world.primary_previous = Box::pin(crate::history::previous_template(client, &ns, primary)).await?;
    }
    // Only the run of the current template is judged: a new template restarts the run before any analysis.
    let same_run = prev.run_id.as_deref() == Some(world.hash.as_str());
    let holding = same_run && prev.phase == CanaryPhase::Progressing && !prev.paused;
    // The full analysis does not depend on the quick-check cadence: it runs alongside the read of the scrape
    // interval (cached; bounded by its own short timeout), so a hung Prometheus costs it nothing more.
    let ctx = QueryContext { namespace: ns, target: target.clone() };
    let render = || sources.resolved.checks(&profile.spec.slo, &ctx);
    let full = holding && cadence::analysis_due(&timing, &prev, now);
    let scrape = async { if holding { prom.scrape_interval().await } else { None } };
    let hook_ctx = hook_context(profile, spec, &ctx.namespace);
    let mut facts = hook_facts(spec, &world, &prev, full);
    let call_hooks = |facts: Facts| {
        let due = hooks::due(spec, timing.step_interval, &prev, facts, now);
        let calls_of = |kind| hooks::calls(spec, kind, &hook_ctx, &prev, &world.hash);
        async move {
            match sources.hooks {
                Some(caller) if due != hooks::Due::default() => hooks::run_due(caller, &due, calls_of, now).await,
                _ => hooks::Results::default(),
            }
        }
    };
    let (analysis, scrape, hook_results) = if full {
        let asking = Asking {
            namespace: &ctx.namespace,
            window: &spec.step_interval,
            deadline: analysis::deadline(timing.step_interval),
        };
        let checks = render();
        let (analysis, scrape, hooks) =
            futures::join!(analyse(sources.prometheus, &checks, asking), scrape, call_hooks(facts));
        (Some(analysis), scrape, Some(hooks))
    } else {
        (None, scrape.await, None)
    };
    let timing = Timing { check_interval: cadence::check_interval(spec, timing.step_interval, scrape), ..timing };
    let quick = holding && !full && cadence::quick_check_due(&timing, &prev, now);
    facts.quick = quick;
    let (analysis, hook_results) = match hook_results {
        Some(results) => (analysis, results),
        None if quick => {
            let window = cadence::quick_window(&prev, now);
            let deadline = analysis::deadline(timing.check_interval);
            let asking = Asking { namespace: &ctx.namespace, window: &window, deadline };
            let checks = render();
            let (analysis, hooks) = futures::join!(analyse(sources.prometheus, &checks, asking), call_hooks(facts));
            (Some(analysis), hooks)
        }
        None => (analysis, call_hooks(facts).await),
    };
    // Rollout webhooks are checks of the full analysis: a failing one fails it (and counts toward failureLimit).
    let analysis = analysis.map(|a| match &hook_results.rollout {
        Some(records) => a.with_hooks(records),
        None => a,
    });
    let command = profile.annotations().get(objects::COMMAND_ANNOTATION).map(|v| machine::parse_command(v));
    let check_interval = timing.check_interval;
    Ok(Observation { world: Box::new(world), prev, command, analysis, quick, check_interval, hooks: hook_results })
}

/// Steps the machine on `observation` and builds the objects the new status asks for.
pub fn decide(profile: &PerformanceProfile, observation: &Observation, now: Timestamp) -> Result<Step> {
    let spec = canary_spec(profile)?;
    let timing = Timing { check_interval: observation.check_interval, ..Timing::from_spec(spec)? };
    let owner = objects::owner(profile)?;
    let w = &observation.world;
    // The primary's full size (people or its HPA set it) sizes the run; before it exists, the target's.
    let total = w.primary.as_ref().map_or_else(|| objects::replicas(&w.target).max(1), objects::full_replicas);
    let decision = machine::step(&timing, &observation.prev, &observed(spec, observation, now), now);
    let mut status = decision.status;
    let (writes, split) = writes(spec, w, &owner, &status, decision.primary, total)?;
    status.primary_replicas = split.primary;
    status.canary_replicas = split.canary;
    status.achieved_weight = achieved_weight(spec, &status, &split);
    let after = after_hooks(profile, spec, &observation.prev, &status, &decision.events, now);
    Ok(Step {
        after,
        condition: machine::condition(&status),
        requeue_after: machine::requeue_after(&timing, &status, now),
        status,
        events: decision.events,
        analysis: observation.analysis.clone(),
        quick: observation.quick,
        writes,
    })
}

/// Writes the step's objects with server-side apply, skipping those the live object already matches.
#[tracing::instrument(skip_all, fields(profile = %profile.name_any()))]
pub async fn apply(client: &Client, profile: &PerformanceProfile, step: &Step) -> Result<()> {
    let ns = namespace(profile)?;
    let applier = Applier { client, ns: &ns };
    let w = &step.writes;
    if let Some(hpa) = &w.hpa {
        applier.put(hpa).await?;
    }
    for deployment in w.primary.iter().chain(&w.canary) {
        applier.put(deployment).await?;
    }
    if let Some((name, body)) = &w.target_to_zero {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        api.patch(name, &params(), &Patch::Apply(body)).await.map_err(Error::kube("scale the target to zero"))?;
    }
    for service in &w.services {
        applier.put(service).await?;
    }
    if let Some(route) = &w.route {
        applier.route(route).await?;
    }
    for event in &step.events {
        tracing::info!(reason = event.reason, "{}", event.message);
    }
    Ok(())
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
    // Only the profile whose copy this is gives the pods back: another profile naming the same target (refused,
    // waiting for the holder) must not scale the holder's target up under its run.
    let uid = profile.uid();
    if !primary.owner_references().iter().any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref()) {
        return Ok(());
    }
    let body = objects::target_replicas(target, objects::replicas(&primary));
    deployments.patch(target, &params(), &Patch::Apply(&body)).await.map_err(Error::kube("restore target replicas"))?;
    Ok(())
}

fn canary_spec(profile: &PerformanceProfile) -> Result<&CanarySpec> {
    profile.spec.canary.as_ref().ok_or(Error::NotConfigured)
}

fn namespace(profile: &PerformanceProfile) -> Result<String> {
    profile.namespace().ok_or_else(|| Error::InvalidSpec {
        field: "metadata.namespace".into(),
        message: "profile has no namespace".into(),
    })
}

async fn read_world(client: &Client, ns: &str, target: &str, hpa: TargetHpa) -> Result<World> {
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
    let hpa = match hpa {
        TargetHpa::Known(hpa) => hpa.map(|h| *h),
        TargetHpa::Read => {
            let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
            let hpas = hpas.list(&ListParams::default()).await.map_err(Error::kube("list HorizontalPodAutoscalers"))?;
            objects::target_hpa(&hpas.items, target).cloned()
        }
    };
    Ok(World {
        hash: objects::template_hash(&template)?,
        template,
        primary: get(objects::primary_name(target)).await?,
        primary_previous: None,
        canary: get(objects::canary_name(target)).await?,
        hpa,
        target: target_deployment,
    })
}

/// What the machine sees of the world; the canary counts as ready only at the current stage's size.
fn observed(spec: &CanarySpec, o: &Observation, now: Timestamp) -> Observed {
    let w = &o.world;
    let canary_ready = canary_ready(spec, w, o.prev.weight);
    Observed {
        target_hash: w.hash.clone(),
        primary: w
            .primary
            .as_ref()
            .map(|p| Workload { hash: objects::annotated_hash(p), ready: objects::rollout_complete(p) }),
        canary_ready,
        analysis: o.analysis.as_ref().map(|a| a.record(o.prev.stage_index.unwrap_or(0), o.prev.weight, now)),
        quick: o.quick,
        command: o.command.clone(),
        primary_restorable: w.primary_previous.is_some(),
        hooks: o.hooks.clone(),
    }
}

/// The objects the status asks for, and the pod split in effect.
fn writes(
    spec: &CanarySpec,
    w: &World,
    owner: &OwnerReference,
    status: &CanaryStatus,
    primary: PrimaryAction,
    total: u32,
) -> Result<(Writes, Split)> {
    let mut writes =
        Writes { hpa: w.hpa.as_ref().map(|hpa| objects::primary_hpa(hpa, &w.target, owner)), ..Writes::default() };
    let promote = primary == PrimaryAction::Promote && status.run_id.as_deref() == Some(w.hash.as_str());
    if (primary == PrimaryAction::Create && w.primary.is_none()) || promote {
        let replicas = if promote { total } else { objects::replicas(&w.target).max(1) };
        writes.primary = Some(objects::workload(&w.target, Role::Primary, &w.template, &w.hash, replicas, owner)?);
    }
    if let (PrimaryAction::Restore, Some(previous)) = (primary, &w.primary_previous) {
        let hash = objects::template_hash(previous)?;
        let previous = objects::with_config_checksum(previous, objects::config_checksum(&w.template));
        writes.primary = Some(objects::workload(&w.target, Role::Primary, &previous, &hash, total, owner)?);
    }
    if writes.primary.is_none() {
        writes.primary = contract_roll(w, owner, total)?;
    }
    // Until the primary is ready the target keeps serving, and there is no canary yet.
    if status.phase == CanaryPhase::Initializing {
        return Ok((writes, split::split(total, 0, Mode::Routed)));
    }
    let mut split = split::split(total, status.weight, mode(spec, w));
    if promote {
        split.primary = total;
    } else {
        split.primary = primary_size(w, status, split.primary, total);
        split.achieved_weight = split::share(split.primary, split.canary);
        if writes.primary.is_none() {
            writes.primary = resize_primary(w, owner, split.primary, total)?;
        }
    }
    writes.canary = Some(objects::workload(&w.target, Role::Canary, &w.template, &w.hash, split.canary, owner)?);
    if objects::replicas(&w.target) != 0 {
        let name = w.target.name_any();
        writes.target_to_zero = Some((name.clone(), objects::target_replicas(&name, 0)));
    }
    if let Some(route) = &spec.routing.http_route {
        writes.services = objects::role_services(&w.target, route.port, owner, &[Role::Primary, Role::Canary]);
        let (route, target) = (route.name.clone(), w.target.name_any());
        writes.route = Some(RouteWeight { route, target, canary_weight: routed_weight(spec, status) });
    } else if let Some(port) = spec.routing.canary_port {
        // By replica ratio the target's Service reaches both sides; this one reaches the canary alone.
        writes.services = objects::role_services(&w.target, port, owner, &[Role::Canary]);
    }
    Ok((writes, split))
}

/// How the run splits pods: an HPA on the target (cloned onto the primary) owns the primary's size.
fn mode(spec: &CanarySpec, w: &World) -> Mode {
    split::mode(spec.routing.http_route.is_some(), w.hpa.is_some())
}

/// The primary's pods for this step: the split's while the stage holds, its full size when no run is going. While
/// the canary's pods start (`WaitingForPods`) the primary keeps the pods it has, so it gives pods up only once the
/// canary's are ready and serving never drops below the full size.
fn primary_size(w: &World, status: &CanaryStatus, wanted: u32, total: u32) -> u32 {
    let live = w.primary.as_ref().map_or(total, objects::replicas);
    match status.phase {
        CanaryPhase::WaitingForPods => wanted.max(live.min(total)),
        CanaryPhase::Progressing => wanted,
        _ => total,
    }
}

/// The primary at `replicas` (marked with its full size while it runs fewer), when the live one differs.
fn resize_primary(w: &World, owner: &OwnerReference, replicas: u32, total: u32) -> Result<Option<Deployment>> {
    let Some(primary) = &w.primary else { return Ok(None) };
    let marked =
        primary.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(objects::FULL_REPLICAS_ANNOTATION));
    if objects::replicas(primary) == replicas && marked == (replicas < total) {
        return Ok(None);
    }
    let Some(template) = primary.spec.as_ref().map(|s| &s.template) else { return Ok(None) };
    let hash = match objects::annotated_hash(primary) {
        Some(hash) => hash,
        None => objects::template_hash(template)?,
    };
    let object = objects::workload(&w.target, Role::Primary, template, &hash, replicas, owner)?;
    Ok(Some(objects::with_full_size(object, replicas, total)))
}

/// The primary with the target's contract checksum, when only that differs: a contract change rolls the primary's
/// pods (`appConfig.rolloutOnChange`) without starting a run; the rest of its template (and its size) stays.
fn contract_roll(w: &World, owner: &OwnerReference, total: u32) -> Result<Option<Deployment>> {
    let Some(primary) = &w.primary else { return Ok(None) };
    let Some(live) = primary.spec.as_ref().map(|s| &s.template) else { return Ok(None) };
    let wanted = objects::config_checksum(&w.template);
    if objects::config_checksum(live) == wanted {
        return Ok(None);
    }
    let hash = match objects::annotated_hash(primary) {
        Some(hash) => hash,
        None => objects::template_hash(live)?,
    };
    let template = objects::with_config_checksum(live, wanted);
    let replicas = objects::replicas(primary);
    let object = objects::workload(&w.target, Role::Primary, &template, &hash, replicas, owner)?;
    Ok(Some(objects::with_full_size(object, replicas, total)))
}

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

struct Applier<'a> {
    client: &'a Client,
    ns: &'a str,
}

impl Applier<'_> {
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

    /// Sets the backend weights; `spec.rules` is atomic, so the body is the live rules with new weights.
    async fn route(&self, weight: &RouteWeight) -> Result<()> {
        let name = &weight.route;
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), self.ns, &resource);
        let live = api.get(name).await.map_err(Error::kube(format!("get HTTPRoute {name}")))?;
        let live: Value = serde_json::to_value(&live).map_err(|source| Error::Encode { what: "HTTPRoute", source })?;
        let body = objects::route_weights(&live, &weight.target, weight.canary_weight)?;
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

#[path = "reconcile_hooks.rs"]
mod hooks_of;
use hooks_of::{after_hooks, canary_ready, hook_context, hook_facts};

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
