//! The decision of one reconcile, from the profile and what was observed: the objects to apply, the app contract,
//! policy decisions with their fallbacks, ClickHouse statements, the canary step and a report per component.
//! Pure: the controller's reconcile and `plan` both call [`decide`], so they cannot disagree.

mod fallback;
pub mod inputs;
pub mod memory;
mod observed;
pub mod policy;
pub mod pools;
pub mod redis_server;
pub mod shadow;

pub use observed::{ClickHouseObserved, Observed, PolicyUnavailable, ProvisionedRedis, Read, SecretProblem, Unread};

use crate::components::redis_auth::{self, Credentials};
use crate::components::{OwnedObjects, app_config, cache, rate_limit, slo_rules};
use crate::conditions::{self, Report};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use perf_operator_api::duration::parse_duration;
use perf_operator_api::{CacheStatus, ClickHouseSpec, PerformanceProfile, PerformanceProfileStatus, condition};
use std::time::Duration;

/// What one reconcile will do.
pub struct Decision {
    /// Objects owned by the profile (the provisioned Redis), applied before the contract.
    pub objects: OwnedObjects,
    /// The app contract ConfigMap and its checksum.
    pub contract: ConfigMap,
    pub checksum: String,
    /// Status of every component as decided (ClickHouse and the canary are completed by their apply).
    pub status: PerformanceProfileStatus,
    /// One per component, in [`condition::COMPONENTS`] order; then `PolicyCandidateAgrees` when a candidate is
    /// declared (advisory).
    pub reports: Vec<Report>,
    pub clickhouse: Option<ClickHouseRound>,
    pub canary: Option<perf_canary::Step>,
    /// Settings to hold live on the provisioned Redis (`CONFIG SET`): the spec's, or the cache policy's advice.
    pub redis_live: Option<RedisLive>,
    /// Policy evaluations of this round, for the metrics: world and failure category.
    pub policy_runs: Vec<policy::Run>,
    /// The pools as planned, with the servers' limits and what was said about them (`plan` prints it).
    pub pools: Option<crate::components::pools::PoolsPlan>,
    /// The SLO's PrometheusRule: to apply, to delete, or refused.
    pub slo_rule: slo_rules::SloRule,
    /// Where the rate limits are enforced: what to apply and delete for a gateway.
    pub enforcement: Option<crate::enforcement::round::Round>,
}

/// A provisioned Redis to configure live.
pub struct RedisLive {
    /// Passwords to connect with, in order: the server may not know this round's new one yet.
    pub candidates: Vec<String>,
    /// The passwords the default user must accept (the current one first).
    pub accepted: Vec<String>,
    /// The exporter user's password when the exporter sidecar runs (None: no such user).
    pub exporter: Option<String>,
    /// `CONFIG SET` these, when decided.
    pub settings: Option<memory::LiveSettings>,
}

