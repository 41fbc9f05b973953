//! The machine with a test clock: every transition.

use super::*;
use crate::analysis::{QueryContext, QueryError, checks, evaluate};
use perf_operator_api::{NoDataPolicy, Slo};

type Answers = Vec<Result<Option<f64>, QueryError>>;

/// A profile's canary as the machine sees it, with a clock the test moves.
struct Rollout {
    spec: CanarySpec,
    timing: Timing,
    status: CanaryStatus,
    now: Timestamp,
    world: Observed,
    answers: fn() -> Answers,
    events: Vec<&'static str>,
    weights: Vec<u32>,
    primary_action: PrimaryAction,
}

fn healthy() -> Answers {
    vec![Ok(Some(1000.0)), Ok(Some(0.05)), Ok(Some(0.0))]
}
fn slow() -> Answers {
    vec![Ok(Some(1000.0)), Ok(Some(0.4)), Ok(Some(0.0))]
}
fn no_traffic() -> Answers {
    vec![Ok(Some(0.0)), Ok(None), Ok(None)]
}
fn prometheus_down() -> Answers {
    let down = || Err(QueryError::Refused { at: "127.0.0.1:9".into() });
    vec![down(), down(), down()]
}

impl Rollout {
    /// Stages 10/25/50/100, 1m steps, 10m deadline, 2 failures; the primary serves `v1`, which is also the target.
    fn stable() -> Self {
        let spec = CanarySpec::default();
        let mut rollout = Self {
            timing: Timing::from_spec(&spec).unwrap(),
            spec,
            status: CanaryStatus::default(),
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            world: Observed {
                target_hash: "v1".into(),
                primary: Some(Workload { hash: Some("v1".into()), ready: true }),
                ..Observed::default()
            },
            answers: healthy,
            events: Vec::new(),
            weights: Vec::new(),
            primary_action: PrimaryAction::Keep,
        };
        rollout.step();
        rollout
    }

    fn with_no_data(mut self, policy: NoDataPolicy) -> Self {
        self.spec.analysis.on_no_data = policy;
        self
    }

    fn deploy(&mut self, hash: &str) -> &mut Self {
        self.world.target_hash = hash.into();
        self.world.canary_ready = false;
        self.step()
    }

    fn canary_pods_ready(&mut self) -> &mut Self {
        self.world.canary_ready = true;
        self.step()
    }

    fn prometheus(&mut self, answers: fn() -> Answers) -> &mut Self {
        self.answers = answers;
        self
    }

    fn command(&mut self, raw: &str) -> &mut Self {
        self.world.command = Some(parse_command(raw));
        self.step()
    }

    /// Moves the clock; runs the analysis the reconcile would run.
    fn wait(&mut self, seconds: i64) -> &mut Self {
        self.now = self.now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
        self.step()
    }

    /// Waits a step interval at a time until the phase changes (at most `limit` times).
    fn hold_until_phase_changes(&mut self, limit: usize) -> &mut Self {
        let phase = self.status.phase;
        for _ in 0..limit {
            self.wait(60);
            if self.status.phase != phase {
                break;
            }
        }
        self
    }

    /// Quick checks every `seconds` within a step.
    fn with_quick_checks(mut self, seconds: u64) -> Self {
        self.timing.check_interval = Duration::from_secs(seconds);
        self
    }

    fn step(&mut self) -> &mut Self {
        let full = analysis_due(&self.timing, &self.status, self.now);
        self.world.quick = !full && crate::cadence::quick_check_due(&self.timing, &self.status, self.now);
        self.world.analysis = (full || self.world.quick).then(|| {
            let ctx = QueryContext { namespace: "shop".into(), target: "web".into() };
            let analysis = evaluate(&checks(&self.spec, &Slo::default(), &ctx), (self.answers)());
            analysis.record(self.status.stage_index.unwrap_or(0), self.status.weight, self.now)
        });
        let decision = step(&self.timing, &self.status, &self.world, self.now);
        self.events.extend(decision.events.iter().map(|e| e.reason));
        if decision.status.weight != self.status.weight && decision.status.weight > 0 {
            self.weights.push(decision.status.weight);
        }
        self.primary_action = decision.primary;
        self.status = decision.status;
        if self.primary_action == PrimaryAction::Promote {
            // The primary Deployment takes the template; its pods come up on the next look.
            self.world.primary = Some(Workload { hash: Some(self.world.target_hash.clone()), ready: true });
        }
        self
    }

