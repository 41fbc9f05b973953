//! The machine's gates and hooks: what the run's webhooks answered (see [`crate::hooks`]) decides whether a new
//! template's run starts, the first hold begins, a passed stage advances, or the run rolls back.

use super::*;

impl Machine<'_> {
    /// A new template's `confirm-rollout` webhooks (if it has any) all answered 2xx; else the run waits for them
    /// (phase `Waiting`, no deadline), or a `rollback` webhook ends it before it starts.
    pub(super) fn rollout_confirmed(&mut self) -> bool {
        if !self.t.hook_types.contains(&HookType::ConfirmRollout) {
            return true;
        }
        let results = self.o.hooks.confirm_rollout.as_deref();
        if results.is_some_and(hooks::all_succeeded) {
            if self.s.phase == CanaryPhase::Waiting {
                self.event(EventKind::Normal, "GateOpened", "confirm-rollout webhooks answered: the run starts".into());
            }
            return true;
        }
        let waiting = self.s.phase == CanaryPhase::Waiting && self.s.run_id.as_deref() == Some(&self.o.target_hash);
        if !waiting {
            self.s.run_id = Some(self.o.target_hash.clone());
            self.s.analyses.clear();
            self.s.hooks.clear();
            self.s.failed_checks = 0;
            self.s.stage = None;
            self.s.stage_index = None;
            self.s.weight = 0;
            self.s.gate = Some(HookType::ConfirmRollout);
            self.go(CanaryPhase::Waiting, "waiting for the confirm-rollout webhooks");
            let message = format!("new template {} waits for its confirm-rollout webhooks", self.o.target_hash);
            self.event(EventKind::Normal, "GateHeld", message);
        }
        if let Some(name) = self.o.hooks.rollback_asked() {
            self.roll_back("RolledBack", format!("rolled back by webhook {name} before the run started"));
            return false;
        }
        if let Some(records) = results {
            self.s.message = Some(format!("waiting for the confirm-rollout webhooks: {}", hooks::summary(records)));
        }
        false
    }

    /// A command to a run waiting for its confirm-rollout webhooks: `promote` (or `promote-full`) starts it as the
    /// webhooks would, `abort` ends it before it starts; the others change nothing here.
    pub(super) fn command_while_waiting(&mut self, command: Option<Command>, primary: &Workload) {
        match command {
            Some(Command::Promote | Command::PromoteFull) => {
                self.event(EventKind::Normal, "GateOpened", "confirm-rollout passed by command: the run starts".into());
                self.s.paused = false;
                self.start_run();
                self.advance(primary);
            }
            Some(Command::Abort) => self.roll_back("Aborted", "aborted by command before the run started".into()),
            _ => {}
        }
    }

    /// Before the first stage's hold: its `pre-rollout` webhooks have all answered 2xx in this run. A failure counts
    /// toward `failureLimit`; they are called again a step interval later.
    pub(super) fn pre_rollout_passed(&mut self) -> bool {
        let first = self.s.stage_index.unwrap_or(0) == 0;
        if !first || !self.t.hook_types.contains(&HookType::PreRollout) {
            return true;
        }
        if hooks::all_succeeded(&hooks::of_kind(&self.s.hooks, HookType::PreRollout)) {
            return true;
        }
        match self.o.hooks.pre_rollout.as_deref() {
            Some(records) if hooks::all_succeeded(records) => true,
            Some(records) => {
                let summary = hooks::summary(records);
                self.check_failed(&summary, " (pre-rollout)");
                false
            }
            None => {
                self.s.message = Some("waiting to call the pre-rollout webhooks again".into());
                false
            }
        }
    }

    /// After a passed analysis: the stage's gate (`confirm-traffic-increase`, or `confirm-promotion` at the last
    /// stage) answered 2xx, or the spec has none. A held gate keeps the stage (its checks go on).
    pub(super) fn gate_open(&mut self) -> bool {
        let index = self.s.stage_index.unwrap_or(0) as usize;
        let gate = hooks::stage_gate(self.t.stages.len(), index);
        if !self.t.hook_types.contains(&gate) {
            return true;
        }
        let results = self.o.hooks.gate.as_deref();
        if results.is_some_and(hooks::all_succeeded) {
            if self.s.gate.take().is_some() {
                self.event(EventKind::Normal, "GateOpened", format!("{} webhooks answered", gate.name()));
            }
            return true;
        }
        let why = results.map_or_else(|| "not called".to_string(), hooks::summary);
        let stage = index + 1;
        if self.s.gate != Some(gate) {
            self.event(
                EventKind::Normal,
                "GateHeld",
                format!("stage {stage} passed; held by its {} webhooks: {why}", gate.name()),
            );
        }
        self.s.gate = Some(gate);
        self.s.message = Some(format!("stage {stage} passed; held by its {} webhooks: {why}", gate.name()));
        false
    }

    /// Keeps the latest call of each webhook.
    pub(super) fn remember(&mut self, records: Vec<HookRecord>) {
        for r in records {
            match self.s.hooks.iter_mut().find(|h| h.name == r.name) {
                Some(slot) => *slot = r,
                None => self.s.hooks.push(r),
            }
        }
    }
}
