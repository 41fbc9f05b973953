//! Metrics, logs and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).

pub mod profiles;

use crate::Result;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::core::Collector;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Every family's name starts with it.
pub const PREFIX: &str = "perf_operator";

/// Operator metrics. Labels are bounded: `component` is one of a fixed set, `category` an error category.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub canary_analyses: IntCounterVec,
    pub canary_events: IntCounterVec,
    pub policy_evaluations: IntCounterVec,
    pub policy_failures: IntCounterVec,
    /// `perf_operator_policy_candidate_evaluations_total{world, verdict}`: shadow runs beside the active policies.
    pub candidate_evaluations: IntCounterVec,
    /// `perf_operator_policy_evaluation_seconds{world}`: the WASM call of each evaluation.
    pub policy_duration: HistogramVec,
    /// Per-profile series (`namespace`, `profile`) from each profile's last status write.
    pub profiles: profiles::ProfileMetrics,
    /// `perf_operator_leader`: 1 on the replica that holds the lease and reconciles, 0 on a standby.
    pub leader: IntGauge,
    /// `perf_operator_caches_ready`: 1 once the replica's caches have listed (a standby's, before it leads).
    pub caches_ready: IntGauge,
    /// Everything in `registry`, for the metrics reference (a registry gathers only families with series).
    collectors: Vec<Box<dyn Collector>>,
}

/// Registers a collector and keeps a copy of it.
struct Registered<'a> {
    registry: &'a Registry,
    collectors: Vec<Box<dyn Collector>>,
}

impl Registered<'_> {
    fn add<C: Collector + Clone + 'static>(&mut self, c: &C) -> Result<()> {
        self.registry.register(Box::new(c.clone()))?;
        self.collectors.push(Box::new(c.clone()));
        Ok(())
    }
}

/// A metric family as the reference lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// With the `perf_operator_` prefix.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub help: String,
}