    /// Walks a stage: pods come up, the stage holds, then it is analysed.
    fn pass_stage(&mut self) -> &mut Self {
        self.canary_pods_ready();
        self.wait(60)
    }

    fn phase(&self) -> CanaryPhase {
        self.status.phase
    }
}

#[test]
fn first_sight_creates_the_primary_and_rolls_nothing_out() {
    let timing = Timing::from_spec(&CanarySpec::default()).unwrap();
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let mut world = Observed { target_hash: "v1".into(), ..Observed::default() };
    let first = step(&timing, &CanaryStatus::default(), &world, now);
    assert_eq!(
        (first.status.phase, first.primary, first.status.weight),
        (CanaryPhase::Initializing, PrimaryAction::Create, 0)
    );
    world.primary = Some(Workload { hash: Some("v1".into()), ready: false });
    let waiting = step(&timing, &first.status, &world, now);
    assert_eq!(waiting.status.phase, CanaryPhase::Initializing);
    world.primary = Some(Workload { hash: Some("v1".into()), ready: true });
    let ready = step(&timing, &waiting.status, &world, now);
    assert_eq!((ready.status.phase, ready.status.stable_id.as_deref()), (CanaryPhase::Idle, Some("v1")));
    assert_eq!(ready.events[0].reason, "Initialized");
}

#[test]
fn a_good_canary_walks_every_stage_and_is_promoted() {
    let mut r = Rollout::stable();
    r.deploy("v2");
    assert_eq!((r.phase(), r.status.weight), (CanaryPhase::WaitingForPods, 10));
    r.canary_pods_ready().wait(30);
    assert_eq!((r.phase(), r.status.analyses.len()), (CanaryPhase::Progressing, 0), "analysed before the hold ended");
    r.wait(30);
    for _ in 0..3 {
        r.pass_stage();
    }
    assert_eq!((r.phase(), r.primary_action), (CanaryPhase::Promoting, PrimaryAction::Promote));
    r.wait(1);
    assert_eq!((r.phase(), r.status.weight, r.status.stable_id.as_deref()), (CanaryPhase::Succeeded, 0, Some("v2")));
    assert_eq!(r.weights, [10, 25, 50, 100]);
    assert_eq!(r.events, ["RunStarted", "StageAdvanced", "StageAdvanced", "StageAdvanced", "Promoting", "Promoted"]);
    r.wait(3600);
    assert_eq!(r.phase(), CanaryPhase::Succeeded, "a promoted run stays done");
}

#[test]
fn failed_checks_up_to_the_limit_roll_back_and_the_rollback_is_final() {
    let mut r = Rollout::stable();
    r.prometheus(slow).deploy("v2").pass_stage();
    assert_eq!((r.phase(), r.status.failed_checks), (CanaryPhase::Progressing, 1));
    assert_eq!(r.status.analyses[0].checks[1].verdict, CheckVerdict::Fail);
    r.wait(60);
    assert_eq!((r.phase(), r.status.weight, r.status.stage.as_deref()), (CanaryPhase::RolledBack, 0, Some("1/4")));
    r.prometheus(healthy).wait(3600).wait(3600);
    assert_eq!((r.phase(), r.status.weight), (CanaryPhase::RolledBack, 0), "no new run for the same template");
    assert_eq!(r.events, ["RunStarted", "CheckFailed", "RolledBack"]);
    r.deploy("v3");
    assert_eq!((r.phase(), r.status.run_id.as_deref()), (CanaryPhase::WaitingForPods, Some("v3")));
}

#[test]
fn quick_checks_roll_a_bad_canary_back_within_the_step() {
    let mut r = Rollout::stable().with_quick_checks(5);
    r.prometheus(slow).deploy("v2").canary_pods_ready();
    r.wait(4);
    assert_eq!((r.phase(), r.status.failed_checks), (CanaryPhase::Progressing, 0), "checked before its cadence");
    r.wait(1);
    assert_eq!((r.phase(), r.status.failed_checks), (CanaryPhase::Progressing, 1));
    assert!(r.status.message.as_deref().unwrap_or_default().contains("quick check within the step"));
    r.wait(5);
    assert_eq!((r.phase(), r.status.stage.as_deref()), (CanaryPhase::RolledBack, Some("1/4")), "10 s, not 60 s");
    assert_eq!(r.events, ["RunStarted", "CheckFailed", "RolledBack"]);
    assert_eq!(r.status.analyses.len(), 2, "both failed quick checks are kept: {:?}", r.status.analyses);
}

