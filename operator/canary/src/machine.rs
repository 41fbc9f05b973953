//! The run state machine: pure functions of (spec timing, previous status, observed world, now).
//!
//! All run state lives in [`CanaryStatus`] (plus the template hash annotated on the primary), so a restarted
//! operator resumes where it was. Prometheus being down or returning no data holds a stage; it never promotes.

use crate::hooks::{self, Results};
use crate::{Error, Result};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use perf_operator_api::duration::parse_duration;
use perf_operator_api::{AnalysisRecord, CanaryPhase, CanarySpec, CanaryStatus, CheckVerdict, HookRecord, HookType};
use std::time::Duration;

/// Analyses kept in status.
const KEPT_ANALYSES: usize = 5;

/// The parts of the spec the machine needs, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub stages: Vec<u32>,
    pub step_interval: Duration,
    pub progress_deadline: Duration,
    pub failure_limit: u32,
    /// Cadence of the quick checks within a step (see [`crate::cadence`]); zero when off. Not in the spec alone:
    /// its default comes from the Prometheus's scrape interval, set by the caller.
    pub check_interval: Duration,
    /// The webhook types the spec has (gates and pre-rollout change what a step may do).
    pub hook_types: Vec<HookType>,
}

impl Timing {
    /// Parses and checks the spec; errors name the field.
    pub fn from_spec(spec: &CanarySpec) -> Result<Self> {
        let duration = |text: &str, field: &str| {
            parse_duration(text).map_err(|message| Error::InvalidSpec { field: field.into(), message })
        };
        let stages_ok = !spec.stages.is_empty()
            && spec.stages.windows(2).all(|w| w[0] < w[1])
            && spec.stages.iter().all(|s| (1..=100).contains(s))
            && spec.stages.last() == Some(&100);
        if !stages_ok {
            return Err(Error::InvalidSpec {
                field: "spec.canary.stages".into(),
                message: format!(
                    "expected strictly increasing weights in [1, 100] ending at 100, got {:?}",
                    spec.stages
                ),
            });
        }
        Ok(Self {
            stages: spec.stages.clone(),
            step_interval: duration(&spec.step_interval, "spec.canary.stepInterval")?,
            progress_deadline: duration(&spec.progress_deadline, "spec.canary.progressDeadline")?,
            failure_limit: spec.analysis.failure_limit.max(1),
            check_interval: Duration::ZERO,
            hook_types: hooks::types(spec),
        })
    }
}

pub use crate::command::{Command, CommandRequest, parse_command};

/// What the machine sees of a Deployment.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Workload {
    /// Template hash annotated by the operator.
    pub hash: Option<String>,
    /// Rolled out and all desired pods ready.
    pub ready: bool,
}

/// The observed world for one step.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Hash of the target Deployment's pod template.
    pub target_hash: String,
    /// `<target>-primary`, if it exists.
    pub primary: Option<Workload>,
    /// Canary runs the target's template with the replicas of the current weight, all ready.
    pub canary_ready: bool,
    /// Result of an analysis run for this step (only when [`analysis_due`] said so), or of a quick check within
    /// it (`quick`).
    pub analysis: Option<AnalysisRecord>,
    pub quick: bool,
    /// Manual command, if the annotation is set.
    pub command: Option<CommandRequest>,
    /// The template the primary ran before its current one is still held by one of its ReplicaSets (read only
    /// during a promotion): an abort can give it back.
    pub primary_restorable: bool,
    /// What the webhooks called this round answered.
    pub hooks: Results,
}

/// What to do with the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrimaryAction {
    /// Leave it as it is.
    Keep,
    /// Create it from the target's template (first sight; nothing is rolled out).
    Create,
    /// Give it the target's template (promotion).
    Promote,
    /// Give it back the template it ran before the promotion (an abort during the promotion).
    Restore,
}

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// An event to emit (transitions only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryEvent {
    pub kind: EventKind,
    /// Fixed CamelCase reason.
    pub reason: &'static str,
    pub message: String,
}

/// Health of the canary, typed so the operator never matches on reason strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No run, or the last one promoted (condition `True`).
    Ready,
    /// A run is under way, paused or setting up.
    Progressing,
    /// The last run was rolled back or missed its deadline: someone should look.
    Failed,
}