/// This round's passwords, then what the Secret held before it (a Redis restarted before its mounted `auth.conf`
/// caught up knows only those).
fn connect_candidates(credentials: &Credentials, observed: &Observed) -> Vec<String> {
    let before = match observed.provisioned_redis.as_ref() {
        Some(Ok(p)) => [p.password.clone(), p.previous.clone()],
        _ => [None, None],
    };
    let mut out: Vec<String> = Vec::new();
    for p in credentials.accepted().into_iter().map(String::from).chain(before.into_iter().flatten()) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// ClickHouse statements to send, with the credentials they were planned with.
pub struct ClickHouseRound {
    pub spec: ClickHouseSpec,
    pub credentials: Option<perf_clickhouse::Credentials>,
    pub plan: perf_clickhouse::RoundPlan,
}

impl Decision {
    /// When to look again: the canary's own cadence, bounded by the resync.
    pub fn canary_requeue(&self) -> Option<Duration> {
        self.canary.as_ref().map(|s| s.requeue_after)
    }
}

/// Decides everything for a valid profile. `now` is the canary's clock.
pub fn decide(profile: &PerformanceProfile, observed: &Observed, now: Timestamp) -> Decision {
    let previous = profile.status.as_ref();
    let mut status = conditions::carried(previous, &profile.spec, profile.meta().generation);
    let mut objects = OwnedObjects::default();

    let (mut cache_plan, cache_report, credentials) = decide_cache(profile, observed, now, &mut objects);
    let mut rate_limits = profile.spec.rate_limit.as_ref().map(rate_limit::plan);
    let policies = policy::decide(profile, observed, now, cache_plan.as_mut(), rate_limits.as_mut());
    // The spec's live settings, or the cache policy's advice when it decided this round (after a failed
    // evaluation the live settings stay as they are).
    let from_spec = || {
        let cache = profile.spec.cache.as_ref()?;
        let provision = cache.redis.provision.as_ref().filter(|_| cache.policy.is_none())?;
        Some(memory::live_settings(provision, None))
    };
    // Every round for a provisioned Redis with known credentials: its passwords are held live (a rotation), and
    // its settings when the spec or a policy decided them.
    let redis_live = credentials.map(|credentials| RedisLive {
        candidates: connect_candidates(&credentials, observed),
        accepted: credentials.accepted().iter().map(|p| p.to_string()).collect(),
        // No exporter user without its own password (never an empty one).
        exporter: (exporter_runs(profile) && !credentials.exporter.is_empty()).then(|| credentials.exporter.clone()),
        settings: policies.redis_live.clone().or_else(from_spec),
    });
    if let Some(plan) = &cache_plan {
        status.cache = Some(CacheStatus {
            address: plan.address.clone(),
            password_secret: plan.password_secret.as_ref().map(|(n, _)| n.clone()),
            ttl_seconds: plan.ttl_seconds.clone(),
            live_settings: None,
            server: match &observed.redis {
                Some(Ok(stats)) => {
                    let previous = previous.and_then(|p| p.cache.as_ref()).and_then(|c| c.server.as_ref());
                    Some(redis_server::status(stats, previous))
                }
                _ => None,
            },
        });
    }
    let (pools_plan, pools_report) = pools::decide(profile, observed, &mut status);
    let contract_data = app_config::data(&app_config::Contract {
        slo: Some(&profile.spec.slo),
        cache: cache_plan.as_ref(),
        pools: pools_plan.as_ref(),
        rate_limits: rate_limits.as_ref(),
    });
    let checksum = app_config::checksum(&contract_data);
    let contract = app_config::config_map(profile, contract_data);

    let (clickhouse, clickhouse_report) = decide_clickhouse(profile, observed, &mut status);
    let (canary, canary_report) = decide_canary(profile, observed, now);
    if let Some(step) = &canary {
        status.canary = Some(step.status.clone());
    }
    let policy::Decided {
        status: policies_status, report: policies_report, runs: policy_runs, candidate_report, ..
    } = policies;
    if policies_status.is_some() {
        status.policies = policies_status;
    }
    let slo_rule = slo_rules::decide(profile);
    let alerts_report = alerts_report(&slo_rule);
    let enforcement = crate::enforcement::round::decide(profile, rate_limits.as_ref().map(|p| p.routes.as_slice()));
    let rate_limit_report = crate::enforcement::report::decided(enforcement.as_ref());
    if let Some(round) = &enforcement {
        let before = previous.and_then(|p| p.rate_limit.as_ref());
        let (object, written_at) = (before.and_then(|r| r.object.clone()), before.and_then(|r| r.written_at.clone()));
        status.rate_limit = Some(round.status(object, round.refused.clone(), written_at));
    }
    Decision {
        objects,
        contract,
        checksum,
        status,
        reports: vec![
            cache_report,
            pools_report,
            clickhouse_report,
            canary_report,
            policies_report,
            alerts_report,
            rate_limit_report,
        ]
        .into_iter()
        .chain(candidate_report)
        .collect(),
        clickhouse,
        canary,
        redis_live,
        policy_runs,
        pools: pools_plan,
        slo_rule,
        enforcement,
    }
}

/// `AlertsReady` as decided; the apply's outcome completes it.
pub fn alerts_report(rule: &slo_rules::SloRule) -> Report {
    match rule {
        slo_rules::SloRule::Disabled { .. } => {
            Report::ok(condition::ALERTS_READY, "Disabled", "spec.slo.alerts.enabled is false")
        }
        slo_rules::SloRule::Refused { reason, message, .. } => {
            Report::failed(condition::ALERTS_READY, reason, message.clone())
        }
        slo_rules::SloRule::Desired(plan) => Report::ok(
            condition::ALERTS_READY,
            "Planned",
            format!("PrometheusRule {} with {} alerts", plan.name, plan.alerts.len()),
        ),
    }
}

/// The cache plan, its readiness, and a provisioned Redis's credentials. Its objects are built only when its
/// password is known (read from its Secret, or drawn for a new one or a rotation the profile asks for): never with
/// a password that would replace the live one unasked.
fn decide_cache(
    profile: &PerformanceProfile,
    observed: &Observed,
    now: Timestamp,
    objects: &mut OwnedObjects,
) -> (Option<cache::CachePlan>, Report, Option<Credentials>) {
    let Some(spec) = &profile.spec.cache else { return (None, Report::not_configured(condition::CACHE_READY), None) };
    // The plan without any object: what the contract publishes whatever the Redis objects' fate this round.
    let plan_only = || cache::build(profile, spec, &Credentials::default(), &mut OwnedObjects::default());
    if spec.redis.external.is_some() {
        let plan = plan_only();
        let report = match &observed.redis {
            Some(Ok(stats)) if redis_server::over_memory(stats) => Report::failed(
                condition::CACHE_READY,
                "OverMemory",
                format!(
                    "{} is full ({} of {} bytes, noeviction): writes are refused",
                    plan.address, stats.used_memory_bytes, stats.max_memory_bytes
                ),
            ),
            Some(Ok(stats)) if stats.config_refused.is_some() => Report::ok(
                condition::CACHE_READY,
                "ExternalReachable",
                format!("using {} (CONFIG refused: maxclients could not be verified)", plan.address),
            ),
            Some(Ok(stats)) => Report::ok(
                condition::CACHE_READY,
                "ExternalReachable",
                format!("using {} (maxclients {})", plan.address, stats.max_clients),
            ),
            Some(Err(e)) => Report::failed(condition::CACHE_READY, redis_reason(e), e.chain()),
            None => Report::failed(condition::CACHE_READY, "NotObserved", "the external Redis was not read"),
        };
        return (Some(plan), report, None);
    }
    let provisioned = observed.provisioned_redis.as_ref();
    let credentials = match credentials(profile, observed, now) {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            let report = Report::failed(condition::CACHE_READY, "NotObserved", "Redis Secret not read");
            return (Some(plan_only()), report, None);
        }
        Err(e) => {
            let reason = if matches!(e, Unread::Randomness(_)) { "NoRandomness" } else { "ObserveFailed" };
            return (Some(plan_only()), Report::failed(condition::CACHE_READY, reason, e.chain()), None);
        }
    };
    let plan = cache::build(profile, spec, &credentials, objects);
    // Only a workload of the other kind that exists is deleted (no call for one that does not).
    let live = provisioned.and_then(|p| p.as_ref().ok());
    objects.retired.retain(|r| live.is_some_and(|p| p.live.contains(r)));
    let report = match provisioned {
        Some(Ok(ProvisionedRedis { available: true, .. })) => Report::ok(
            condition::CACHE_READY,
            "RedisAvailable",
            format!("Redis serving at {}{}", plan.address, rotation_note(&credentials, profile)),
        ),
        _ => Report::progressing(
            condition::CACHE_READY,
            "WaitingForRedis",
            format!(
                "Redis {} has no available replica yet",
                if cache::is_persistent(spec) { "StatefulSet" } else { "Deployment" }
            ),
        ),
    };
    (Some(plan), report, Some(credentials))
}