#[test]
fn quick_checks_that_pass_or_see_no_data_never_advance_a_stage() {
    for answers in [healthy as fn() -> Answers, no_traffic, prometheus_down] {
        let mut r = Rollout::stable().with_quick_checks(5);
        r.prometheus(answers).deploy("v2").canary_pods_ready();
        for _ in 0..11 {
            r.wait(5);
        }
        assert_eq!((r.phase(), r.status.stage.as_deref()), (CanaryPhase::Progressing, Some("1/4")));
        assert_eq!((r.status.failed_checks, r.status.analyses.len()), (0, 0), "nothing counted nor kept");
        assert!(r.status.last_quick_check_at.is_some());
    }
    // The full analysis at the end of the step still advances a healthy canary.
    let mut r = Rollout::stable().with_quick_checks(5);
    r.deploy("v2").canary_pods_ready();
    for _ in 0..12 {
        r.wait(5);
    }
    assert_eq!((r.status.stage.as_deref(), r.status.last_quick_check_at.as_ref()), (Some("2/4"), None));
}

#[test]
fn prometheus_down_never_promotes_and_the_deadline_ends_the_run() {
    let mut r = Rollout::stable();
    r.prometheus(prometheus_down).deploy("v2").canary_pods_ready();
    r.hold_until_phase_changes(30);
    assert_eq!(r.phase(), CanaryPhase::Failed);
    assert_eq!(r.status.stage.as_deref(), Some("1/4"), "never went past the first stage");
    assert_eq!(r.status.failed_checks, 0, "an outage is not a failed check");
    assert!(r.status.message.as_deref().unwrap_or_default().contains("no progress within"));
    assert!(!r.events.contains(&"Promoting"));
}

#[test]
fn no_data_waits_under_wait_and_fails_under_fail() {
    let mut waits = Rollout::stable().with_no_data(NoDataPolicy::Wait);
    waits.prometheus(no_traffic).deploy("v2").pass_stage().wait(60).wait(60);
    assert_eq!((waits.phase(), waits.status.failed_checks), (CanaryPhase::Progressing, 0));
    assert!(waits.status.message.as_deref().unwrap_or_default().contains("too few requests"));
    waits.prometheus(healthy).wait(60);
    assert_eq!(waits.status.weight, 25, "traffic came back: the stage passes");

    let mut fails = Rollout::stable().with_no_data(NoDataPolicy::Fail);
    fails.prometheus(no_traffic).deploy("v2").pass_stage().wait(60);
    assert_eq!(fails.phase(), CanaryPhase::RolledBack);
}

#[test]
fn pause_holds_everything_and_resume_continues() {
    let mut r = Rollout::stable();
    r.deploy("v2").canary_pods_ready().command("pause@1");
    assert!(r.status.paused && r.status.deadline.is_none());
    r.wait(3600).wait(3600);
    assert_eq!((r.phase(), r.status.weight, r.status.analyses.len()), (CanaryPhase::Progressing, 10, 0));
    assert_eq!(condition(&r.status).reason, "Paused");
    r.command("resume@2");
    assert!(!r.status.paused && r.status.deadline.is_some());
    r.wait(1);
    assert_eq!(r.status.weight, 25);
    assert_eq!(r.events, ["RunStarted", "Paused", "Resumed", "StageAdvanced"]);
}

#[test]
fn each_command_value_is_acted_on_once() {
    let mut r = Rollout::stable();
    r.deploy("v2").command("abort@1");
    assert_eq!(r.phase(), CanaryPhase::RolledBack);
    r.deploy("v3").canary_pods_ready();
    assert_eq!(r.phase(), CanaryPhase::Progressing, "the abort left on the profile does not abort the next run");
    r.command("dance");
    assert_eq!(r.events.last(), Some(&"UnknownCommand"));
    assert_eq!(r.phase(), CanaryPhase::Progressing);
}

#[test]
fn abort_rolls_back_now() {
    let mut r = Rollout::stable();
    r.deploy("v2").pass_stage().command("abort@1");
    assert_eq!((r.phase(), r.status.weight), (CanaryPhase::RolledBack, 0));
    assert_eq!(r.events.last(), Some(&"Aborted"));
}

