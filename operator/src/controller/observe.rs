//! Observe: every read a decision needs, run concurrently, each under its own deadline, each failure kept as data
//! in [`Observed`] so that one slow or broken source never starves the other components. The servers' connection
//! limits (PostgreSQL, ClickHouse) are read in [`limits`].

use super::Context;
use super::limits;
use super::policy_runtime::Loading;
use super::round::Round;
use crate::components::cache::{self as cache_objects, PASSWORD_KEY};
use crate::components::{Retired, redis_auth};
use crate::decide::{ClickHouseObserved, Observed, ProvisionedRedis, Read, Unread};
use crate::redis_stats::{self, RedisStats};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
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
            canary: defaults.canary + hook_budget(profile),
            postgres: cap(defaults.postgres),
        }
    }
}

/// The longest a round's webhooks take: the chains of different types run side by side, each type's in order.
fn hook_budget(profile: &PerformanceProfile) -> Duration {
    let Some(canary) = &profile.spec.canary else { return Duration::ZERO };
    let hooks = &canary.analysis.webhooks;
    let chain = |kind| perf_operator_api::validation::hook_total_timeout(hooks, kind);
    perf_operator_api::HookType::ALL.into_iter().map(chain).max().unwrap_or_default()
}

/// Runs `read` under `after`; a read that does not finish in time is recorded as a timeout of `what`.
async fn bounded<T>(what: &'static str, after: Duration, read: impl Future<Output = Read<T>>) -> Read<T> {
    tokio::time::timeout(after, read).await.unwrap_or(Err(Unread::Timeout { what, after }))
}

pub(super) fn kube_error(what: String) -> impl FnOnce(kube::Error) -> Unread {
    move |source| Unread::Kube { what, source: Arc::new(source) }
}

/// Reads everything `profile` needs, concurrently.
pub async fn observe(profile: &PerformanceProfile, ctx: &Context) -> Observed {
    let round = Round::new(profile, ctx);
    let round = &round;
    let d = Deadlines::for_profile(profile);
    let spec = &profile.spec;
    let cache = spec.cache.as_ref();
    let provisioned = cache.is_some_and(|c| c.redis.provision.is_some());
    let cache_policy = cache.and_then(|c| c.policy.as_ref());
    let rate_limit_policy = spec.rate_limit.as_ref().and_then(|r| r.policy.as_ref());
    let cache_candidate = cache.and_then(|c| c.candidate.as_ref()).map(|c| &c.policy);
    let rate_limit_candidate = spec.rate_limit.as_ref().and_then(|r| r.candidate.as_ref()).map(|c| &c.policy);
    // Boxed: joined in place, these futures make a stack frame too large for a test thread in debug builds.
    let pools = spec.pools.is_some();
    let (
        (serving, autoscaling),
        provisioned_redis,
        redis,
        ((cache_policy, rate_limit_policy), (cache_candidate, rate_limit_candidate)),
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
        Box::pin(optional(provisioned, bounded("Redis Secret and Deployment", d.kube, provisioned_redis(round)))),
        Box::pin(optional(reads_redis(profile), bounded("Redis", d.redis, redis_stats(round, d.redis)))),
        Box::pin(async {
            let start = std::time::Instant::now();
            let active = tokio::join!(
                optional_ref(cache_policy, |r| load(ctx, profile, Use::active(World::Cache), r, d.policy)),
                optional_ref(rate_limit_policy, |r| load(ctx, profile, Use::active(World::RateLimit), r, d.policy)),
            );
            // Candidates after the active policies, within what is left of the same deadline: a component both
            // name is then compiled once (a second compile in the namespace would be refused as busy meanwhile).
            let left = d.policy.saturating_sub(start.elapsed());
            let candidates = tokio::join!(
                optional_ref(cache_candidate, |r| load(ctx, profile, Use::candidate(World::Cache), r, left)),
                optional_ref(rate_limit_candidate, |r| load(ctx, profile, Use::candidate(World::RateLimit), r, left)),
            );
            (active, candidates)
        }),
        Box::pin(optional(rate_limit_policy.is_some(), bounded("Prometheus traffic", d.traffic, traffic(round)))),
        Box::pin(optional(spec.clickhouse.is_some(), bounded("ClickHouse", d.clickhouse, clickhouse(round)))),
        Box::pin(optional(spec.canary.is_some(), bounded("canary workloads and analysis", d.canary, canary(round)))),
        Box::pin(async {
            tokio::join!(
                optional(
                    crate::decide::pools::reads_postgres(profile),
                    bounded("PostgreSQL limits", d.postgres, limits::postgres_limits(round, d.postgres))
                ),
                optional(
                    crate::decide::pools::reads_clickhouse(profile),
                    bounded("ClickHouse limits", d.clickhouse, limits::clickhouse_limits(round))
                ),
            )
        }),
    );
    // The exporter's own password, while the Secret holds none (drawn apart from the app's, never derived from it).
    let new_exporter_password = match &provisioned_redis {
        Some(Ok(p)) if p.exporter.as_deref().is_none_or(str::is_empty) => Some(new_password()),
        _ => None,
    };
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
        new_exporter_password,
        redis,
        cache_policy,
        rate_limit_policy,
        cache_candidate,
        rate_limit_candidate,
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
    let ns = namespace(profile);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let target = &profile.spec.target_ref.name;
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas).map(|r| r.max(0) as u32);
    if profile.spec.canary.is_some() {
        // The primary is the operator's own, so cached.
        let name = perf_canary::objects::primary_name(target);
        let primary = ctx.caches.get_or_read(&deployments, &ns, &name).await;
        if let Some(primary) = primary.map_err(kube_error(format!("get Deployment {name}")))? {
            return Ok(replicas(&primary));
        }
    }
    let found = deployments.get_opt(target).await.map_err(kube_error(format!("get Deployment {target}")))?;
    Ok(found.as_ref().and_then(replicas))
}