impl Metrics {
    /// Registers the operator's metrics in a fresh registry; components add theirs to `registry`.
    pub fn new() -> Result<Self> {
        let registry = Registry::new_custom(Some(PREFIX.into()), None)?;
        let reconciles = IntCounterVec::new(
            Opts::new(
                "reconciles_total",
                "Reconciles: component=profile for each reconcile of a profile; cache, pools, clickhouse, canary, \
                 policies, alerts for each reconcile of a profile that configures that component",
            ),
            &["component"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Reconcile errors: component=profile, reconciles that failed by error category (kube, invalid_spec, \
                 finalizer, ... and the components' categories); other components, category=degraded, one per \
                 reconcile in which that component's condition was failed",
            ),
            &["component", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Duration of a reconcile (component=profile), 5 ms to 10 s",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["component"],
        )?;
        let canary_analyses = IntCounterVec::new(
            Opts::new("canary_analyses_total", "Canary stage analyses by verdict: pass, fail, no_data"),
            &["verdict"],
        )?;
        let canary_events = IntCounterVec::new(
            Opts::new(
                "canary_events_total",
                "Canary transitions by reason (the canary's Event reasons: RunStarted, StageAdvanced, CheckFailed, \
                 RolledBack, Promoted, GateHeld, ...)",
            ),
            &["reason"],
        )?;
        let policy_evaluations = IntCounterVec::new(
            Opts::new("policy_evaluations_total", "WASM policy evaluations by world: cache-policy, rate-limit-policy"),
            &["world"],
        )?;
        let policy_failures = IntCounterVec::new(
            Opts::new(
                "policy_failures_total",
                "WASM policy failures by world and category: trap, timeout, out_of_memory, bad_output, \
                 bad_settings, policy_error, load, forbidden_import, wrong_world, busy, digest_mismatch, ...",
            ),
            &["world", "category"],
        )?;
        let candidate_evaluations = IntCounterVec::new(
            Opts::new(
                "policy_candidate_evaluations_total",
                "Policy candidates evaluated beside the active policy, by world and verdict: Agrees, Differs, Failed",
            ),
            &["world", "verdict"],
        )?;
        let mut all = Registered { registry: &registry, collectors: Vec::new() };
        for c in [&reconciles, &errors, &canary_analyses, &canary_events, &policy_evaluations, &policy_failures] {
            all.add(c)?;
        }
        all.add(&candidate_evaluations)?;
        let policy_duration = HistogramVec::new(
            HistogramOpts::new("policy_evaluation_seconds", "Time of a WASM policy's call by world, 0.5 ms to 1 s")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
            &["world"],
        )?;
        for h in [&duration, &policy_duration] {
            all.add(h)?;
        }
        let profiles = profiles::ProfileMetrics::new()?;
        all.add(&profiles)?;
        let leader = IntGauge::new("leader", "1 on the replica that holds the lease and reconciles, 0 otherwise")?;
        all.add(&leader)?;
        let caches_ready = IntGauge::new(
            "caches_ready",
            "1 once the replica's caches (owned objects, HPAs) have listed; a standby fills them before it leads",
        )?;
        all.add(&caches_ready)?;
        let collectors = all.collectors;
        Ok(Self {
            registry,
            collectors,
            reconciles,
            errors,
            duration,
            canary_analyses,
            canary_events,
            policy_evaluations,
            policy_failures,
            candidate_evaluations,
            policy_duration,
            profiles,
            leader,
            caches_ready,
        })
    }

    /// Every family this operator can expose, with or without series yet, in registration order.
    pub fn families(&self) -> Vec<Family> {
        let labels = |name: &str, c: &dyn Collector| {
            c.desc().iter().find(|d| d.fq_name == name).map(|d| d.variable_labels.clone()).unwrap_or_default()
        };
        let kind = |t: prometheus::proto::MetricType| match t {
            prometheus::proto::MetricType::COUNTER => "counter",
            prometheus::proto::MetricType::GAUGE => "gauge",
            prometheus::proto::MetricType::HISTOGRAM => "histogram",
            prometheus::proto::MetricType::SUMMARY => "summary",
            prometheus::proto::MetricType::UNTYPED => "untyped",
        };
        let families = self.collectors.iter().flat_map(|c| c.collect().into_iter().map(move |f| (c, f)));
        families
            .map(|(c, f)| Family {
                name: format!("{PREFIX}_{}", f.name()),
                kind: kind(f.get_field_type()),
                labels: labels(f.name(), c.as_ref()),
                help: f.help().to_string(),
            })
            .collect()
    }

    /// Times until the guard drops, so every return path is measured.
    pub fn timer(&self, component: &'static str) -> Timer<'_> {
        Timer { metrics: self, component, start: Instant::now() }
    }

    /// The text exposition of all metrics.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Drop guard observing a reconcile duration.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    component: &'static str,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.metrics.duration.with_label_values(&[self.component]).observe(self.start.elapsed().as_secs_f64());
    }
}

/// What this replica tells the cluster: readiness (`/readyz`) and leadership (`perf_operator_leader`).
///
/// Readiness follows controller-runtime's manager: it says the process is up and able to serve as a replica,
/// independent of leadership. A standby waiting for the lease is ready, so the replicas of a Deployment all become
/// Ready and a rolling update completes; the leader is ready once its controller has started (a standby that wins
/// the lease stays ready while its controller starts). Leadership is the gauge, never readiness: which replica
/// leads is not the Deployment's business. A replica that stops (signal, lost lease) is not ready and not leader.
#[derive(Clone)]
pub struct Replica {
    ready: Arc<AtomicBool>,
    leader: IntGauge,
}

impl Replica {
    /// Not ready and not leader, until the election or the controller says otherwise.
    pub fn new(metrics: &Metrics) -> Self {
        Self { ready: Arc::new(AtomicBool::new(false)), leader: metrics.leader.clone() }
    }

    /// Waiting for the lease, which the API server confirmed another replica holds: ready, not leader.
    pub fn standby(&self) {
        self.leader.set(0);
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Holds the lease (or runs without election): leader; ready once [`Replica::started`].
    pub fn leading(&self) {
        self.leader.set(1);
    }

    /// The controller has started.
    pub fn started(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Shutting down or lost the lease: neither ready nor leader.
    pub fn stopping(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.leader.set(0);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    replica: Replica,
}

/// The admin router: `/metrics`, `/healthz` (the process is up) and `/readyz` (this replica can serve, leader or
/// standby: see [`Replica`]; the leader is told by `perf_operator_leader` in `/metrics`).
pub fn admin_router(metrics: Arc<Metrics>, replica: Replica) -> axum::Router {
    axum::Router::new()
        // Rendered on a blocking thread: with many profiles a scrape is CPU work the reconciles' workers need.
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move {
                tokio::task::spawn_blocking(move || s.metrics.render()).await.unwrap_or_default()
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if s.replica.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(AdminState { metrics, replica })
}

/// Binds the admin address, so a taken port fails the start instead of leaving a replica that never turns ready.
pub async fn bind_admin(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| crate::Error::Io { path: addr.to_string(), source })
}

/// Serves the admin router on a bound listener until the process ends.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    replica: Replica,
) -> std::io::Result<()> {
    axum::serve(listener, admin_router(metrics, replica)).await
}

/// Log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the tracing subscriber (`RUST_LOG` filter, else `default_level`), logging to stderr.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
