//! Report: the status from what each part of the decision did, written once (and only when it changed), with an
//! event per condition transition and the metrics of the round.

use super::Context;
use super::apply::{ContractFailure, Outcomes};
use super::slo_rule::RuleOutcome;
use crate::components::slo_rules::SloRule;
use crate::conditions::{self as cond, Report};
use crate::decide::{self, Decision};
use crate::{Error, Result, error::chain};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use perf_canary::EventKind;
use perf_operator_api::condition;
use perf_operator_api::{AppConfigStatus, CheckVerdict, FIELD_MANAGER, PerformanceProfile, PerformanceProfileStatus};
use serde_json::json;

/// Builds the status from the decision and the outcomes, writes it, and says when to look again. An error that
/// must send the profile to backoff (the contract not published) is returned after the status is written: what the
/// other parts did this round is recorded first.
pub async fn report(
    profile: &PerformanceProfile,
    ctx: &Context,
    decision: Decision,
    outcomes: Outcomes,
) -> Result<Action> {
    let requeue_canary = decision.canary_requeue();
    let Decision {
        mut status,
        mut reports,
        canary,
        policy_runs,
        checksum,
        redis_live,
        slo_rule,
        enforcement: decision_enforcement,
        ..
    } = decision;
    let decision_live = redis_live.and_then(|l| l.settings).map(|s| s.summary);
    let previous = profile.status.as_ref();
    let mut failed = None;
    if let Err(e) = outcomes.objects {
        set(&mut reports, Report::failed(condition::CACHE_READY, "ApplyFailed", chain(&e)));
    }
    match outcomes.contract {
        Ok(()) => status.app_config = Some(AppConfigStatus { name: profile.app_config_name(), checksum }),
        // The ConfigMap holds the new contract; only the roll failed.
        Err(ContractFailure::NotRolled(e)) => {
            status.app_config = Some(AppConfigStatus { name: profile.app_config_name(), checksum });
            failed = Some(e);
        }
        // The previous contract is still the live one (status keeps its checksum, carried over).
        Err(ContractFailure::NotPublished(e)) => failed = Some(e),
    }
    if let (Some(Err(e)), Some(cache)) = (&outcomes.redis_live, status.policies.as_mut().and_then(|p| p.cache.as_mut()))
    {
        cache.memory_advice_applied = Some(format!("not applied: {}", chain(e)));
    }
    if let (Some(result), Some(cache), Some(live)) = (&outcomes.redis_live, status.cache.as_mut(), &decision_live) {
        cache.live_settings = Some(match result {
            Ok(changed) => format!("{} ({changed} changed this round)", live),
            Err(e) => format!("not applied: {}", chain(e)),
        });
    }
    if let Some(ch) = outcomes.clickhouse {
        let outcome = perf_clickhouse::outcome(&ch);
        set(&mut reports, clickhouse_report(&outcome));
        status.clickhouse = Some(ch);
    }
    match (outcomes.canary, canary) {
        (Some(Err(e)), _) => {
            status.canary = previous.and_then(|s| s.canary.clone());
            set(&mut reports, Report::failed(condition::CANARY_READY, "Error", chain(&e)));
        }
        (Some(Ok(())), Some(step)) => canary_done(profile, ctx, &step).await,
        _ => {}
    }
    if let Some(r) = alerts_report(&slo_rule, &outcomes.slo_rule) {
        set(&mut reports, r);
    }
    if let (Some(round), Some(applied)) = (&decision_enforcement, &outcomes.enforcement) {
        let (report, rate_limit) = super::enforce::report(profile, round, applied, jiff::Timestamp::now());
        set(&mut reports, report);
        status.rate_limit = Some(rate_limit);
    }
    count(ctx, profile, &reports, &policy_runs);
    let progressing = decide::progressing(&reports);
    write(profile, ctx, status, Conditions::Reports(&reports)).await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let requeue = ctx.scope.requeue_after(progressing);
    Ok(Action::requeue(requeue_canary.map_or(requeue, |c| c.min(requeue))))
}

/// Replaces the report of the same condition type.
fn set(reports: &mut [Report], report: Report) {
    if let Some(r) = reports.iter_mut().find(|r| r.type_ == report.type_) {
        *r = report;
    }
}