/// `maxReplicas` of the HPA aimed at the target, if there is one: the pods pools must be sized for.
async fn hpa_max(profile: &PerformanceProfile, ctx: &Context) -> Read<Option<u32>> {
    let (ns, target) = (namespace(profile), &profile.spec.target_ref.name);
    let hpa = match ctx.caches.target_hpa(&ns, target) {
        Some(known) => known,
        None => {
            let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
            let list =
                hpas.list(&Default::default()).await.map_err(kube_error("list HorizontalPodAutoscalers".into()))?;
            perf_canary::objects::target_hpa(&list.items, target).cloned()
        }
    };
    Ok(hpa.and_then(|h| h.spec).map(|s| s.max_replicas.max(0) as u32))
}

async fn provisioned_redis(round: &Round<'_>) -> Read<ProvisionedRedis> {
    let (profile, ctx) = (round.profile, round.ctx);
    let ns = namespace(profile);
    let name = cache_objects::redis_name(profile);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    // The Secret is read fresh (a stale one would mint a second password); the workloads come from the cache.
    let (secret, deployment, stateful_set) = tokio::join!(
        round.secret_opt(&name),
        ctx.caches.get_or_read(&deployments, &ns, &name),
        ctx.caches.get_or_read(&stateful_sets, &ns, &name)
    );
    let data = secret?.unwrap_or_default();
    let deployment = deployment.map_err(kube_error(format!("get Deployment {name}")))?;
    let stateful_set = stateful_set.map_err(kube_error(format!("get StatefulSet {name}")))?;
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
    let available = |replicas: Option<i32>| replicas.unwrap_or(0) >= 1;
    let available = if persistent {
        available(stateful_set.and_then(|s| s.status.as_ref().and_then(|s| s.available_replicas)))
    } else {
        available(deployment.and_then(|d| d.status.as_ref().and_then(|s| s.available_replicas)))
    };
    let exporter = text(redis_auth::EXPORTER_KEY);
    Ok(ProvisionedRedis { password, previous, rotation, rotated_at, exporter, available, live })
}