/// A run at its promotion, the primary rolling out `v2` with its new pods not ready yet.
fn promoting() -> Rollout {
    let mut r = Rollout::stable();
    r.deploy("v2").pass_stage().command("promote-full@1");
    assert_eq!((r.phase(), r.primary_action), (CanaryPhase::Promoting, PrimaryAction::Promote));
    r.world.primary = Some(Workload { hash: Some("v2".into()), ready: false });
    r
}

#[test]
fn abort_during_promotion_gives_the_primary_its_previous_template_back() {
    let mut r = promoting();
    r.world.primary_restorable = true;
    r.command("abort@2");
    assert_eq!((r.phase(), r.primary_action, r.status.weight), (CanaryPhase::RolledBack, PrimaryAction::Restore, 0));
    assert_eq!(r.events.last(), Some(&"Aborted"));
    // Restored: the primary runs v1 again; the run stays rolled back and nothing else is written.
    r.world.primary = Some(Workload { hash: Some("v1".into()), ready: true });
    r.wait(60);
    assert_eq!(
        (r.phase(), r.primary_action, r.status.stable_id.as_deref()),
        (CanaryPhase::RolledBack, PrimaryAction::Keep, Some("v1"))
    );
}

#[test]
fn abort_during_promotion_without_the_previous_template_is_refused_and_the_promotion_goes_on() {
    let mut r = promoting();
    r.world.primary_restorable = false;
    r.command("abort@2");
    assert_eq!((r.phase(), r.primary_action), (CanaryPhase::Promoting, PrimaryAction::Promote));
    assert_eq!(r.events.last(), Some(&"AbortRefused"));
    r.world.primary = Some(Workload { hash: Some("v2".into()), ready: true });
    r.wait(1);
    assert_eq!(r.phase(), CanaryPhase::Succeeded);
}

#[test]
fn abort_during_promotion_before_the_primary_changed_keeps_it() {
    let mut r = promoting();
    // The promotion's write has not reached the primary: it still runs v1.
    r.world.primary = Some(Workload { hash: Some("v1".into()), ready: true });
    r.command("abort@2");
    assert_eq!((r.phase(), r.primary_action), (CanaryPhase::RolledBack, PrimaryAction::Keep));
}

#[test]
fn promote_now_skips_the_remaining_stages() {
    let mut r = Rollout::stable();
    r.deploy("v2").pass_stage().command("promote-full@1");
    assert_eq!((r.phase(), r.primary_action), (CanaryPhase::Promoting, PrimaryAction::Promote));
    r.wait(1);
    assert_eq!((r.phase(), r.status.stable_id.as_deref()), (CanaryPhase::Succeeded, Some("v2")));
}

#[test]
fn a_new_template_mid_run_restarts_the_analysis_for_the_newest() {
    let mut r = Rollout::stable();
    r.prometheus(slow).deploy("v2").pass_stage().prometheus(healthy).wait(60);
    assert_eq!((r.status.weight, r.status.failed_checks), (25, 1));
    r.deploy("v3");
    let s = &r.status;
    assert_eq!(
        (s.phase, s.run_id.as_deref(), s.weight, s.failed_checks),
        (CanaryPhase::WaitingForPods, Some("v3"), 10, 0)
    );
    assert!(s.analyses.is_empty());
    assert_eq!(r.events.last(), Some(&"RunRestarted"));
}

#[test]
fn reverting_to_the_stable_template_cancels_the_run() {
    let mut r = Rollout::stable();
    r.deploy("v2").pass_stage().deploy("v1");
    assert_eq!((r.phase(), r.status.weight), (CanaryPhase::Idle, 0));
    assert_eq!(r.events.last(), Some(&"RunCancelled"));
}

#[test]
fn a_restarted_operator_resumes_from_status_alone() {
    let mut r = Rollout::stable();
    r.deploy("v2").pass_stage().canary_pods_ready();
    let saved = serde_json::to_string(&r.status).unwrap();
    r.status = serde_json::from_str(&saved).unwrap();
    r.events.clear();
    r.wait(60);
    assert_eq!((r.status.weight, r.status.stage.as_deref()), (50, Some("3/4")));
    assert_eq!(r.events, ["StageAdvanced"], "no new run after the restart");
}

