//! A run's webhooks, with Flagger's contract: the payload (`{name, namespace, phase, checksum, metadata}`), the
//! status-code meaning (2xx succeeds) and the types. What is pure is here: which hooks a round calls ([`due`]),
//! their payloads and placeholders, and what their answers mean; the HTTP is the caller's ([`HookCaller`]).

use crate::machine::after;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use perf_operator_api::validation::hook_timeout;
use perf_operator_api::{CanaryPhase, CanarySpec, CanaryStatus, HookRecord, HookType, RoutingSpec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What the placeholders of a hook's URL and metadata stand for.
#[derive(Clone, Copy, Debug)]
pub struct HookContext<'a> {
    /// The profile: the payload's `name` (the canary, in Flagger's words).
    pub profile: &'a str,
    pub namespace: &'a str,
    pub target: &'a str,
    pub routing: &'a RoutingSpec,
}

impl HookContext<'_> {
    /// Substitutes the placeholders; an address whose Service does not exist stays as written (validation refuses
    /// it before a profile gets here).
    pub fn render(&self, text: &str) -> String {
        let service = |name: String, port: Option<u32>| match port {
            Some(port) => format!("{name}.{}.svc:{port}", self.namespace),
            None => String::new(),
        };
        let route_port = self.routing.http_route.as_ref().map(|r| r.port);
        let canary = service(crate::objects::canary_name(self.target), self.routing.canary_port.or(route_port));
        let primary = service(crate::objects::primary_name(self.target), route_port);
        let mut out = text
            .replace("{{namespace}}", self.namespace)
            .replace("{{target}}", self.target)
            .replace("{{canary}}", &crate::objects::canary_name(self.target));
        if !canary.is_empty() {
            out = out.replace("{{canaryAddress}}", &canary);
        }
        if !primary.is_empty() {
            out = out.replace("{{primaryAddress}}", &primary);
        }
        out
    }
}

/// The JSON body of a call: Flagger's `CanaryWebhookPayload`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Payload {
    pub name: String,
    pub namespace: String,
    pub phase: &'static str,
    /// The run's id (the hash of the template being rolled out), as Flagger's checksum identifies a revision.
    pub checksum: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One call to make.
#[derive(Clone, Debug, PartialEq)]
pub struct HookCall {
    pub name: String,
    pub kind: HookType,
    /// With its placeholders substituted.
    pub url: String,
    pub timeout: Duration,
    pub payload: Payload,
}

/// What a receiver answered: its status and the start of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookAnswer {
    pub status: u16,
    pub body: String,
}

/// Sends calls; the operator's checks each URL against the egress allow-list. An `Err` says why nothing answered.
pub trait HookCaller: Send + Sync {
    fn call<'a>(&'a self, call: &'a HookCall) -> Pin<Box<dyn Future<Output = Result<HookAnswer, String>> + Send + 'a>>;
}

/// Flagger's phase name for a status, as its payloads carry it.
pub fn flagger_phase(status: &CanaryStatus) -> &'static str {
    match status.phase {
        CanaryPhase::Idle => "Initialized",
        CanaryPhase::Initializing => "Initializing",
        CanaryPhase::Waiting => "Waiting",
        CanaryPhase::Progressing if status.gate == Some(HookType::ConfirmPromotion) => "WaitingPromotion",
        CanaryPhase::WaitingForPods | CanaryPhase::Progressing => "Progressing",
        CanaryPhase::Promoting => "Promoting",
        CanaryPhase::Succeeded => "Succeeded",
        CanaryPhase::RolledBack | CanaryPhase::Failed => "Failed",
    }
}

/// The calls of every hook of `kind`, in the spec's order.
pub fn calls(
    spec: &CanarySpec,
    kind: HookType,
    ctx: &HookContext<'_>,
    status: &CanaryStatus,
    run: &str,
) -> Vec<HookCall> {
    spec.analysis
        .webhooks
        .iter()
        .filter(|h| h.kind == kind)
        .map(|h| HookCall {
            name: h.name.clone(),
            kind,
            url: ctx.render(&h.url),
            timeout: hook_timeout(h).unwrap_or(Duration::from_secs(10)),
            payload: Payload {
                name: ctx.profile.to_string(),
                namespace: ctx.namespace.to_string(),
                phase: flagger_phase(status),
                checksum: run.to_string(),
                metadata: h.metadata.iter().map(|(k, v)| (k.clone(), ctx.render(v))).collect(),
            },
        })
        .collect()
}

