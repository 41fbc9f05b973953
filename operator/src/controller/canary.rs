//! Canary component, operator side: one step of `perf_canary` per reconcile, its condition, events and metrics.

use super::Context;
use super::status::Report;
use perf_canary::{EventKind, Prometheus};
use perf_operator_api::{CheckVerdict, PerformanceProfile, PerformanceProfileStatus, condition};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Prometheus clients by base URL, built once (each holds a connection pool).
#[derive(Default)]
pub struct PrometheusClients(Mutex<HashMap<String, Arc<Prometheus>>>);

impl PrometheusClients {
    pub fn get(&self, base: &str) -> perf_canary::Result<Arc<Prometheus>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(base) {
            return Ok(p.clone());
        }
        let p = Arc::new(Prometheus::new(base, Duration::from_secs(10))?);
        map.insert(base.to_string(), p.clone());
        Ok(p)
    }
}

/// Runs the canary state machine once; returns the condition and when to look again.
pub async fn reconcile(
    profile: &PerformanceProfile,
    ctx: &Context,
    status: &mut PerformanceProfileStatus,
) -> (Report, Option<Duration>) {
    let Some(spec) = &profile.spec.canary else { return (Report::not_configured(condition::CANARY_READY), None) };
    let _timer = ctx.metrics.timer("canary");
    ctx.metrics.reconciles.with_label_values(&["canary"]).inc();
    status.canary = profile.status.as_ref().and_then(|s| s.canary.clone());
    let prometheus = match ctx.prometheus.get(&spec.analysis.prometheus) {
        Ok(p) => p,
        Err(e) => return (failed(ctx, &e), None),
    };
    let outcome =
        match perf_canary::reconcile(ctx.client.clone(), profile, prometheus.as_ref(), jiff::Timestamp::now()).await {
            Ok(o) => o,
            Err(e) => return (failed(ctx, &e), None),
        };
    if let Some(analysis) = &outcome.analysis {
        let verdict = match analysis.verdict {
            CheckVerdict::Pass => "pass",
            CheckVerdict::Fail => "fail",
            CheckVerdict::NoData => "no_data",
        };
        ctx.metrics.canary_analyses.with_label_values(&[verdict]).inc();
    }
    for event in &outcome.events {
        ctx.metrics.canary_events.with_label_values(&[event.reason]).inc();
        ctx.event(profile, event.kind == EventKind::Warning, event.reason, event.message.clone()).await;
    }
    status.canary = Some(outcome.status);
    let c = outcome.condition;
    let report = match (c.status, c.reason) {
        ("True", _) => Report::ok(condition::CANARY_READY, c.reason, c.message),
        (_, "RolledBack" | "DeadlineExceeded") => Report::failed(condition::CANARY_READY, c.reason, c.message),
        _ => Report::progressing(condition::CANARY_READY, c.reason, c.message),
    };
    (report, Some(outcome.requeue_after))
}

fn failed(ctx: &Context, e: &perf_canary::Error) -> Report {
    ctx.metrics.errors.with_label_values(&["canary", e.category()]).inc();
    Report::failed(condition::CANARY_READY, "Error", error_chain(e))
}

/// An error with its sources, since the canary's errors name the action and keep the cause as source.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Finalizer step: gives the target back its pods before the primary and canary are garbage-collected.
pub async fn cleanup(profile: &PerformanceProfile, ctx: &Context) -> crate::Result<()> {
    if profile.spec.canary.is_none() {
        return Ok(());
    }
    perf_canary::finalize(ctx.client.clone(), profile)
        .await
        .map_err(|e| crate::Error::Component { component: "canary", message: error_chain(&e) })
}
