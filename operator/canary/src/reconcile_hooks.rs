//! The webhooks' side of a step: what their placeholders stand for, which the round calls (as the machine will
//! read the same world), and those sent once the step is applied.

use super::*;

/// What the placeholders of the profile's webhooks stand for.
pub(super) fn hook_context<'a>(profile: &'a PerformanceProfile, spec: &'a CanarySpec, ns: &'a str) -> HookContext<'a> {
    HookContext {
        profile: profile.metadata.name.as_deref().unwrap_or_default(),
        namespace: ns,
        target: &profile.spec.target_ref.name,
        routing: &spec.routing,
    }
}

/// What decides which webhooks this round calls, as the machine will read the same world.
pub(super) fn hook_facts(spec: &CanarySpec, w: &World, prev: &CanaryStatus, full: bool) -> Facts {
    let stable = w.primary.as_ref().and_then(objects::annotated_hash);
    let first_stage_ready = prev.phase == CanaryPhase::WaitingForPods
        && w.primary.as_ref().is_some_and(objects::rollout_complete)
        && canary_ready(spec, w, prev.weight);
    let seen =
        hooks::Seen { target: &w.hash, stable: stable.as_deref(), primary: w.primary.is_some(), first_stage_ready };
    hooks::facts(prev, seen, full)
}

/// The canary runs the current template at the size of `weight`, every pod ready.
pub(super) fn canary_ready(spec: &CanarySpec, w: &World, weight: u32) -> bool {
    let total = w.primary.as_ref().map_or_else(|| objects::replicas(&w.target).max(1), objects::full_replicas);
    let current = split::split(total, weight, mode(spec, w));
    w.canary.as_ref().is_some_and(|c| {
        objects::annotated_hash(c).as_deref() == Some(w.hash.as_str())
            && objects::replicas(c) == current.canary
            && objects::rollout_complete(c)
    })
}

/// The webhooks to call once a step is applied: `post-rollout` when it ended the run, `event` for its events.
pub(super) fn after_hooks(
    profile: &PerformanceProfile,
    spec: &CanarySpec,
    prev: &CanaryStatus,
    status: &CanaryStatus,
    events: &[CanaryEvent],
    now: Timestamp,
) -> Vec<HookCall> {
    if spec.analysis.webhooks.is_empty() {
        return Vec::new();
    }
    let ns = profile.metadata.namespace.clone().unwrap_or_default();
    let ctx = hook_context(profile, spec, &ns);
    let running = machine::is_active(prev.phase) || prev.phase == CanaryPhase::Waiting;
    let ended = matches!(status.phase, CanaryPhase::Succeeded | CanaryPhase::RolledBack | CanaryPhase::Failed);
    let run = status.run_id.clone().unwrap_or_default();
    let mut calls = if running && ended {
        hooks::calls(spec, perf_operator_api::HookType::PostRollout, &ctx, status, &run)
    } else {
        Vec::new()
    };
    for event in events {
        calls.extend(hooks::event_calls(spec, &ctx, status, event, now));
    }
    calls
}