/// `AlertsReady` from what applying the SLO rule did; `None` keeps the decided report (disabled with nothing to
/// delete, or refused). Alerts are an addition to the service, so a cluster that cannot take them (no Prometheus
/// Operator, no RBAC for its rules) is a warning, not a degraded profile.
fn alerts_report(rule: &SloRule, outcome: &RuleOutcome) -> Option<Report> {
    let t = condition::ALERTS_READY;
    if let SloRule::Disabled { name } = rule {
        return match outcome {
            RuleOutcome::Absent { deleted: true } => Some(Report::ok(
                t,
                "Disabled",
                format!("spec.slo.alerts.enabled is false: PrometheusRule {name} deleted"),
            )),
            RuleOutcome::Failed(e) => Some(Report::failed(t, "DeleteFailed", chain(e))),
            _ => None,
        };
    }
    Some(match (outcome, rule) {
        (RuleOutcome::Applied { .. }, SloRule::Desired(plan)) => Report::ok(
            t,
            "Applied",
            format!("PrometheusRule {} holds {} alerts: {}", plan.name, plan.alerts.len(), plan.alerts.join(", ")),
        ),
        (RuleOutcome::CrdMissing, _) => Report::warning(
            t,
            "PrometheusRuleCrdMissing",
            "monitoring.coreos.com/v1 PrometheusRule is not served by this cluster: install the Prometheus Operator's \
             CRDs to have the SLO alerts applied, or load `perf-operator plan`'s sloRules into Prometheus",
        ),
        (RuleOutcome::Failed(Error::Kube(kube::Error::Api(status))), _) if status.code == 403 => Report::warning(
            t,
            "Forbidden",
            format!(
                "the operator may not manage PrometheusRules here (chart value features.sloAlerts): {}; set \
                 spec.slo.alerts.enabled=false or grant it",
                status.message
            ),
        ),
        (RuleOutcome::NotAllowed(message), _) => Report::failed(t, "LabelNotAllowed", message.clone()),
        (RuleOutcome::Failed(e), _) => Report::failed(t, "ApplyFailed", chain(e)),
        _ => return None,
    })
}

fn clickhouse_report(o: &perf_clickhouse::Outcome) -> Report {
    match o.health {
        perf_clickhouse::Health::Ready => Report::ok(condition::CLICKHOUSE_READY, o.reason, o.message.clone()),
        perf_clickhouse::Health::Failed => Report::failed(condition::CLICKHOUSE_READY, o.reason, o.message.clone()),
        perf_clickhouse::Health::Progressing => {
            Report::progressing(condition::CLICKHOUSE_READY, o.reason, o.message.clone())
        }
    }
}

/// A canary step that was applied: its events and metrics.
async fn canary_done(profile: &PerformanceProfile, ctx: &Context, step: &perf_canary::Step) {
    if let Some(analysis) = &step.analysis {
        let verdict = match analysis.verdict {
            CheckVerdict::Pass => "pass",
            CheckVerdict::Fail => "fail",
            CheckVerdict::NoData => "no_data",
        };
        ctx.metrics.canary_analyses.with_label_values(&[verdict]).inc();
    }
    for event in &step.events {
        tracing::info!(reason = event.reason, "{}", event.message);
        ctx.metrics.canary_events.with_label_values(&[event.reason]).inc();
        ctx.metrics.profiles.canary_event(profile, event.reason);
        ctx.event(profile, event.kind == EventKind::Warning, event.reason, event.message.clone()).await;
    }
    if let Err(e) = super::run_history::keep(ctx, profile, step).await {
        ctx.metrics.errors.with_label_values(&["run_history", e.category()]).inc();
        ctx.event(
            profile,
            true,
            "RunHistoryFailed",
            format!("the run's analyses were not recorded: {}", crate::error::chain(&e)),
        )
        .await;
    }
    for failed in ctx.hooks.send_after(profile, &step.after).await {
        ctx.metrics.errors.with_label_values(&["webhooks", "failed"]).inc();
        let why = failed.message.unwrap_or_default();
        let message = format!("{} webhook {}: {why}", failed.kind.name(), failed.name);
        ctx.event(profile, true, "WebhookFailed", message).await;
    }
    let notices = crate::notify::notices(profile, step);
    for failed in ctx.notifier.send(&ctx.client, profile, notices).await {
        ctx.metrics.errors.with_label_values(&["notifications", "failed"]).inc();
        ctx.event(profile, true, "NotificationFailed", failed.to_string()).await;
    }
}

