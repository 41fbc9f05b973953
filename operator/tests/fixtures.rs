//! Fixture builders that read like sentences: `Profile::test().with_provisioned_redis()`.

#![allow(dead_code)]

#[path = "ssa.rs"]
mod ssa;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_fake_client::interceptor::{Funcs, PatchStatusContext};
use kube_fake_client::{ClientBuilder, PatchType};
use perf_operator::controller::Context;
use perf_operator::telemetry::Metrics;
use perf_operator_api::*;
use serde_json::Value;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const NS: &str = "risk";
pub const FOREIGN_FINALIZER: &str = "example.com/backup";

pub struct Profile;

impl Profile {
    /// A profile named `risk-api` for the Deployment `risk-api`, with no sections.
    pub fn test() -> PerformanceProfile {
        let mut p = PerformanceProfile::new(
            "risk-api",
            PerformanceProfileSpec {
                target_ref: TargetRef { name: "risk-api".into(), ..Default::default() },
                ..Default::default()
            },
        );
        p.metadata.namespace = Some(NS.into());
        p.metadata.uid = Some("0b7c5d0e-0000-4000-8000-000000000001".into());
        p.metadata.generation = Some(1);
        p
    }
}

pub trait ProfileExt {
    fn with_provisioned_redis(self) -> Self;
    fn with_pools(self) -> Self;
    fn with_canary_stages(self, stages: Vec<u32>) -> Self;
    fn with_clickhouse_prune(self) -> Self;
    fn with_rollout_on_change(self) -> Self;
}

impl ProfileExt for PerformanceProfile {
    fn with_provisioned_redis(mut self) -> Self {
        self.spec.cache = Some(
            serde_json::from_value(json!({
                "redis": {"provision": {"maxMemory": "128Mi"}},
                "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}, {"name": "metrics", "ttlSeconds": 300}]
            }))
            .unwrap(),
        );
        self
    }
    fn with_pools(mut self) -> Self {
        self.spec.pools = Some(
            serde_json::from_value(json!({
                "clickhouse": {"min": 10, "max": 10}, "postgres": {"min": 5, "max": 20}
            }))
            .unwrap(),
        );
        self
    }
    fn with_canary_stages(mut self, stages: Vec<u32>) -> Self {
        self.spec.canary = Some(CanarySpec { stages, ..CanarySpec::default() });
        self
    }
    fn with_clickhouse_prune(mut self) -> Self {
        self.spec.clickhouse = Some(
            serde_json::from_value(json!({
                "endpoint": "http://127.0.0.1:9", "prune": true, "tables": []
            }))
            .unwrap(),
        );
        self
    }
    fn with_rollout_on_change(mut self) -> Self {
        self.spec.app_config.rollout_on_change = true;
        self
    }
}

/// The suite's PostgreSQL (tests/run.sh, POSTGRES_URL): host, port, user, password.
pub fn postgres_server() -> (String, u16, String, String) {
    let url = std::env::var("POSTGRES_URL").unwrap_or_else(|_| {
        panic!("POSTGRES_URL not set: run the suite with tests/run.sh, which starts a PostgreSQL (tests/support/start-postgres.sh)")
    });
    let config: tokio_postgres::Config = url.parse().expect("POSTGRES_URL is a postgres:// URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("POSTGRES_URL names no TCP host: {other:?}"),
    };
    let password = String::from_utf8(config.get_password().unwrap_or_default().to_vec()).unwrap();
    (host, config.get_ports()[0], config.get_user().unwrap_or_default().to_string(), password)
}

/// A Deployment as the app team would have it.
pub fn target_deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "risk-api", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "risk-api"}},
            "template": {"metadata": {"labels": {"app": "risk-api"}},
                         "spec": {"containers": [{"name": "app", "image": "risk-api:1"}]}}
        }
    }))
    .unwrap()
}

