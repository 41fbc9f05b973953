//! Per-profile series, labelled `namespace` and `profile`: what the last status write of each profile says about
//! its canary, cache, pools and policies, rendered at scrape time from one snapshot per profile. A snapshot is
//! replaced on every status write and dropped with its profile (clean-up, a reconcile that finds it gone, or the
//! controller's cache no longer holding it), so a deleted profile's series disappear with it.
//!
//! The labels are per object, which the rest of the operator's metrics avoid: here they are bounded by the profiles
//! that exist (as kube-state-metrics' are), and every other label comes from a fixed set (phase, bound, rule, world,
//! source) or from the profile's own spec (`metric`: the built-in checks and at most 32 custom ones; `pool`).

use perf_operator_api::{CanaryPhase, PerformanceProfile, PerformanceProfileStatus, PublishedFrom};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, Opts};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// `(namespace, name)` of a profile.
pub type Key = (String, String);

/// Every canary phase, in the order a run goes through them: `perf_operator_canary_phase` has one series each.
const PHASES: [CanaryPhase; 9] = [
    CanaryPhase::Idle,
    CanaryPhase::Initializing,
    CanaryPhase::Waiting,
    CanaryPhase::WaitingForPods,
    CanaryPhase::Progressing,
    CanaryPhase::Promoting,
    CanaryPhase::Succeeded,
    CanaryPhase::RolledBack,
    CanaryPhase::Failed,
];

/// Values of `status.phase`.
const PROFILE_PHASES: [&str; 4] = ["Ready", "Progressing", "Degraded", "Suspended"];

/// Canary event reasons that end a run without promoting it: a failed analysis, an abort, the progress deadline.
pub const ROLLBACK_REASONS: [&str; 3] = ["RolledBack", "Aborted", "DeadlineExceeded"];