/// The provisioned Redis's credentials for this round (see [`redis_auth::decide`]); None before its Secret was read.
fn credentials<'a>(
    profile: &PerformanceProfile,
    observed: &'a Observed,
    now: Timestamp,
) -> Result<Option<Credentials>, &'a Unread> {
    let fresh = match &observed.new_password {
        Some(Ok(fresh)) => Some(fresh.as_str()),
        Some(Err(e)) => return Err(e),
        None => None,
    };
    let exporter = match &observed.new_exporter_password {
        Some(Ok(fresh)) => fresh.clone(),
        Some(Err(e)) => return Err(e),
        None => String::new(),
    };
    let p = match observed.provisioned_redis.as_ref() {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(e),
        None => return Ok(None),
    };
    let Some(current) = &p.password else {
        let first = |fresh: &str| Credentials { current: fresh.to_string(), exporter, ..Credentials::default() };
        return Ok(fresh.map(first));
    };
    let live = Credentials {
        current: current.clone(),
        previous: p.previous.clone(),
        rotation: p.rotation.clone(),
        rotated_at: p.rotated_at.clone(),
        // Kept as the Secret holds it; drawn once when it holds none.
        exporter: p.exporter.clone().filter(|e| !e.is_empty()).unwrap_or(exporter),
    };
    let requested = profile.meta().annotations.as_ref().and_then(|a| a.get(redis_auth::ROTATE_ANNOTATION));
    let requested = requested.map(String::as_str);
    Ok(Some(redis_auth::decide(&live, requested, fresh, rotation_grace(profile), now)))
}