/// An in-memory API server holding `objects`, counting every write (create, patch, replace, delete). A profile's
/// status is applied as a real API server would (see `ssa.rs`), not merged; a profile given with a status is held
/// as if the operator had applied it.
pub struct World {
    pub client: Client,
    pub ctx: Arc<Context>,
    writes: Arc<AtomicUsize>,
    failing: Arc<Mutex<Option<String>>>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl World {
    pub async fn with(mut profile: PerformanceProfile, target: Option<Deployment>) -> Self {
        // kube's finalizer helper adds the first finalizer with a JSON-patch `test` of a missing path, which the fake
        // API server rejects (a real one accepts it). Another controller's finalizer, as Argo CD or Velero would
        // leave, takes kube's other, equally real path.
        profile.metadata.finalizers.get_or_insert_with(|| vec![FOREIGN_FINALIZER.into()]);
        let writes = Arc::new(AtomicUsize::new(0));
        let count = |w: &Arc<AtomicUsize>| {
            let w = w.clone();
            move || {
                w.fetch_add(1, Ordering::SeqCst);
            }
        };
        let (c1, c2, c3, c4, c5) = (count(&writes), count(&writes), count(&writes), count(&writes), count(&writes));
        let applied_status = Mutex::new(profile.status.as_ref().map(|s| serde_json::to_value(s).unwrap()));
        let failing = Arc::new(Mutex::new(None::<String>));
        let fail = failing.clone();
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorded = events.clone();
        let funcs = Funcs::new()
            .create(move |ctx| {
                // Events are a record of transitions, not state the test counts as writes.
                if ctx.object.get("kind").and_then(|k| k.as_str()) != Some("Event") {
                    c1();
                } else {
                    recorded.lock().unwrap().push(ctx.object.clone());
                }
                Ok(None)
            })
            .patch(move |ctx| {
                c2();
                match fail.lock().unwrap().as_deref() == Some(ctx.name) {
                    true => Err(kube_fake_client::Error::Internal(format!("injected failure patching {}", ctx.name))),
                    false => Ok(None),
                }
            })
            .patch_status(move |ctx| {
                c3();
                apply_profile_status(&ctx, &applied_status)
            })
            .replace(move |_| {
                c4();
                Ok(None)
            })
            .delete(move |_| {
                c5();
                Ok(None)
            });
        let mut builder = ClientBuilder::new()
            .with_resource::<PerformanceProfile>()
            .with_status_subresource::<PerformanceProfile>()
            .with_status_subresource::<Deployment>()
            .with_object(profile)
            .with_interceptor_funcs(funcs);
        if let Some(t) = target {
            builder = builder.with_object(t);
        }
        let client = builder.build().await.unwrap();
        let mut ctx = Context::new(client.clone(), Arc::new(Metrics::new().unwrap())).unwrap();
        // The test servers listen on loopback, which profiles may not reach by default.
        ctx.set_egress(loopback_allowed()).unwrap();
        let ctx = Arc::new(ctx);
        Self { client, ctx, writes, failing, events }
    }

    /// Policies evaluated at every reconcile, as with a resync of zero (the operator holds a decision for 80 % of
    /// its resync): for tests of what one evaluation passes to the next.
    pub fn evaluating_every_round(mut self) -> Self {
        let ctx = Arc::get_mut(&mut self.ctx).expect("the context is not shared before the first reconcile");
        ctx.scope.resync = std::time::Duration::ZERO;
        self
    }

    /// Events recorded so far: (type, reason, note).
    pub fn events(&self) -> Vec<(String, String, String)> {
        let field = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        self.events.lock().unwrap().iter().map(|e| (field(e, "type"), field(e, "reason"), field(e, "note"))).collect()
    }

    /// A Secret in the profile's namespace with `data` as its keys.
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        use k8s_openapi::ByteString;
        let data = data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect();
        let mut secret = k8s_openapi::api::core::v1::Secret { data: Some(data), ..Default::default() };
        secret.metadata.name = Some(name.into());
        secret.metadata.namespace = Some(NS.into());
        let api = self.api::<k8s_openapi::api::core::v1::Secret>();
        if api.get_opt(name).await.unwrap().is_some() {
            api.delete(name, &Default::default()).await.unwrap();
        }
        api.create(&PostParams::default(), &secret).await.unwrap();
    }

    /// Every later patch of an object named `name` fails, as an API server that refuses it would.
    pub fn fail_patches_of(&self, name: &str) {
        *self.failing.lock().unwrap() = Some(name.into());
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn reset_writes(&self) {
        self.writes.store(0, Ordering::SeqCst);
    }

    pub async fn profile(&self) -> PerformanceProfile {
        Api::<PerformanceProfile>::namespaced(self.client.clone(), NS).get("risk-api").await.unwrap()
    }

    /// Reconciles until the finalizer is in place (kube's helper only adds it, then waits for the next event) and
    /// once more with it, as the controller would on the watch event that follows.
    pub async fn reconcile_settled(&self) -> perf_operator::Result<kube::runtime::controller::Action> {
        self.reconcile().await?;
        self.reconcile().await
    }

    /// One reconcile of the stored profile, as the controller would run it.
    pub async fn reconcile(&self) -> perf_operator::Result<kube::runtime::controller::Action> {
        let p = self.profile().await;
        perf_operator::controller::converge::reconcile(Arc::new(p), self.ctx.clone()).await
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    /// What the kubelet would report once Redis runs.
    pub async fn redis_becomes_available(&self) {
        let patch = json!({"status": {"availableReplicas": 1, "readyReplicas": 1, "replicas": 1}});
        self.api::<Deployment>()
            .patch_status("risk-api-redis", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub fn condition(profile: &PerformanceProfile, type_: &str) -> (String, String, String) {
        let c = profile
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
            .unwrap_or_else(|| panic!("no {type_} condition on {}", profile.name_any()));
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }
}

/// A server-side apply of a profile's status as a real API server does it: what the operator applied before and
/// leaves out now is removed (`ssa.rs`). Other status patches take the fake's own path.
fn apply_profile_status(
    ctx: &PatchStatusContext,
    previous_apply: &Mutex<Option<Value>>,
) -> kube_fake_client::Result<Option<Value>> {
    let is_profile = ctx.patch.get("kind").and_then(Value::as_str) == Some("PerformanceProfile");
    if !matches!(ctx.patch_type, PatchType::ApplyPatch) || !is_profile {
        return Ok(None);
    }
    let mut live: PerformanceProfile = ctx.client.get(ctx.namespace, ctx.name)?;
    let applied = ctx.patch.get("status").cloned().unwrap_or_default();
    let mut owned = previous_apply.lock().unwrap();
    let after = ssa::apply(&serde_json::to_value(&live.status)?, owned.as_ref(), &applied);
    *owned = Some(applied);
    live.status = serde_json::from_value(after)?;
    let stored = ctx.client.update_status(ctx.namespace, &live, &PostParams::default())?;
    Ok(Some(serde_json::to_value(stored)?))
}

/// The egress rule of the tests: the operator's default with loopback opened, where every test server listens.
pub fn loopback_allowed() -> perf_egress::Egress {
    perf_egress::Egress::new(&[], &["127.0.0.0/8".into(), "::1".into()], vec![]).expect("an egress rule")
}
