//! Observe: every read a decision needs, run concurrently, each under its own deadline, each failure kept as data
//! in [`Observed`] so that one slow or broken source never starves the other components. The servers' connection
//! limits (PostgreSQL, ClickHouse) are read in [`limits`].

use super::Context;
use super::limits;
use super::policy_runtime::Loading;
use crate::components::cache::{self as cache_objects, PASSWORD_KEY};
use crate::components::{Retired, redis_auth};
use crate::decide::{ClickHouseObserved, Observed, ProvisionedRedis, Read, SecretProblem, Unread};
use crate::redis_stats::{self, RedisStats};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use perf_canary::MetricsSource;
use perf_operator_api::{PerformanceProfile, PolicyRef, duration::parse_duration};
use perf_policy_host::{Policy, RouteTraffic, World};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long each source may take. With a canary, no read may take longer than its step interval: a hung
/// ClickHouse or Prometheus must never hold back the next analysis or a rollback by more than one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub kube: Duration,
    pub redis: Duration,
    pub policy: Duration,
    pub traffic: Duration,
    pub clickhouse: Duration,
    pub canary: Duration,
    /// The PostgreSQL of `pools.postgres.server`: connect (TLS, authentication) and one query.
    pub postgres: Duration,
}

impl Deadlines {
    pub fn for_profile(profile: &PerformanceProfile) -> Self {
        let defaults = Self {
            kube: Duration::from_secs(10),
            redis: Duration::from_secs(3),
            policy: Duration::from_secs(30),
            traffic: Duration::from_secs(10),
            clickhouse: Duration::from_secs(10),
            canary: Duration::from_secs(30),
            postgres: Duration::from_secs(5),
        };
        let step = profile.spec.canary.as_ref().and_then(|c| parse_duration(&c.step_interval).ok());
        let Some(step) = step.filter(|s| !s.is_zero()) else { return defaults };
        let cap = |d: Duration| d.min(step);
        Self {
            kube: defaults.kube,
            redis: cap(defaults.redis),
            policy: cap(defaults.policy),
            traffic: cap(defaults.traffic),
            clickhouse: cap(defaults.clickhouse),
            canary: defaults.canary,
            postgres: cap(defaults.postgres),
        }
    }
}

/// Runs `read` under `after`; a read that does not finish in time is recorded as a timeout of `what`.
async fn bounded<T>(what: &'static str, after: Duration, read: impl Future<Output = Read<T>>) -> Read<T> {
    tokio::time::timeout(after, read).await.unwrap_or(Err(Unread::Timeout { what, after }))
}

pub(super) fn kube_error(what: String) -> impl FnOnce(kube::Error) -> Unread {
    move |source| Unread::Kube { what, source: Box::new(source) }
}