fn rotation_grace(profile: &PerformanceProfile) -> std::time::Duration {
    let grace = profile.spec.cache.as_ref().and_then(|c| c.redis.provision.as_ref()).map(|p| p.rotation_grace.as_str());
    grace.and_then(|g| parse_duration(g).ok()).unwrap_or(std::time::Duration::from_secs(600))
}

/// `; the previous password works until T` during a rotation's grace.
fn rotation_note(credentials: &Credentials, profile: &PerformanceProfile) -> String {
    match credentials.previous_until(rotation_grace(profile)) {
        Some(until) => format!("; password rotated, the previous one works until {until}"),
        None => String::new(),
    }
}

fn exporter_runs(profile: &PerformanceProfile) -> bool {
    profile.spec.cache.as_ref().and_then(|c| c.redis.provision.as_ref()).is_some_and(|p| p.exporter.is_some())
}

/// `CacheReady` reason for a Redis that could not be read.
fn redis_reason(e: &Unread) -> &'static str {
    match e {
        Unread::Secret { .. } => "PasswordUnavailable",
        Unread::Redis(e) => redis_server::reason(e),
        _ => "Unreachable",
    }
}

/// The ClickHouse round to apply, or why there is none.
fn decide_clickhouse(
    profile: &PerformanceProfile,
    observed: &Observed,
    status: &mut PerformanceProfileStatus,
) -> (Option<ClickHouseRound>, Report) {
    let Some(spec) = &profile.spec.clickhouse else {
        return (None, Report::not_configured(condition::CLICKHOUSE_READY));
    };
    let previous = profile.status.as_ref().and_then(|s| s.clickhouse.as_ref());
    match &observed.clickhouse {
        Some(Ok(seen)) => match perf_clickhouse::decide(spec, &seen.live, previous) {
            Ok(plan) => {
                let pending = format!("{} statement(s) to send", plan.statements());
                let round = ClickHouseRound { spec: spec.clone(), credentials: seen.credentials.clone(), plan };
                (Some(round), Report::progressing(condition::CLICKHOUSE_READY, "Applying", pending))
            }
            Err(e) => (None, Report::failed(condition::CLICKHOUSE_READY, "InvalidSpec", crate::error::chain(&e))),
        },
        Some(Err(e)) => {
            // Every declared table says why this round could not look at it; the records are kept.
            if let Unread::ClickHouse(error) = e {
                status.clickhouse = Some(perf_clickhouse::unreachable_status(spec, previous, error));
            }
            let reason = if matches!(e, Unread::Secret { .. }) { "CredentialsUnavailable" } else { "Unreachable" };
            (None, Report::failed(condition::CLICKHOUSE_READY, reason, e.chain()))
        }
        None => (None, Report::failed(condition::CLICKHOUSE_READY, "NotObserved", "ClickHouse was not read")),
    }
}

/// The canary step, or why there is none.
fn decide_canary(
    profile: &PerformanceProfile,
    observed: &Observed,
    now: Timestamp,
) -> (Option<perf_canary::Step>, Report) {
    if profile.spec.canary.is_none() {
        return (None, Report::not_configured(condition::CANARY_READY));
    }
    let step = match &observed.canary {
        Some(Ok(seen)) => perf_canary::decide(profile, seen, now).map_err(|e| crate::error::chain(&e)),
        Some(Err(e)) => Err(e.chain()),
        None => Err("the canary's workloads were not read".to_string()),
    };
    match step {
        Ok(step) => {
            let report = canary_report(&step.condition);
            (Some(step), report)
        }
        Err(message) => (None, Report::failed(condition::CANARY_READY, "Error", message)),
    }
}

/// `CanaryReady` from the machine's condition.
pub fn canary_report(c: &perf_canary::CanaryCondition) -> Report {
    match c.health {
        perf_canary::Health::Ready => Report::ok(condition::CANARY_READY, c.reason, c.message.clone()),
        perf_canary::Health::Failed => Report::failed(condition::CANARY_READY, c.reason, c.message.clone()),
        perf_canary::Health::Progressing => Report::progressing(condition::CANARY_READY, c.reason, c.message.clone()),
    }
}

/// Whether the decision leaves work in progress (requeue sooner).
pub fn progressing(reports: &[Report]) -> bool {
    reports.iter().any(|r| r.progressing)
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod rotation_tests;