/// The `CanaryReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryCondition {
    /// `True` (exactly when `health` is [`Health::Ready`]) or `False`.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub health: Health,
}

/// Output of a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: CanaryStatus,
    pub primary: PrimaryAction,
    pub events: Vec<CanaryEvent>,
}

/// A run is under way (traffic may reach the canary).
pub fn is_active(phase: CanaryPhase) -> bool {
    matches!(phase, CanaryPhase::WaitingForPods | CanaryPhase::Progressing | CanaryPhase::Promoting)
}

pub use crate::cadence::{analysis_due, requeue_after};

/// The condition for a status.
pub fn condition(status: &CanaryStatus) -> CanaryCondition {
    let message = status.message.clone().unwrap_or_default();
    let (health, reason) = match status.phase {
        _ if status.paused && is_active(status.phase) => (Health::Progressing, "Paused"),
        CanaryPhase::Idle => (Health::Ready, "Stable"),
        CanaryPhase::Succeeded => (Health::Ready, "Promoted"),
        CanaryPhase::Initializing => (Health::Progressing, "Initializing"),
        CanaryPhase::Waiting => (Health::Progressing, "WaitingForConfirmation"),
        CanaryPhase::WaitingForPods | CanaryPhase::Progressing => (Health::Progressing, "Progressing"),
        CanaryPhase::Promoting => (Health::Progressing, "Promoting"),
        CanaryPhase::RolledBack => (Health::Failed, "RolledBack"),
        CanaryPhase::Failed => (Health::Failed, "DeadlineExceeded"),
    };
    let ok = health == Health::Ready;
    CanaryCondition { status: if ok { "True" } else { "False" }, reason, message, health }
}

/// One step of the machine.
pub fn step(timing: &Timing, prev: &CanaryStatus, observed: &Observed, now: Timestamp) -> Decision {
    let mut m =
        Machine { t: timing, o: observed, now, s: prev.clone(), events: Vec::new(), primary: PrimaryAction::Keep };
    m.run();
    m.remember(observed.hooks.all().cloned().collect());
    Decision { status: m.s, primary: m.primary, events: m.events }
}

/// Status times are stored with second precision; rounding the start of a hold up keeps it at least a full
/// step interval long.
fn ceil_second(t: Timestamp) -> Timestamp {
    if t.subsec_nanosecond() == 0 { t } else { Timestamp::from_second(t.as_second() + 1).unwrap_or(t) }
}

/// `t + d`, saturating (a huge duration from the spec must not panic).
pub(crate) fn after(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

struct Machine<'a> {
    t: &'a Timing,
    o: &'a Observed,
    now: Timestamp,
    s: CanaryStatus,
    events: Vec<CanaryEvent>,
    primary: PrimaryAction,
}