/// Per-component counters of the round: reconciles of configured components, failures by category.
fn count(ctx: &Context, profile: &PerformanceProfile, reports: &[Report], runs: &[decide::policy::Run]) {
    let configured = [
        (condition::CACHE_READY, "cache", profile.spec.cache.is_some()),
        (condition::POOLS_READY, "pools", profile.spec.pools.is_some()),
        (condition::CLICKHOUSE_READY, "clickhouse", profile.spec.clickhouse.is_some()),
        (condition::CANARY_READY, "canary", profile.spec.canary.is_some()),
        (condition::POLICIES_READY, "policies", !runs.is_empty()),
        (condition::ALERTS_READY, "alerts", profile.spec.slo.alerts.enabled),
    ];
    for (type_, component, _) in configured.into_iter().filter(|c| c.2) {
        ctx.metrics.reconciles.with_label_values(&[component]).inc();
        if reports.iter().any(|r| r.type_ == type_ && !r.ok && !r.progressing) {
            ctx.metrics.errors.with_label_values(&[component, "degraded"]).inc();
        }
    }
    for run in runs {
        ctx.metrics.policy_evaluations.with_label_values(&[run.world.as_str()]).inc();
        if let Some(category) = run.failure {
            ctx.metrics.policy_failures.with_label_values(&[run.world.as_str(), category]).inc();
        }
        if let Some(elapsed) = run.elapsed {
            ctx.metrics.policy_duration.with_label_values(&[run.world.as_str()]).observe(elapsed.as_secs_f64());
        }
        if let Some(verdict) = run.candidate {
            let verdict = crate::decide::shadow::verdict_label(verdict);
            ctx.metrics.candidate_evaluations.with_label_values(&[run.world.as_str(), verdict]).inc();
        }
    }
}

/// Where the conditions come from.
pub enum Conditions<'a> {
    Reports(&'a [Report]),
    /// A round that applies nothing, and why.
    Held(cond::Hold<'a>),
}

/// The status of a round that applies nothing: every record stays. A suspended canary's progress deadline goes
/// (the machine sets a new one when the run moves again), so the time it was suspended never fails the run.
pub fn for_held(profile: &PerformanceProfile, hold: cond::Hold<'_>) -> PerformanceProfileStatus {
    let mut status = cond::for_held(profile.status.as_ref(), profile.meta().generation);
    if let (cond::Hold::Suspended, Some(canary)) = (hold, status.canary.as_mut()) {
        canary.deadline = None;
    }
    status
}

/// Writes status when it differs from the stored one, and records an event per condition transition.
pub async fn write(
    profile: &PerformanceProfile,
    ctx: &Context,
    mut status: PerformanceProfileStatus,
    conditions: Conditions<'_>,
) -> Result<()> {
    let previous = profile.status.as_ref();
    let now = Time(jiff::Timestamp::now());
    let prev_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = profile.meta().generation;
    let (built, warnings) = match conditions {
        Conditions::Reports(reports) => {
            (cond::conditions(prev_conditions, reports, generation, &now), cond::Warnings::Reports(reports))
        }
        Conditions::Held(hold) => (cond::held(prev_conditions, hold, generation, &now), cond::Warnings::of(hold)),
    };
    status.conditions = built;
    status.phase = Some(cond::phase(&status.conditions));
    ctx.metrics.profiles.set(profile, &status);
    if previous == Some(&status) {
        return Ok(());
    }
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api: Api<PerformanceProfile> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": PerformanceProfile::api_version(&()), "kind": PerformanceProfile::kind(&()), "status": status,
    });
    api.patch_status(&profile.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::Kube)?;
    for c in cond::transitions(previous, &status, &warnings) {
        let warning = warnings.is_warning(&c);
        ctx.event(profile, warning, &format!("{}{}", c.type_, c.status), format!("{}: {}", c.reason, c.message)).await;
    }
    Ok(())
}