/// Reads everything `profile` needs, concurrently.
pub async fn observe(profile: &PerformanceProfile, ctx: &Context) -> Observed {
    let d = Deadlines::for_profile(profile);
    let spec = &profile.spec;
    let cache = spec.cache.as_ref();
    let provisioned = cache.is_some_and(|c| c.redis.provision.is_some());
    let cache_policy = cache.and_then(|c| c.policy.as_ref());
    let rate_limit_policy = spec.rate_limit.as_ref().and_then(|r| r.policy.as_ref());
    // Boxed: joined in place, these futures make a stack frame too large for a test thread in debug builds.
    let pools = spec.pools.is_some();
    let (
        (serving, autoscaling),
        provisioned_redis,
        redis,
        (cache_policy, rate_limit_policy),
        traffic,
        clickhouse,
        canary,
        (postgres_limits, clickhouse_limits),
    ) = tokio::join!(
        Box::pin(async {
            tokio::join!(
                optional(pools, bounded("target Deployment", d.kube, serving(profile, ctx))),
                optional(pools, bounded("target's HPA", d.kube, hpa_max(profile, ctx))),
            )
        }),
        Box::pin(optional(
            provisioned,
            bounded("Redis Secret and Deployment", d.kube, provisioned_redis(profile, ctx))
        )),
        Box::pin(optional(reads_redis(profile), bounded("Redis", d.redis, redis_stats(profile, ctx, d.redis)))),
        Box::pin(async {
            tokio::join!(
                optional_ref(cache_policy, |r| load(ctx, profile, World::Cache, r, d.policy)),
                optional_ref(rate_limit_policy, |r| load(ctx, profile, World::RateLimit, r, d.policy)),
            )
        }),
        Box::pin(optional(
            rate_limit_policy.is_some(),
            bounded("Prometheus traffic", d.traffic, traffic(profile, ctx))
        )),
        Box::pin(optional(spec.clickhouse.is_some(), bounded("ClickHouse", d.clickhouse, clickhouse(profile, ctx)))),
        Box::pin(optional(
            spec.canary.is_some(),
            bounded("canary workloads and analysis", d.canary, canary(profile, ctx))
        )),
        Box::pin(async {
            tokio::join!(
                optional(
                    crate::decide::pools::reads_postgres(profile),
                    bounded("PostgreSQL limits", d.postgres, limits::postgres_limits(profile, ctx, d.postgres))
                ),
                optional(
                    crate::decide::pools::reads_clickhouse(profile),
                    bounded("ClickHouse limits", d.clickhouse, limits::clickhouse_limits(profile, ctx))
                ),
            )
        }),
    );
    // A fresh password for a new Redis, or for a rotation the profile asks for and the Secret has not answered.
    let requested = profile.annotations().get(redis_auth::ROTATE_ANNOTATION);
    let new_password = match &provisioned_redis {
        Some(Ok(ProvisionedRedis { password: None, .. })) => Some(new_password()),
        Some(Ok(p)) if requested.is_some_and(|r| p.rotation.as_ref() != Some(r)) => Some(new_password()),
        _ => None,
    };
    Observed {
        serving,
        autoscaling,
        provisioned_redis,
        new_password,
        redis,
        cache_policy,
        rate_limit_policy,
        traffic,
        clickhouse,
        canary,
        postgres_limits,
        clickhouse_limits,
        // A resync round always evaluates (its jitter is 10 %); a round some event started in between does not.
        policy_every: Some(ctx.scope.resync.mul_f64(0.8)),
    }
}

/// An external Redis is read for readiness and pool caps; a provisioned one only for its cache policy (its
/// readiness is its Deployment's).
fn reads_redis(profile: &PerformanceProfile) -> bool {
    profile.spec.cache.as_ref().is_some_and(|c| c.redis.external.is_some() || c.policy.is_some())
}

async fn optional<T>(wanted: bool, read: impl Future<Output = T>) -> Option<T> {
    if wanted { Some(read.await) } else { None }
}

async fn optional_ref<'a, R, T, F: Future<Output = T>>(r: Option<&'a R>, read: impl FnOnce(&'a R) -> F) -> Option<T> {
    match r {
        Some(r) => Some(read(r).await),
        None => None,
    }
}

pub(super) fn namespace(profile: &PerformanceProfile) -> String {
    profile.namespace().unwrap_or_else(|| "default".into())
}

/// Replicas of the pods serving the app: the primary's with a canary (the target is scaled to zero), else the
/// target's; None when neither exists.
async fn serving(profile: &PerformanceProfile, ctx: &Context) -> Read<Option<u32>> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace(profile));
    let target = &profile.spec.target_ref.name;
    let mut names = vec![target.clone()];
    if profile.spec.canary.is_some() {
        names.insert(0, perf_canary::objects::primary_name(target));
    }
    for name in names {
        let found = deployments.get_opt(&name).await.map_err(kube_error(format!("get Deployment {name}")))?;
        if let Some(d) = found {
            return Ok(d.spec.and_then(|s| s.replicas).map(|r| r.max(0) as u32));
        }
    }
    Ok(None)
}

/// `maxReplicas` of the HPA aimed at the target, if there is one: the pods pools must be sized for.
async fn hpa_max(profile: &PerformanceProfile, ctx: &Context) -> Read<Option<u32>> {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &namespace(profile));
    let list = hpas.list(&Default::default()).await.map_err(kube_error("list HorizontalPodAutoscalers".into()))?;
    let target = perf_canary::objects::target_hpa(&list.items, &profile.spec.target_ref.name);
    Ok(target.and_then(|h| h.spec.as_ref()).map(|s| s.max_replicas.max(0) as u32))
}