impl Machine<'_> {
    fn run(&mut self) {
        let Some(primary) = self.o.primary.clone() else {
            return self.initialize();
        };
        if let Some(hash) = &primary.hash {
            self.s.stable_id = Some(hash.clone());
        }
        if self.s.phase == CanaryPhase::Initializing {
            if !primary.ready {
                self.s.message = Some("waiting for the primary's pods".into());
                return;
            }
            self.go(CanaryPhase::Idle, "primary ready; it serves the current template");
            self.event(EventKind::Normal, "Initialized", "primary created from the current template".into());
        }
        let new_command = self.take_command();
        self.pause_or_resume(new_command);
        if self.s.phase == CanaryPhase::Promoting && self.s.run_id.as_deref() == Some(&self.o.target_hash) {
            if new_command == Some(Command::Abort) {
                return self.abort_promotion(&primary);
            }
            return self.promoting(&primary);
        }
        if self.s.stable_id.as_deref() == Some(&self.o.target_hash) {
            return self.settle_on_stable();
        }
        let same_run = self.s.run_id.as_deref() == Some(&self.o.target_hash);
        let over = same_run && matches!(self.s.phase, CanaryPhase::RolledBack | CanaryPhase::Failed);
        if over && new_command == Some(Command::Retry) {
            self.event(EventKind::Normal, "Retried", format!("template {} run again by command", self.o.target_hash));
            self.s.paused = false;
            self.start_run();
            return self.advance(&primary);
        }
        if over {
            self.s.weight = 0;
            return;
        }
        if !same_run || !is_active(self.s.phase) {
            if self.s.phase == CanaryPhase::Waiting && same_run && new_command.is_some() {
                return self.command_while_waiting(new_command, &primary);
            }
            if !self.rollout_confirmed() {
                return;
            }
            self.start_run();
        }
        if let Some(command) = new_command {
            self.promote_or_abort(command);
        }
        self.advance(&primary);
    }

    fn initialize(&mut self) {
        self.primary = PrimaryAction::Create;
        self.s.weight = 0;
        if self.s.phase != CanaryPhase::Initializing {
            self.go(CanaryPhase::Initializing, "creating the primary from the current template");
        }
    }

    /// Returns a command not acted on yet (each annotation value is acted on once).
    fn take_command(&mut self) -> Option<Command> {
        let request = self.o.command.as_ref()?;
        if self.s.last_command.as_deref() == Some(&request.raw) {
            return None;
        }
        self.s.last_command = Some(request.raw.clone());
        if request.command.is_none() {
            let message = format!("unknown canary command {:?}: expected {}", request.raw, crate::command::verbs());
            self.event(EventKind::Warning, "UnknownCommand", message);
        }
        request.command
    }

    fn pause_or_resume(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Pause) if !self.s.paused => {
                self.s.paused = true;
                self.s.deadline = None;
                self.s.message = Some("paused by command".into());
                self.event(EventKind::Normal, "Paused", "canary paused by command".into());
            }
            Some(Command::Resume) if self.s.paused => {
                self.s.paused = false;
                if is_active(self.s.phase) {
                    self.s.deadline = Some(Time(after(self.now, self.t.progress_deadline)));
                }
                self.s.message = Some("resumed by command".into());
                self.event(EventKind::Normal, "Resumed", "canary resumed by command".into());
            }
            _ => {}
        }
    }

    fn promote_or_abort(&mut self, command: Command) {
        if matches!(command, Command::Promote | Command::PromoteFull | Command::Abort) {
            self.s.paused = false;
        }
        match command {
            Command::Promote => {
                let stage = self.s.stage_index.unwrap_or(0) + 1;
                self.event(EventKind::Normal, "StagePromoted", format!("stage {stage} passed by command"));
                self.next_stage();
            }
            Command::PromoteFull => {
                self.s.gate = None;
                self.go(CanaryPhase::Promoting, "promotion asked by command: skipping remaining stages");
                self.event(EventKind::Normal, "Promoting", "promotion asked by command".into());
            }
            Command::Abort => self.roll_back("Aborted", "aborted by command".into()),
            // Retry acts only on a rolled-back run (see `run`); on an active one there is nothing to retry.
            Command::Retry => self.event(
                EventKind::Warning,
                "RetryIgnored",
                "retry: this template's run is not rolled back or failed; nothing to retry".into(),
            ),
            Command::Pause | Command::Resume => {}
        }
    }

    /// An abort while the primary rolls out the new template: back to the template it ran before, whose pods the
    /// rollout has not all replaced yet (as `kubectl rollout undo` would). Refused, loudly, when no ReplicaSet holds
    /// that template any more.
    fn abort_promotion(&mut self, primary: &Workload) {
        self.s.paused = false;
        if primary.hash.as_deref() != self.s.run_id.as_deref() {
            // The primary was not given the new template yet: it still runs the stable one.
            return self.roll_back("Aborted", "aborted during promotion, before the primary changed".into());
        }
        if !self.o.primary_restorable {
            let message = "abort refused: no ReplicaSet of the primary holds its previous template any more, so the \
                           promotion goes on (roll the target back to start a new run)";
            self.event(EventKind::Warning, "AbortRefused", message.into());
            return self.promoting(primary);
        }
        self.primary = PrimaryAction::Restore;
        self.roll_back("Aborted", "aborted during promotion: the primary goes back to its previous template".into());
    }

    fn settle_on_stable(&mut self) {
        let succeeded = self.s.phase == CanaryPhase::Succeeded && self.s.run_id == self.s.stable_id;
        self.s.weight = 0;
        if succeeded || self.s.phase == CanaryPhase::Idle {
            return;
        }
        if is_active(self.s.phase) {
            self.event(EventKind::Normal, "RunCancelled", "the target's template is the stable one again".into());
        }
        self.s.stage = None;
        self.s.stage_index = None;
        self.s.gate = None;
        self.go(CanaryPhase::Idle, "the primary serves the target's template");
    }

    fn start_run(&mut self) {
        let restarted = is_active(self.s.phase);
        self.s.run_id = Some(self.o.target_hash.clone());
        self.s.failed_checks = 0;
        self.s.analyses.clear();
        self.s.started_at = Some(Time(self.now));
        self.s.stage_started_at = None;
        self.s.last_check_at = None;
        self.s.last_quick_check_at = None;
        self.s.hooks.clear();
        self.s.gate = None;
        let (reason, message) = if restarted {
            ("RunRestarted", format!("new template {} during a run: analysis restarts", self.o.target_hash))
        } else {
            ("RunStarted", format!("new template {}: canary run started", self.o.target_hash))
        };
        self.event(EventKind::Normal, reason, message);
        self.enter_stage(0);
    }

    fn enter_stage(&mut self, index: usize) {
        let weight = self.t.stages.get(index).copied().unwrap_or(100);
        self.s.stage_index = Some(index as u32);
        self.s.stage = Some(format!("{}/{}", index + 1, self.t.stages.len()));
        self.s.weight = weight;
        self.s.last_quick_check_at = None;
        self.s.gate = None;
        self.go(CanaryPhase::WaitingForPods, &format!("scaling the canary to {weight}% (stage {})", index + 1));
    }

    fn advance(&mut self, primary: &Workload) {
        if self.s.paused {
            let stage = self.s.stage.clone().unwrap_or_default();
            self.s.message = Some(format!("paused at stage {stage}"));
            return;
        }
        if self.s.gate.is_some() && self.s.phase == CanaryPhase::Progressing {
            // A run held by a gate is waiting for someone, not stalled: no deadline while the checks keep passing.
            self.s.deadline = Some(Time(after(self.now, self.t.progress_deadline)));
        }
        let deadline = self.s.deadline.get_or_insert(Time(after(self.now, self.t.progress_deadline))).0;
        if self.now >= deadline {
            return self.deadline_exceeded();
        }
        if let Some(name) = self.o.hooks.rollback_asked() {
            return self.roll_back("RolledBack", format!("rolled back by webhook {name}"));
        }
        match self.s.phase {
            CanaryPhase::WaitingForPods if self.o.canary_ready && primary.ready => {
                if !self.pre_rollout_passed() {
                    return;
                }
                self.s.stage_started_at = Some(Time(self.now));
                self.s.last_check_at = Some(Time(ceil_second(self.now)));
                self.s.last_quick_check_at = None;
                let message = format!("holding {}% for {:?}, then analysing", self.s.weight, self.t.step_interval);
                self.go(CanaryPhase::Progressing, &message);
            }
            CanaryPhase::Progressing => self.judge(),
            CanaryPhase::Promoting => self.promoting(primary),
            _ => {}
        }
    }

    fn judge(&mut self) {
        let Some(record) = self.o.analysis.clone() else { return };
        if self.o.quick {
            return self.judge_quick(record);
        }
        self.s.last_check_at = Some(Time(ceil_second(self.now)));
        let summary = summarize(&record);
        let verdict = record.verdict;
        self.keep(record);
        match verdict {
            CheckVerdict::Pass if self.gate_open() => self.next_stage(),
            CheckVerdict::Pass => {}
            CheckVerdict::NoData => self.s.message = Some(format!("holding: {summary}")),
            CheckVerdict::Fail => self.check_failed(&summary, ""),
        }
    }

    /// A quick check within the step: only a failure counts (and is kept); a pass or no data waits for the step.
    fn judge_quick(&mut self, record: AnalysisRecord) {
        self.s.last_quick_check_at = Some(Time(self.now));
        if record.verdict == CheckVerdict::Fail {
            let summary = summarize(&record);
            self.keep(record);
            self.check_failed(&summary, " (quick check within the step)");
        }
    }

    fn keep(&mut self, record: AnalysisRecord) {
        self.s.analyses.insert(0, record);
        self.s.analyses.truncate(KEPT_ANALYSES);
    }

    fn check_failed(&mut self, summary: &str, when: &str) {
        self.s.failed_checks += 1;
        let counts = format!("{}/{}", self.s.failed_checks, self.t.failure_limit);
        if self.s.failed_checks >= self.t.failure_limit {
            return self.roll_back("RolledBack", format!("{counts} failed checks{when}, last: {summary}"));
        }
        self.s.message = Some(format!("failed check {counts}{when}: {summary}"));
        self.event(EventKind::Warning, "CheckFailed", format!("failed check {counts}{when}: {summary}"));
    }

    fn next_stage(&mut self) {
        let index = self.s.stage_index.unwrap_or(0) as usize;
        if index + 1 < self.t.stages.len() {
            self.event(
                EventKind::Normal,
                "StageAdvanced",
                format!("stage {} passed; going to {}%", index + 1, self.t.stages[index + 1]),
            );
            return self.enter_stage(index + 1);
        }
        self.s.gate = None;
        self.go(CanaryPhase::Promoting, "every stage passed: promoting");
        self.event(EventKind::Normal, "Promoting", "every stage passed".into());
        self.primary = PrimaryAction::Promote;
    }

    fn promoting(&mut self, primary: &Workload) {
        self.primary = PrimaryAction::Promote;
        if primary.hash == self.s.run_id && primary.ready {
            self.s.stable_id = self.s.run_id.clone();
            self.s.weight = 0;
            self.go(CanaryPhase::Succeeded, "promoted: the primary serves the new template");
            self.event(EventKind::Normal, "Promoted", "primary serves the new template; canary scaled to zero".into());
            self.primary = PrimaryAction::Keep;
            return;
        }
        let deadline = self.s.deadline.get_or_insert(Time(after(self.now, self.t.progress_deadline))).0;
        if self.now >= deadline {
            self.primary = PrimaryAction::Keep;
            self.deadline_exceeded();
        }
    }

    fn roll_back(&mut self, reason: &'static str, message: String) {
        self.s.weight = 0;
        self.s.gate = None;
        self.go(CanaryPhase::RolledBack, &message);
        self.event(EventKind::Warning, reason, message);
    }

    fn deadline_exceeded(&mut self) {
        let phase = format!("{:?}", self.s.phase);
        let last = self.s.message.clone().unwrap_or_default();
        let message = format!("no progress within {:?} in phase {phase} (last: {last})", self.t.progress_deadline);
        self.s.weight = 0;
        self.s.gate = None;
        self.go(CanaryPhase::Failed, &message);
        self.event(EventKind::Warning, "DeadlineExceeded", message);
    }

    fn go(&mut self, phase: CanaryPhase, message: &str) {
        self.s.phase = phase;
        self.s.last_transition_at = Some(Time(self.now));
        self.s.deadline = (is_active(phase) && !self.s.paused).then(|| Time(after(self.now, self.t.progress_deadline)));
        self.s.message = Some(message.to_string());
    }

    fn event(&mut self, kind: EventKind, reason: &'static str, message: String) {
        self.events.push(CanaryEvent { kind, reason, message });
    }
}

/// One line about an analysis: the checks that did not pass, or `all checks passed`.
pub fn summarize(record: &AnalysisRecord) -> String {
    let bad: Vec<String> = record
        .checks
        .iter()
        .filter(|c| c.verdict != CheckVerdict::Pass)
        .map(|c| match (&c.value, &c.reason) {
            (_, Some(reason)) => format!("{}: {reason}", c.name),
            (Some(v), None) => format!("{} {v} (want {})", c.name, c.threshold),
            (None, None) => format!("{}: no data", c.name),
        })
        .collect();
    if bad.is_empty() { "all checks passed".into() } else { bad.join("; ") }
}

#[path = "machine_gates.rs"]
mod gates;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
