//! An in-memory API server holding a profile and its target, plus a stand-in kubelet that makes every
//! Deployment's pods ready.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_fake_client::ClientBuilder;
use perf_canary::{MetricsSource, Step, apply, decide, observe};
use perf_operator_api::{CanaryPhase, CanarySpec, CanaryStatus, PerformanceProfile, PerformanceProfileSpec, TargetRef};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const NS: &str = "shop";
pub const PROFILE: &str = "checkout";

/// A profile for `target` with the default stages and the given step interval.
pub fn profile(target: &str, step_interval: &str) -> PerformanceProfile {
    let canary =
        CanarySpec { step_interval: step_interval.into(), progress_deadline: "2m".into(), ..CanarySpec::default() };
    let spec = PerformanceProfileSpec {
        target_ref: TargetRef { name: target.into(), ..TargetRef::default() },
        canary: Some(canary),
        ..PerformanceProfileSpec::default()
    };
    let mut profile = PerformanceProfile::new(PROFILE, spec);
    profile.metadata.namespace = Some(NS.into());
    profile
}

/// A Deployment `name` (selector `app: name`) running `image`.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": NS, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                          "spec": { "containers": [{ "name": "app", "image": image }] } }
        }
    }))
    .unwrap()
}

/// An in-memory cluster with one profile.
pub struct Cluster {
    pub client: Client,
    pub target: String,
    /// Test clock for [`Cluster::reconcile`].
    pub now: Timestamp,
}

impl Cluster {
    /// A cluster holding `profile`, its target (`image`, 3 replicas) and `extra` objects.
    pub async fn with(profile: PerformanceProfile, image: &str, extra: Vec<Value>) -> Self {
        Self::build(ClientBuilder::new(), profile, image, extra).await
    }

    /// [`Cluster::with`], also serving the custom resource `R` (e.g. Gateway API HTTPRoute).
    pub async fn with_resources<R: kube::Resource<DynamicType = ()>>(
        profile: PerformanceProfile,
        image: &str,
        extra: Vec<Value>,
    ) -> Self {
        Self::build(ClientBuilder::new().with_resource::<R>(), profile, image, extra).await
    }

    async fn build(builder: ClientBuilder, profile: PerformanceProfile, image: &str, extra: Vec<Value>) -> Self {
        let target = profile.spec.target_ref.name.clone();
        let client = builder
            .with_resource::<PerformanceProfile>()
            .with_status_subresource::<PerformanceProfile>()
            .with_status_subresource::<Deployment>()
            .with_object(profile)
            .with_object(deployment(&target, image, 3))
            .with_runtime_objects(extra)
            .build()
            .await
            .unwrap();
        let cluster = Self { client, target, now: Timestamp::from_second(1_700_000_000).unwrap() };
        cluster.kubelet().await;
        cluster
    }

    pub fn profiles(&self) -> Api<PerformanceProfile> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// One reconcile at `now` of the profile read fresh, writing status back as the controller does, then the
    /// kubelet.
    pub async fn reconcile_at(&self, prom: &dyn MetricsSource, now: Timestamp) -> Step {
        let mut profile = self.profiles().get(PROFILE).await.unwrap();
        let step = run_once(&self.client, &profile, prom, now).await.unwrap();
        profile.status.get_or_insert_with(Default::default).canary = Some(step.status.clone());
        profile.metadata.managed_fields = None;
        self.profiles().replace_status(PROFILE, &PostParams::default(), &profile).await.unwrap();
        self.kubelet().await;
        step
    }

    /// Moves the test clock by `seconds`, then reconciles.
    pub async fn after(&mut self, seconds: i64, prom: &dyn MetricsSource) -> Step {
        self.now = self.now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
        self.reconcile_at(prom, self.now).await
    }

    /// Reconciles on the wall clock until the run is over; returns every status seen.
    pub async fn run_until_over(&self, prom: &dyn MetricsSource, guard: Duration) -> Vec<CanaryStatus> {
        let started = Instant::now();
        let mut history: Vec<CanaryStatus> = Vec::new();
        loop {
            let step = self.reconcile_at(prom, Timestamp::now()).await;
            let over =
                matches!(step.status.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack | CanaryPhase::Failed);
            history.push(step.status);
            if over {
                return history;
            }
            assert!(started.elapsed() < guard, "run still going after {guard:?} (hang guard): {:#?}", history.last());
            tokio::time::sleep(step.requeue_after.min(Duration::from_millis(500))).await;
        }
    }

    /// Every Deployment rolled out with all pods ready (what kubelet and the Deployment controller would report).
    pub async fn kubelet(&self) {
        let api = self.deployments();
        for d in api.list(&Default::default()).await.unwrap().items {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = json!({ "status": {
                "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": replicas, "observedGeneration": d.metadata.generation } });
            let name = d.metadata.name.clone().unwrap();
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        }
    }

    /// A new version of the target arrives (a new image in Git, say).
    pub async fn deploy(&self, image: &str) {
        let patch =
            json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": image }] } } } });
        self.deployments().patch(&self.target, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    pub async fn deployment(&self, name: &str) -> Deployment {
        self.deployments().get(name).await.unwrap()
    }

    pub async fn status(&self) -> CanaryStatus {
        self.profiles().get(PROFILE).await.unwrap().status.and_then(|s| s.canary).unwrap_or_default()
    }

    pub async fn replicas(&self, name: &str) -> i32 {
        self.deployment(name).await.spec.and_then(|s| s.replicas).unwrap_or(1)
    }

    pub async fn image(&self, name: &str) -> String {
        let d = self.deployment(name).await;
        d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap()
    }
}

/// One step as the operator's controller runs it: observe -> decide -> apply; returns the step (status unwritten).
pub async fn run_once(
    client: &Client,
    profile: &PerformanceProfile,
    prom: &dyn MetricsSource,
    now: Timestamp,
) -> perf_canary::Result<Step> {
    let resolved = perf_canary::templates::Resolved::inline(
        profile.spec.canary.as_ref().ok_or(perf_canary::Error::NotConfigured)?,
    );
    let sources = perf_canary::Sources { resolved: &resolved, prometheus: &[prom], hooks: None };
    let observation = observe(client, profile, sources, now, perf_canary::TargetHpa::Read).await?;
    let step = decide(profile, &observation, now)?;
    apply(client, profile, &step).await?;
    Ok(step)
}

/// Distinct canary weights in the order a run showed them.
pub fn weights_walked(history: &[CanaryStatus]) -> Vec<u32> {
    let mut walked: Vec<u32> = Vec::new();
    for s in history {
        if s.weight > 0 && walked.last() != Some(&s.weight) {
            walked.push(s.weight);
        }
    }
    walked
}
