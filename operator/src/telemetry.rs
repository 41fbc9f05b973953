//! Metrics, logs and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).

use crate::Result;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
}

impl Metrics {
    /// Registers the operator's metrics in a fresh registry; components add theirs to `registry`.
    pub fn new() -> Result<Self> {
        let registry = Registry::new_custom(Some("perf_operator".into()), None)?;
        let reconciles = IntCounterVec::new(Opts::new("reconciles_total", "Reconciles by component"), &["component"])?;
        let errors = IntCounterVec::new(
            Opts::new("reconcile_errors_total", "Reconcile errors by component and category"),
            &["component", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Reconcile duration by component")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["component"],
        )?;
        let canary_analyses =
            IntCounterVec::new(Opts::new("canary_analyses_total", "Canary stage analyses by verdict"), &["verdict"])?;
        let canary_events =
            IntCounterVec::new(Opts::new("canary_events_total", "Canary transitions by reason"), &["reason"])?;
        let policy_evaluations =
            IntCounterVec::new(Opts::new("policy_evaluations_total", "WASM policy evaluations by world"), &["world"])?;
        let policy_failures = IntCounterVec::new(
            Opts::new("policy_failures_total", "WASM policy failures by world and category (trap, timeout, ...)"),
            &["world", "category"],
        )?;
        for c in [&reconciles, &errors, &canary_analyses, &canary_events, &policy_evaluations, &policy_failures] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(duration.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            errors,
            duration,
            canary_analyses,
            canary_events,
            policy_evaluations,
            policy_failures,
        })
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

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The admin router: `/metrics`, `/healthz` (the process is up), `/readyz` (this replica leads and reconciles).
pub fn admin_router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(|State(s): State<AdminState>| async move { s.metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if s.ready.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(AdminState { metrics, ready })
}

/// Serves the admin router until the process ends.
pub async fn serve_admin(addr: SocketAddr, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, admin_router(metrics, ready)).await
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