/// `INFO` of the profile's Redis: the external one with its Secret's password, or the provisioned one.
async fn redis_stats(round: &Round<'_>, timeout: Duration) -> Read<RedisStats> {
    let profile = round.profile;
    let Some(cache) = &profile.spec.cache else { return Err(Unread::NotObserved("no cache section")) };
    let (address, password) = match &cache.redis.external {
        Some(external) => {
            let password = match &external.password_secret_ref {
                Some(r) => Some(round.secret_key(&r.name, &r.key).await?),
                None => None,
            };
            (external.address.clone(), password)
        }
        None => {
            let name = cache_objects::redis_name(profile);
            let password = round.secret_key(&name, PASSWORD_KEY).await?;
            let address = cache_objects::operator_address(profile, &round.ctx.scope.cluster_domain);
            (address, Some(password))
        }
    };
    Ok(redis_stats::fetch(&round.ctx.scope.egress, &address, password.as_deref(), timeout).await?)
}

/// Which policy of a profile is loaded: the active one or its candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Active,
    Candidate,
}

/// A policy of a world, in a role.
#[derive(Clone, Copy, Debug)]
struct Use {
    world: World,
    role: Role,
}

impl Use {
    fn active(world: World) -> Self {
        Self { world, role: Role::Active }
    }
    fn candidate(world: World) -> Self {
        Self { world, role: Role::Candidate }
    }
}

/// The name a profile's policy is loaded for: the profile's own, and for a candidate a name no profile can have
/// (`#` is not allowed in object names), so the host gives it instances of its own, never the active policy's.
fn tenant_name(profile: &PerformanceProfile, role: Role) -> String {
    match role {
        Role::Active => profile.name_any(),
        Role::Candidate => format!("{}#candidate", profile.name_any()),
    }
}

/// Loads one policy of the profile. Boxed: the loader's future is large (a fetch, a registry pull), and a round
/// loads up to four side by side, which in place overflow a test thread's stack in debug builds.
fn load<'a>(
    ctx: &'a Context,
    profile: &'a PerformanceProfile,
    used: Use,
    r: &'a PolicyRef,
    after: Duration,
) -> futures::future::BoxFuture<'a, Read<Arc<Policy>>> {
    Box::pin(load_now(ctx, profile, used, r, after))
}

async fn load_now(
    ctx: &Context,
    profile: &PerformanceProfile,
    used: Use,
    r: &PolicyRef,
    after: Duration,
) -> Read<Arc<Policy>> {
    let Use { world, role } = used;
    let policies = profile.status.as_ref().and_then(|s| s.policies.as_ref());
    // A candidate's refusals are not kept in status: a restarted operator compiles it once more.
    let refused = match (world, role) {
        (_, Role::Candidate) => None,
        (World::Cache, _) => policies.and_then(|p| p.cache.as_ref()).and_then(|c| c.evaluation.refused.as_ref()),
        (World::RateLimit, _) => {
            policies.and_then(|p| p.rate_limit.as_ref()).and_then(|r| r.evaluation.refused.as_ref())
        }
    };
    let name = tenant_name(profile, role);
    let field = match (world, role) {
        (World::Cache, Role::Active) => "spec.cache.policy",
        (World::Cache, Role::Candidate) => "spec.cache.candidate",
        (World::RateLimit, Role::Active) => "spec.rateLimit.policy",
        (World::RateLimit, Role::Candidate) => "spec.rateLimit.candidate",
    };
    let loading = Loading { namespace: &namespace(profile), name: &name, world, policy: r, field, refused };
    match tokio::time::timeout(after, ctx.policies.load(&ctx.client, loading)).await {
        Ok(loaded) => loaded.map_err(Unread::from),
        // The load goes on in the background and a later reconcile uses its result; the policy did not time out.
        Err(_) => Err(Unread::from(crate::decide::PolicyUnavailable::Host(perf_policy_host::Error::Busy(format!(
            "the component is still loading after {after:?}; it is used once loaded"
        ))))),
    }
}