/// What one profile's series show, taken from its spec and the status last written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `status.phase`: Ready, Progressing, Degraded or Suspended.
    pub phase: Option<&'static str>,
    pub canary: Option<Canary>,
    pub cache: Option<Cache>,
    /// `(pool, min, max, rule)`.
    pub pools: Vec<(String, u32, u32, String)>,
    /// `(world, where the published values came from)`.
    pub policies: Vec<(&'static str, &'static str)>,
    /// `(world, largest difference in percent)` of each candidate that decided.
    pub candidates: Vec<(&'static str, u64)>,
    /// Per route: the limit decided (published, requests/s), what a gateway enforces (requests/s, absent in
    /// contract mode) and the rejections last observed (requests/s).
    pub rate_limits: Vec<RouteLimits>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteLimits {
    pub route: String,
    pub decided: f64,
    pub enforced: Option<f64>,
    pub rejected: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Canary {
    pub phase: CanaryPhase,
    /// One-based stage of a run in progress; 0 without one.
    pub stage: u32,
    pub stages: u32,
    pub weight: u32,
    pub achieved_weight: Option<u32>,
    /// `(check, value)` of the latest analysis, in the threshold's unit (ms, %, requests or the metric's own).
    pub values: Vec<(String, f64)>,
    /// `(check, bound, value)`: the bounds each check is judged against, from the spec (and the SLO).
    pub thresholds: Vec<(String, &'static str, f64)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cache {
    /// Hits over lookups between the last two reconciles, in [0, 1]; absent without lookups.
    pub hit_ratio: Option<f64>,
    pub used_memory_bytes: u64,
    pub max_memory_bytes: u64,
    pub evicted_keys: u64,
    pub connected_clients: u64,
}

impl Snapshot {
    /// The snapshot of a profile about to have `status` written. Pure.
    pub fn of(profile: &PerformanceProfile, status: &PerformanceProfileStatus) -> Self {
        let canary = profile.spec.canary.as_ref().map(|spec| {
            let s = status.canary.clone().unwrap_or_default();
            let active =
                matches!(s.phase, CanaryPhase::WaitingForPods | CanaryPhase::Progressing | CanaryPhase::Promoting);
            let ctx = perf_canary::QueryContext {
                namespace: kube::ResourceExt::namespace(profile).unwrap_or_default(),
                target: profile.spec.target_ref.name.clone(),
            };
            let thresholds = perf_canary::analysis::checks(spec, &profile.spec.slo, &ctx)
                .into_iter()
                .flat_map(|c| [(c.name.clone(), "min", c.min), (c.name, "max", c.max)])
                .filter_map(|(name, bound, v)| Some((name, bound, v?)))
                .collect();
            let latest = s.analyses.first();
            let values = latest.into_iter().flat_map(|a| &a.checks).filter_map(|c| Some((c.name.clone(), c.value?)));
            Canary {
                phase: s.phase,
                stage: if active { s.stage_index.map_or(0, |i| i + 1) } else { 0 },
                stages: u32::try_from(spec.stages.len()).unwrap_or(u32::MAX),
                weight: s.weight,
                achieved_weight: s.achieved_weight,
                values: values.collect(),
                thresholds,
            }
        });
        let cache = status.cache.as_ref().and_then(|c| c.server.as_ref()).map(|s| Cache {
            hit_ratio: s.hit_ratio_percent.map(|p| p / 100.0),
            used_memory_bytes: s.used_memory_bytes,
            max_memory_bytes: s.max_memory_bytes,
            evicted_keys: s.evicted_keys,
            connected_clients: s.connected_clients,
        });
        let pools = status.pools.iter().flat_map(|p| &p.sizes);
        let pools = pools.map(|(pool, s)| (pool.clone(), s.min, s.max, s.reason.clone())).collect();
        let policies = status.policies.as_ref();
        let cache_policy = policies.and_then(|p| p.cache.as_ref()).map(|c| ("cache-policy", c.evaluation.published));
        let rate_policy =
            policies.and_then(|p| p.rate_limit.as_ref()).map(|r| ("rate-limit-policy", r.evaluation.published));
        let cache_candidate = policies.and_then(|p| Some(&p.cache.as_ref()?.candidate.as_ref()?.evaluation));
        let rate_candidate = policies.and_then(|p| Some(&p.rate_limit.as_ref()?.candidate.as_ref()?.evaluation));
        let candidates = [("cache-policy", cache_candidate), ("rate-limit-policy", rate_candidate)];
        let candidates = candidates.into_iter().filter_map(|(w, c)| Some((w, c?.largest_difference_percent?)));
        let policies = cache_policy.into_iter().chain(rate_policy).map(|(w, from)| (w, source(from))).collect();
        let phase = PROFILE_PHASES.into_iter().find(|p| status.phase.as_deref() == Some(*p));
        let rate_limits = rate_limits(profile, status);
        Snapshot { phase, canary, cache, pools, policies, candidates: candidates.collect(), rate_limits }
    }
}

/// Each route's decided, enforced and rejected rates, in spec order.
fn rate_limits(profile: &PerformanceProfile, status: &PerformanceProfileStatus) -> Vec<RouteLimits> {
    let Some(spec) = &profile.spec.rate_limit else { return Vec::new() };
    let policy = status.policies.as_ref().and_then(|p| p.rate_limit.as_ref());
    let enforced = status.rate_limit.as_ref().map(|r| &r.enforced);
    spec.routes
        .iter()
        .map(|r| RouteLimits {
            route: r.route.clone(),
            decided: f64::from(
                policy.and_then(|p| p.routes.get(&r.route)).map_or(r.requests_per_second, |l| l.requests_per_second),
            ),
            enforced: enforced.and_then(|e| e.get(&r.route)).map(|l| l.requests as f64 / l.window.seconds() as f64),
            rejected: policy.and_then(|p| p.observed.get(&r.route)).map(|o| o.rejected_per_second),
        })
        .collect()
}

fn source(from: PublishedFrom) -> &'static str {
    match from {
        PublishedFrom::Policy => "Policy",
        PublishedFrom::LastGood => "LastGood",
        PublishedFrom::Spec => "Spec",
        PublishedFrom::Closed => "Closed",
    }
}

fn phase_name(phase: CanaryPhase) -> &'static str {
    match phase {
        CanaryPhase::Idle => "Idle",
        CanaryPhase::Initializing => "Initializing",
        CanaryPhase::Waiting => "Waiting",
        CanaryPhase::WaitingForPods => "WaitingForPods",
        CanaryPhase::Progressing => "Progressing",
        CanaryPhase::Promoting => "Promoting",
        CanaryPhase::Succeeded => "Succeeded",
        CanaryPhase::RolledBack => "RolledBack",
        CanaryPhase::Failed => "Failed",
    }
}

#[derive(Clone, Default)]
struct Entry {
    snapshot: Option<Snapshot>,
    /// Runs ended without promotion, by event reason, since this process started.
    rollbacks: BTreeMap<&'static str, u64>,
}

/// Whether a profile still exists, as far as the controller's cache knows.
type Live = Box<dyn Fn(&Key) -> bool + Send + Sync>;

/// The per-profile snapshots; registered in the operator's registry as a [`Collector`].
#[derive(Clone, Default)]
pub struct ProfileMetrics {
    entries: Arc<Mutex<BTreeMap<Key, Entry>>>,
    live: Arc<Mutex<Option<Live>>>,
    descs: Arc<Vec<Desc>>,
    /// Off (`--profile-metrics=false`): no series per profile, for installs whose Prometheus cannot take about
    /// 30 series for each of thousands of profiles; the operator's own series stay.
    off: Arc<std::sync::atomic::AtomicBool>,
}

/// The key of a profile.
pub fn key(profile: &PerformanceProfile) -> Key {
    (kube::ResourceExt::namespace(profile).unwrap_or_else(|| "default".into()), kube::ResourceExt::name_any(profile))
}

impl ProfileMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let families = Families::new()?;
        let descs = families.collectors().iter().flat_map(|c| c.desc()).cloned().collect();
        Ok(Self { descs: Arc::new(descs), ..Self::default() })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records no series per profile from now on.
    pub fn turn_off(&self) {
        self.off.store(true, std::sync::atomic::Ordering::Relaxed);
        self.entries().clear();
    }

    fn is_off(&self) -> bool {
        self.off.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the profile's snapshot with what `status` says (called as the status is written).
    pub fn set(&self, profile: &PerformanceProfile, status: &PerformanceProfileStatus) {
        if self.is_off() {
            return;
        }
        let snapshot = Snapshot::of(profile, status);
        self.entries().entry(key(profile)).or_default().snapshot = Some(snapshot);
    }

    /// Counts a canary event: a run ending without promotion is a rollback.
    pub fn canary_event(&self, profile: &PerformanceProfile, reason: &str) {
        if self.is_off() {
            return;
        }
        if let Some(reason) = ROLLBACK_REASONS.iter().find(|r| **r == reason) {
            *self.entries().entry(key(profile)).or_default().rollbacks.entry(*reason).or_default() += 1;
        }
    }

    /// Drops every series of the profile.
    pub fn remove(&self, profile: &PerformanceProfile) {
        self.remove_key(&key(profile));
    }

    pub fn remove_key(&self, key: &Key) {
        self.entries().remove(key);
    }

    /// Drops, at each scrape, the profiles `live` says are gone: a profile deleted without a finalizer gets no
    /// reconcile after its deletion.
    pub fn follow(&self, live: impl Fn(&Key) -> bool + Send + Sync + 'static) {
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(live));
    }

    /// The profiles with series.
    pub fn keys(&self) -> Vec<Key> {
        self.entries().keys().cloned().collect()
    }

    fn render(&self) -> prometheus::Result<Families> {
        let f = Families::new()?;
        // A copy taken under the lock and rendered outside it: a scrape of thousands of profiles never holds up
        // the reconciles that record their status.
        let entries: Vec<(Key, Entry)> = {
            let mut entries = self.entries();
            if let Some(live) = self.live.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                entries.retain(|k, _| live(k));
            }
            entries.iter().map(|(k, e)| (k.clone(), e.clone())).collect()
        };
        for ((namespace, profile), entry) in &entries {
            let id = [namespace.as_str(), profile.as_str()];
            // From 0 for a profile with a canary, so `increase()` counts its first rollback.
            let canary = entry.snapshot.as_ref().is_some_and(|s| s.canary.is_some());
            for reason in ROLLBACK_REASONS {
                let n = entry.rollbacks.get(reason).copied();
                if canary || n.is_some() {
                    f.rollbacks.with_label_values(&[id[0], id[1], reason]).inc_by(n.unwrap_or(0));
                }
            }
            if let Some(s) = &entry.snapshot {
                f.fill(id, s);
            }
        }
        Ok(f)
    }
}