#[test]
fn the_deadline_covers_waiting_for_pods() {
    let mut r = Rollout::stable();
    r.deploy("v2").wait(599);
    assert_eq!(r.phase(), CanaryPhase::WaitingForPods);
    assert!(r.status.deadline.is_some(), "status shows when the run will fail");
    r.wait(1);
    assert_eq!((r.phase(), r.status.weight), (CanaryPhase::Failed, 0));
    assert!(r.status.message.as_deref().unwrap_or_default().contains("WaitingForPods"));
    r.wait(3600);
    assert_eq!(r.phase(), CanaryPhase::Failed, "final for this template");
}

#[test]
fn requeue_follows_the_next_analysis() {
    let mut r = Rollout::stable();
    r.deploy("v2").canary_pods_ready().wait(45);
    assert_eq!(requeue_after(&r.timing, &r.status, r.now), Duration::from_secs(15));
}

#[test]
fn bad_spec_names_the_field() {
    let mut spec = CanarySpec { step_interval: "1 minute".into(), ..CanarySpec::default() };
    let err = Timing::from_spec(&spec).unwrap_err().to_string();
    assert!(err.starts_with("spec.canary.stepInterval"), "{err}");
    spec.step_interval = "1m".into();
    spec.stages = vec![50, 10, 100];
    assert!(Timing::from_spec(&spec).unwrap_err().to_string().starts_with("spec.canary.stages"));
}

#[test]
fn health_is_ready_when_true_failed_after_a_rollback_or_deadline_else_progressing() {
    let health = |phase, paused| {
        let c = condition(&CanaryStatus { phase, paused, ..CanaryStatus::default() });
        assert_eq!(c.status == "True", c.health == Health::Ready, "{c:?}");
        (c.reason, c.health)
    };
    assert_eq!(health(CanaryPhase::Idle, false), ("Stable", Health::Ready));
    assert_eq!(health(CanaryPhase::Succeeded, false), ("Promoted", Health::Ready));
    assert_eq!(health(CanaryPhase::Progressing, true), ("Paused", Health::Progressing));
    assert_eq!(health(CanaryPhase::WaitingForPods, false), ("Progressing", Health::Progressing));
    assert_eq!(health(CanaryPhase::Initializing, false), ("Initializing", Health::Progressing));
    assert_eq!(health(CanaryPhase::Promoting, false), ("Promoting", Health::Progressing));
    assert_eq!(health(CanaryPhase::RolledBack, false), ("RolledBack", Health::Failed));
    assert_eq!(health(CanaryPhase::Failed, false), ("DeadlineExceeded", Health::Failed));
}

#[test]
fn promote_passes_one_stage_and_promote_full_all_of_them() {
    let mut r = Rollout::stable();
    r.prometheus(no_traffic).deploy("v2").canary_pods_ready().wait(1);
    assert_eq!(r.status.stage.as_deref(), Some("1/4"));
    // Held on no data, `promote` passes this stage only: the next one is entered, its analysis to come.
    r.command("promote@1");
    assert_eq!((r.status.stage.as_deref(), r.status.weight), (Some("2/4"), 25));
    assert_eq!(r.events[r.events.len() - 2..], ["StagePromoted", "StageAdvanced"]);
    r.canary_pods_ready().wait(1);
    r.command("promote@2").canary_pods_ready().command("promote@3");
    assert_eq!(r.status.stage.as_deref(), Some("4/4"));
    // At the last stage, `promote` is the promotion.
    r.command("promote@4");
    assert_eq!((r.phase(), r.primary_action), (CanaryPhase::Promoting, PrimaryAction::Promote));
}

#[test]
fn retry_runs_a_rolled_back_template_again_from_the_first_stage() {
    let mut r = Rollout::stable();
    r.deploy("v2").command("abort@1");
    assert_eq!(r.phase(), CanaryPhase::RolledBack);
    r.wait(60);
    assert_eq!(r.phase(), CanaryPhase::RolledBack, "a rolled-back template stays rolled back");
    r.command("retry@2");
    let s = &r.status;
    assert_eq!(
        (s.phase, s.stage.as_deref(), s.weight, s.failed_checks),
        (CanaryPhase::WaitingForPods, Some("1/4"), 10, 0)
    );
    assert!(r.events.contains(&"Retried"), "{:?}", r.events);
    r.canary_pods_ready().wait(60);
    assert_eq!(r.status.stage.as_deref(), Some("2/4"), "the retried run walks its stages again");
    // On a run that is going, retry changes nothing but says so.
    r.command("retry@3");
    assert_eq!(r.events.last(), Some(&"RetryIgnored"));
    assert_eq!(r.status.stage.as_deref(), Some("2/4"));
}