/// Per-route traffic from Prometheus (label `route`) over the last minute; a route whose queries fail is absent.
async fn traffic(round: &Round<'_>) -> Read<BTreeMap<String, RouteTraffic>> {
    let profile = round.profile;
    let Some(spec) = &profile.spec.rate_limit else { return Ok(BTreeMap::new()) };
    let Some(url) = &spec.prometheus else { return Ok(BTreeMap::new()) };
    let access = spec.prometheus_access.as_ref();
    let prometheus = super::prometheus_access::client(round, url, access, "spec.rateLimit").await?;
    let ns = namespace(profile);
    // Up to 256 routes of 4 queries each: at most IN_FLIGHT of them asked at a time, in order.
    use futures::StreamExt;
    let backend = crate::enforcement::backend(profile, &round.ctx.scope.rate_limit_defaults);
    let rejected = |route: &str| crate::enforcement::rejections_query(profile, backend.as_ref(), route);
    let asks: Vec<String> =
        spec.routes.iter().flat_map(|r| super::traffic::queries(&ns, &r.route, rejected(&r.route))).collect();
    let answers: Vec<Option<f64>> = futures::stream::iter(asks)
        .map(|q| {
            // Owned: a future borrowing the round would not be Send for every lifetime the controller needs.
            let prometheus = Arc::clone(&prometheus);
            async move { prometheus.query(&q).await.ok().flatten().filter(|v| v.is_finite()) }
        })
        .buffered(super::traffic::IN_FLIGHT)
        .collect()
        .await;
    let per_route = answers.chunks(super::traffic::QUERIES);
    Ok(spec
        .routes
        .iter()
        .zip(per_route)
        .filter_map(|(r, values)| {
            let values: Option<Vec<f64>> = values.iter().copied().collect();
            values.map(|v| (r.route.clone(), super::traffic::from_values(&v)))
        })
        .collect())
}

async fn clickhouse(round: &Round<'_>) -> Read<ClickHouseObserved> {
    let Some(spec) = &round.profile.spec.clickhouse else { return Err(Unread::NotObserved("no clickhouse section")) };
    let credentials = clickhouse_credentials(round, spec).await?;
    let live = perf_clickhouse::observe_live(&round.ctx.clickhouse, spec, credentials.clone())
        .await
        .map_err(Unread::ClickHouse)?;
    Ok(ClickHouseObserved { credentials, live })
}

/// ClickHouse's user and password from the profile's Secret, if it names one.
pub async fn clickhouse_credentials(
    round: &Round<'_>,
    spec: &perf_operator_api::ClickHouseSpec,
) -> Read<Option<perf_clickhouse::Credentials>> {
    let Some(r) = &spec.credentials_secret_ref else { return Ok(None) };
    Ok(Some(perf_clickhouse::Credentials {
        user: round.secret_key(&r.name, &r.user_key).await?,
        password: round.secret_key(&r.name, &r.password_key).await?,
    }))
}

async fn canary(round: &Round<'_>) -> Read<perf_canary::Observation> {
    let (profile, ctx) = (round.profile, round.ctx);
    let Some(spec) = &profile.spec.canary else { return Err(Unread::NotObserved("no canary section")) };
    // Templates are read for a run that may be analysed this round (the exact cadence is decided in `observe`).
    let canary_status = profile.status.as_ref().and_then(|s| s.canary.as_ref());
    let analysing = canary_status.is_some_and(|s| s.phase == perf_operator_api::CanaryPhase::Progressing);
    let (resolved, clients) = super::templates::sources(round, spec, analysing).await?;
    let prometheus: Vec<&dyn perf_canary::MetricsSource> = clients.iter().map(|c| c.as_ref() as _).collect();
    let ns = namespace(profile);
    let hooks = ctx.hooks.tenant(&ns);
    let sources = perf_canary::Sources { resolved: &resolved, prometheus: &prometheus, hooks: Some(&hooks) };
    let hpa = match ctx.caches.target_hpa(&ns, &profile.spec.target_ref.name) {
        Some(known) => perf_canary::TargetHpa::Known(known.map(Box::new)),
        None => perf_canary::TargetHpa::Read,
    };
    perf_canary::observe(&ctx.client, profile, sources, jiff::Timestamp::now(), hpa).await.map_err(Unread::Canary)
}

/// A new Redis password: 32 random bytes, hex.
fn new_password() -> Read<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(Unread::Randomness)?;
    Ok(hex::encode(bytes))
}