async fn provisioned_redis(profile: &PerformanceProfile, ctx: &Context) -> Read<ProvisionedRedis> {
    let ns = namespace(profile);
    let name = cache_objects::redis_name(profile);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let (secret, deployment, stateful_set) =
        tokio::join!(secrets.get_opt(&name), deployments.get_opt(&name), stateful_sets.get_opt(&name));
    let secret = secret.map_err(kube_error(format!("get Secret {name}")))?;
    let deployment = deployment.map_err(kube_error(format!("get Deployment {name}")))?;
    let stateful_set = stateful_set.map_err(kube_error(format!("get StatefulSet {name}")))?;
    let data = secret.and_then(|s| s.data).unwrap_or_default();
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok()).filter(|v| !v.is_empty());
    let password = text(PASSWORD_KEY);
    let (previous, rotation, rotated_at) =
        (text(redis_auth::PREVIOUS_KEY), text(redis_auth::ROTATION_KEY), text(redis_auth::ROTATED_AT_KEY));
    let persistent =
        profile.spec.cache.as_ref().and_then(|c| c.redis.provision.as_ref()).is_some_and(|p| p.persistence.is_some());
    // Only what this profile owns is ever retired.
    let uid = profile.uid();
    let owned =
        |meta: &kube::api::ObjectMeta| meta.owner_references.iter().flatten().any(|o| Some(&o.uid) == uid.as_ref());
    let live: Vec<Retired> = [
        deployment.as_ref().filter(|d| owned(&d.metadata)).map(|_| Retired::Deployment(name.clone())),
        stateful_set.as_ref().filter(|s| owned(&s.metadata)).map(|_| Retired::StatefulSet(name.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let available = if persistent {
        stateful_set.and_then(|s| s.status).and_then(|s| s.available_replicas).unwrap_or(0) >= 1
    } else {
        deployment.and_then(|d| d.status).and_then(|s| s.available_replicas).unwrap_or(0) >= 1
    };
    let exporter = text(redis_auth::EXPORTER_KEY);
    Ok(ProvisionedRedis { password, previous, rotation, rotated_at, exporter, available, live })
}

/// `INFO` of the profile's Redis: the external one with its Secret's password, or the provisioned one.
async fn redis_stats(profile: &PerformanceProfile, ctx: &Context, timeout: Duration) -> Read<RedisStats> {
    let Some(cache) = &profile.spec.cache else { return Err(Unread::NotObserved("no cache section")) };
    let (address, password) = match &cache.redis.external {
        Some(external) => {
            let password = match &external.password_secret_ref {
                Some(r) => Some(secret_key(profile, ctx, &r.name, &r.key).await?),
                None => None,
            };
            (external.address.clone(), password)
        }
        None => {
            let name = cache_objects::redis_name(profile);
            let password = secret_key(profile, ctx, &name, PASSWORD_KEY).await?;
            let address = format!("redis://{}", cache_objects::provisioned_address(profile));
            (address, Some(password))
        }
    };
    Ok(redis_stats::fetch(&address, password.as_deref(), timeout).await?)
}

/// One key of a Secret in the profile's namespace, as UTF-8.
pub async fn secret_key(profile: &PerformanceProfile, ctx: &Context, name: &str, key: &str) -> Read<String> {
    let problem = |problem| Unread::Secret { namespace: namespace(profile), name: name.to_string(), problem };
    let mut data = secret_data(profile, ctx, name).await?;
    let value = data.remove(key).ok_or_else(|| problem(SecretProblem::MissingKey(key.to_string())))?;
    String::from_utf8(value.0).map_err(|_| problem(SecretProblem::NotUtf8(key.to_string())))
}

/// The data of a Secret in the profile's namespace; a missing Secret is an error that names it.
pub(super) async fn secret_data(
    profile: &PerformanceProfile,
    ctx: &Context,
    name: &str,
) -> Read<BTreeMap<String, k8s_openapi::ByteString>> {
    let ns = namespace(profile);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets.get_opt(name).await.map_err(kube_error(format!("get Secret {name}")))?;
    let secret =
        secret.ok_or_else(|| Unread::Secret { namespace: ns, name: name.into(), problem: SecretProblem::NotFound })?;
    Ok(secret.data.unwrap_or_default())
}

async fn load(
    ctx: &Context,
    profile: &PerformanceProfile,
    world: World,
    r: &PolicyRef,
    after: Duration,
) -> Read<Arc<Policy>> {
    let loading = Loading { namespace: &namespace(profile), name: &profile.name_any(), world, policy: r };
    match tokio::time::timeout(after, ctx.policies.load(&ctx.client, loading)).await {
        Ok(loaded) => loaded.map_err(Unread::from),
        // The load goes on in the background and a later reconcile uses its result; the policy did not time out.
        Err(_) => Err(Unread::from(crate::decide::PolicyUnavailable::Host(perf_policy_host::Error::Busy(format!(
            "the component is still loading after {after:?}; it is used once loaded"
        ))))),
    }
}

/// Per-route traffic from Prometheus (label `route`) over the last minute; a route whose queries fail is absent.
async fn traffic(profile: &PerformanceProfile, ctx: &Context) -> Read<BTreeMap<String, RouteTraffic>> {
    let Some(spec) = &profile.spec.rate_limit else { return Ok(BTreeMap::new()) };
    let Some(url) = &spec.prometheus else { return Ok(BTreeMap::new()) };
    let access = spec.prometheus_access.as_ref();
    let prometheus = super::prometheus_access::client(profile, ctx, url, access, "spec.rateLimit").await?;
    let ns = namespace(profile);
    let routes = spec.routes.iter().map(|r| async {
        let queries = super::traffic::queries(&ns, &r.route);
        let answers = futures::future::join_all(queries.iter().map(|q| prometheus.query(q))).await;
        let values: Option<Vec<f64>> =
            answers.into_iter().map(|a| a.ok().flatten().filter(|v| v.is_finite())).collect();
        values.map(|v: Vec<f64>| (r.route.clone(), super::traffic::from_values(v.as_slice())))
    });
    Ok(futures::future::join_all(routes).await.into_iter().flatten().collect())
}

async fn clickhouse(profile: &PerformanceProfile, ctx: &Context) -> Read<ClickHouseObserved> {
    let Some(spec) = &profile.spec.clickhouse else { return Err(Unread::NotObserved("no clickhouse section")) };
    let credentials = clickhouse_credentials(profile, ctx, spec).await?;
    let live = perf_clickhouse::observe_live(spec, credentials.clone()).await.map_err(Unread::ClickHouse)?;
    Ok(ClickHouseObserved { credentials, live })
}

/// ClickHouse's user and password from the profile's Secret, if it names one.
pub async fn clickhouse_credentials(
    profile: &PerformanceProfile,
    ctx: &Context,
    spec: &perf_operator_api::ClickHouseSpec,
) -> Read<Option<perf_clickhouse::Credentials>> {
    let Some(r) = &spec.credentials_secret_ref else { return Ok(None) };
    Ok(Some(perf_clickhouse::Credentials {
        user: secret_key(profile, ctx, &r.name, &r.user_key).await?,
        password: secret_key(profile, ctx, &r.name, &r.password_key).await?,
    }))
}

async fn canary(profile: &PerformanceProfile, ctx: &Context) -> Read<perf_canary::Observation> {
    let Some(spec) = &profile.spec.canary else { return Err(Unread::NotObserved("no canary section")) };
    let (url, access) = (&spec.analysis.prometheus, spec.analysis.prometheus_access.as_ref());
    let prometheus = super::prometheus_access::client(profile, ctx, url, access, "spec.canary.analysis").await?;
    perf_canary::observe(&ctx.client, profile, prometheus.as_ref(), jiff::Timestamp::now())
        .await
        .map_err(Unread::Canary)
}

/// A new Redis password: 32 random bytes, hex.
fn new_password() -> Read<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(Unread::Randomness)?;
    Ok(hex::encode(bytes))
}