/// How long an event hook may take (Flagger's fixed 5 s).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The calls of the `event` hooks for one event: Flagger's `eventMessage`, `eventType` and `timestamp` (ms), then
/// the hook's own metadata where it does not set those.
pub fn event_calls(
    spec: &CanarySpec,
    ctx: &HookContext<'_>,
    status: &CanaryStatus,
    event: &crate::CanaryEvent,
    at: Timestamp,
) -> Vec<HookCall> {
    let run = status.run_id.clone().unwrap_or_default();
    let mut calls = calls(spec, HookType::Event, ctx, status, &run);
    let kind = if event.kind == crate::EventKind::Warning { "Warning" } else { "Normal" };
    for call in &mut calls {
        call.timeout = EVENT_TIMEOUT;
        let metadata = &mut call.payload.metadata;
        metadata.insert("eventMessage".into(), format!("{}: {}", event.reason, event.message));
        metadata.insert("eventType".into(), kind.into());
        metadata.insert("timestamp".into(), at.as_millisecond().to_string());
    }
    calls
}

/// Calls `calls` in order (as Flagger does), each within its timeout; one record each.
pub async fn run_chain(caller: &dyn HookCaller, calls: &[HookCall], now: Timestamp) -> Vec<HookRecord> {
    let mut records = Vec::with_capacity(calls.len());
    for call in calls {
        let answer = tokio::time::timeout(call.timeout, caller.call(call)).await;
        let answer = answer.unwrap_or_else(|_| Err(format!("no answer within {:?}", call.timeout)));
        records.push(record(call, answer, now));
    }
    records
}

/// Longest message kept from a receiver's answer.
const MAX_MESSAGE: usize = 256;

fn record(call: &HookCall, answer: Result<HookAnswer, String>, now: Timestamp) -> HookRecord {
    let mut r = HookRecord { name: call.name.clone(), kind: call.kind, at: Some(Time(now)), ..HookRecord::default() };
    match answer {
        Ok(a) if (200..300).contains(&a.status) => {
            r.succeeded = true;
            r.status_code = Some(a.status);
        }
        Ok(a) => {
            r.status_code = Some(a.status);
            let body = printable(&a.body);
            r.message =
                Some(if body.is_empty() { format!("HTTP {}", a.status) } else { format!("HTTP {}: {body}", a.status) });
        }
        Err(why) => r.message = Some(printable(&why)),
    }
    r
}

/// The start of a receiver's text, on one line, without control characters.
fn printable(text: &str) -> String {
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// Every record succeeded (and there is at least one).
pub fn all_succeeded(records: &[HookRecord]) -> bool {
    !records.is_empty() && records.iter().all(|r| r.succeeded)
}

/// One line about the records that did not succeed, e.g. `webhook gate: HTTP 403`.
pub fn summary(records: &[HookRecord]) -> String {
    let bad: Vec<String> = records
        .iter()
        .filter(|r| !r.succeeded)
        .map(|r| format!("webhook {}: {}", r.name, r.message.as_deref().unwrap_or("failed")))
        .collect();
    bad.join("; ")
}

/// The gate of the stage at `index`: before the next stage, or before the promotion after the last.
pub fn stage_gate(stages: usize, index: usize) -> HookType {
    if index + 1 < stages { HookType::ConfirmTrafficIncrease } else { HookType::ConfirmPromotion }
}

/// The hook types a spec has.
pub fn types(spec: &CanarySpec) -> Vec<HookType> {
    let mut kinds: Vec<HookType> = spec.analysis.webhooks.iter().map(|h| h.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// What the round knows before deciding which hooks to call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The target's template is neither the stable one nor a run already under way, over or waiting: the machine
    /// would start a run (or wait for its `confirm-rollout`).
    pub new_template: bool,
    /// The current template's run is in `Waiting`.
    pub waiting: bool,
    /// The first stage's pods (and the primary's) are ready: its hold would begin now.
    pub first_stage_ready: bool,
    /// A full analysis runs this round.
    pub full: bool,
    /// A quick check runs this round.
    pub quick: bool,
}

/// What a round saw of the workloads.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// The target's template hash.
    pub target: &'a str,
    /// The primary's (the stable template), if annotated.
    pub stable: Option<&'a str>,
    /// The primary exists.
    pub primary: bool,
    /// The first stage's pods and the primary's are ready.
    pub first_stage_ready: bool,
}

/// The facts the machine will act on, read the way it reads them (see `machine::step`).
pub fn facts(prev: &CanaryStatus, seen: Seen<'_>, full: bool) -> Facts {
    let same_run = prev.run_id.as_deref() == Some(seen.target);
    let settled = seen.stable == Some(seen.target) || !seen.primary || prev.phase == CanaryPhase::Initializing;
    let taken = same_run
        && (crate::machine::is_active(prev.phase)
            || matches!(prev.phase, CanaryPhase::RolledBack | CanaryPhase::Failed | CanaryPhase::Waiting));
    let waiting = same_run && prev.phase == CanaryPhase::Waiting && !settled;
    Facts { new_template: !settled && !taken, waiting, first_stage_ready: seen.first_stage_ready, full, quick: false }
}

/// The hook types a round calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub confirm_rollout: bool,
    pub pre_rollout: bool,
    pub rollout: bool,
    /// The gate of the stage, at a full analysis.
    pub gate: Option<HookType>,
    pub rollback: bool,
}