/// The families, built afresh at each scrape from the snapshots.
struct Families {
    profile_phase: GaugeVec,
    phase: GaugeVec,
    stage: GaugeVec,
    stages: GaugeVec,
    weight: GaugeVec,
    achieved: GaugeVec,
    value: GaugeVec,
    threshold: GaugeVec,
    rollbacks: IntCounterVec,
    hit_ratio: GaugeVec,
    used: GaugeVec,
    max: GaugeVec,
    evicted: GaugeVec,
    clients: GaugeVec,
    pool: GaugeVec,
    decided: GaugeVec,
    enforced: GaugeVec,
    rejected: GaugeVec,
    policy: GaugeVec,
    candidate: GaugeVec,
}

const ID: [&str; 2] = ["namespace", "profile"];

fn gauge(name: &str, help: &str, extra: &[&str]) -> prometheus::Result<GaugeVec> {
    let labels: Vec<&str> = ID.iter().chain(extra).copied().collect();
    GaugeVec::new(Opts::new(name, help), &labels)
}

impl Families {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            profile_phase: gauge(
                "profile_phase",
                "Phase of the profile (status.phase): 1 for the current one",
                &["phase"],
            )?,
            phase: gauge("canary_phase", "Canary phase of the profile: 1 for the current one", &["phase"])?,
            stage: gauge("canary_stage", "Stage of the canary run in progress, from 1; 0 without a run", &[])?,
            stages: gauge("canary_stages", "Stages of the profile's canary (spec.canary.stages)", &[])?,
            weight: gauge("canary_weight_percent", "Canary traffic weight the current stage asks for", &[])?,
            achieved: gauge("canary_achieved_weight_percent", "Canary traffic weight achieved", &[])?,
            value: gauge(
                "canary_analysis_value",
                "Value of each check in the latest canary analysis, in its threshold's unit (ms, %, requests)",
                &["metric"],
            )?,
            threshold: gauge(
                "canary_analysis_threshold",
                "Bounds of each canary check (min inclusive; max exclusive for the built-in gates)",
                &["metric", "bound"],
            )?,
            rollbacks: IntCounterVec::new(
                Opts::new("canary_rollbacks_total", "Canary runs ended without promotion, by reason"),
                &["namespace", "profile", "reason"],
            )?,
            hit_ratio: gauge("cache_hit_ratio", "Redis hits over lookups between the last two reconciles", &[])?,
            used: gauge("cache_used_memory_bytes", "Redis used_memory", &[])?,
            max: gauge("cache_max_memory_bytes", "Redis maxmemory (0: no limit)", &[])?,
            evicted: gauge("cache_evicted_keys", "Keys Redis evicted between the last two reconciles", &[])?,
            clients: gauge("cache_connected_clients", "Redis connected_clients", &[])?,
            pool: gauge(
                "pool_size",
                "Published connection pool size per app pod, by pool, bound and the rule that set max",
                &["pool", "bound", "rule"],
            )?,
            decided: gauge(
                "rate_limit_decided_requests_per_second",
                "Rate limit of each route as decided and published in the app contract (a policy's, else the spec's)",
                &["route"],
            )?,
            enforced: gauge(
                "rate_limit_enforced_requests_per_second",
                "Rate limit of each route a gateway enforces (requests per window over its seconds); absent in contract mode",
                &["route"],
            )?,
            rejected: gauge(
                "rate_limit_rejected_per_second",
                "Requests per second the enforcer rejected on each route, as the rate-limit policy last read them",
                &["route"],
            )?,
            policy: gauge(
                "policy_published",
                "Where a policy's published values come from (1 for the current source): Policy, LastGood, Spec, Closed",
                &["world", "source"],
            )?,
            candidate: gauge(
                "policy_candidate_difference_percent",
                "Largest difference of a policy candidate's decision from the active policy's, in percent, by world",
                &["world"],
            )?,
        })
    }

    fn collectors(&self) -> [&dyn Collector; 20] {
        [
            &self.profile_phase,
            &self.phase,
            &self.stage,
            &self.stages,
            &self.weight,
            &self.achieved,
            &self.value,
            &self.threshold,
            &self.rollbacks,
            &self.hit_ratio,
            &self.used,
            &self.max,
            &self.evicted,
            &self.clients,
            &self.pool,
            &self.decided,
            &self.enforced,
            &self.rejected,
            &self.policy,
            &self.candidate,
        ]
    }

    fn fill(&self, [ns, name]: [&str; 2], s: &Snapshot) {
        let set = |g: &GaugeVec, extra: &[&str], v: f64| {
            let labels: Vec<&str> = [ns, name].into_iter().chain(extra.iter().copied()).collect();
            g.with_label_values(&labels).set(v);
        };
        if let Some(current) = s.phase {
            for p in PROFILE_PHASES {
                set(&self.profile_phase, &[p], if p == current { 1.0 } else { 0.0 });
            }
        }
        if let Some(c) = &s.canary {
            for p in PHASES {
                set(&self.phase, &[phase_name(p)], if p == c.phase { 1.0 } else { 0.0 });
            }
            set(&self.stage, &[], f64::from(c.stage));
            set(&self.stages, &[], f64::from(c.stages));
            set(&self.weight, &[], f64::from(c.weight));
            if let Some(w) = c.achieved_weight {
                set(&self.achieved, &[], f64::from(w));
            }
            for (metric, v) in &c.values {
                set(&self.value, &[metric.as_str()], *v);
            }
            for (metric, bound, v) in &c.thresholds {
                set(&self.threshold, &[metric.as_str(), *bound], *v);
            }
        }
        if let Some(c) = &s.cache {
            if let Some(r) = c.hit_ratio {
                set(&self.hit_ratio, &[], r);
            }
            set(&self.used, &[], c.used_memory_bytes as f64);
            set(&self.max, &[], c.max_memory_bytes as f64);
            set(&self.evicted, &[], c.evicted_keys as f64);
            set(&self.clients, &[], c.connected_clients as f64);
        }
        for (pool, min, max, rule) in &s.pools {
            set(&self.pool, &[pool.as_str(), "min", rule.as_str()], f64::from(*min));
            set(&self.pool, &[pool.as_str(), "max", rule.as_str()], f64::from(*max));
        }
        for r in &s.rate_limits {
            set(&self.decided, &[r.route.as_str()], r.decided);
            if let Some(v) = r.enforced {
                set(&self.enforced, &[r.route.as_str()], v);
            }
            if let Some(v) = r.rejected {
                set(&self.rejected, &[r.route.as_str()], v);
            }
        }
        for (world, current) in &s.policies {
            for from in ["Policy", "LastGood", "Spec", "Closed"] {
                set(&self.policy, &[*world, from], if from == *current { 1.0 } else { 0.0 });
            }
        }
        for (world, largest) in &s.candidates {
            set(&self.candidate, &[*world], *largest as f64);
        }
    }
}

impl Collector for ProfileMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        match self.render() {
            Ok(f) => f.collectors().iter().flat_map(|c| c.collect()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "per-profile metrics not rendered");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
#[path = "profiles_tests.rs"]
mod tests;