/// Which hooks this round calls. Gates and retries are polled once per step interval (as Flagger polls at each
/// of its intervals), measured from the last call in `status.hooks`.
pub fn due(spec: &CanarySpec, step: Duration, status: &CanaryStatus, facts: Facts, now: Timestamp) -> Due {
    let kinds = types(spec);
    let has = |k: HookType| kinds.contains(&k);
    let polled = |k: HookType| poll_due(&status.hooks, k, step, now);
    let confirm_rollout =
        has(HookType::ConfirmRollout) && (facts.new_template || (facts.waiting && polled(HookType::ConfirmRollout)));
    let pre_passed = all_succeeded(&of_kind(&status.hooks, HookType::PreRollout));
    let first_hold = status.phase == CanaryPhase::WaitingForPods && status.stage_index == Some(0) && !status.paused;
    let pre_rollout = has(HookType::PreRollout)
        && first_hold
        && facts.first_stage_ready
        && !pre_passed
        && polled(HookType::PreRollout);
    let stages = spec.stages.len();
    let gate = stage_gate(stages, status.stage_index.unwrap_or(0) as usize);
    Due {
        confirm_rollout,
        pre_rollout,
        rollout: facts.full && has(HookType::Rollout),
        gate: (facts.full && has(gate)).then_some(gate),
        rollback: has(HookType::Rollback) && (facts.full || facts.quick || confirm_rollout),
    }
}

/// The records of `kind`.
pub fn of_kind(records: &[HookRecord], kind: HookType) -> Vec<HookRecord> {
    records.iter().filter(|r| r.kind == kind).cloned().collect()
}

/// No call of `kind` yet, or the oldest is a step interval old.
fn poll_due(records: &[HookRecord], kind: HookType, step: Duration, now: Timestamp) -> bool {
    let oldest = records.iter().filter(|r| r.kind == kind).filter_map(|r| r.at.as_ref()).map(|t| t.0).min();
    oldest.is_none_or(|at| now >= after(at, step))
}

/// The results of a round's hooks, by purpose.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    pub confirm_rollout: Option<Vec<HookRecord>>,
    pub pre_rollout: Option<Vec<HookRecord>>,
    /// Also merged into the analysis as checks.
    pub rollout: Option<Vec<HookRecord>>,
    pub gate: Option<Vec<HookRecord>>,
    pub rollback: Option<Vec<HookRecord>>,
}

impl Results {
    /// Every record, for status.
    pub fn all(&self) -> impl Iterator<Item = &HookRecord> {
        [&self.confirm_rollout, &self.pre_rollout, &self.rollout, &self.gate, &self.rollback]
            .into_iter()
            .flatten()
            .flatten()
    }

    /// A `rollback` hook answered 2xx: its name.
    pub fn rollback_asked(&self) -> Option<&str> {
        self.rollback.as_ref()?.iter().find(|r| r.succeeded).map(|r| r.name.as_str())
    }
}

/// Calls what is due: the chains of different purposes concurrently, each in order.
pub async fn run_due(
    caller: &dyn HookCaller,
    due: &Due,
    calls_of: impl Fn(HookType) -> Vec<HookCall>,
    now: Timestamp,
) -> Results {
    let chain = |on: bool, kind: HookType| {
        let calls = if on { calls_of(kind) } else { Vec::new() };
        async move { if on { Some(run_chain(caller, &calls, now).await) } else { None } }
    };
    let gate = due.gate.unwrap_or(HookType::ConfirmPromotion);
    let (confirm_rollout, pre_rollout, rollout, gate, rollback) = futures::join!(
        chain(due.confirm_rollout, HookType::ConfirmRollout),
        chain(due.pre_rollout, HookType::PreRollout),
        chain(due.rollout, HookType::Rollout),
        chain(due.gate.is_some(), gate),
        chain(due.rollback, HookType::Rollback),
    );
    Results { confirm_rollout, pre_rollout, rollout, gate, rollback }
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
