//! When a run looks at Prometheus: the full analysis once per step interval, which alone can advance a stage, and
//! the quick checks within the step (`analysis.checkInterval`), which can only count failures. A bad canary so rolls
//! back within a few scrapes of turning bad, whatever the step length, while promotion still needs a whole step.

use std::time::Duration;

use jiff::Timestamp;
use perf_operator_api::duration::parse_duration;
use perf_operator_api::{CanaryPhase, CanarySpec, CanaryStatus};

use crate::machine::{Timing, after};

/// The quick-check cadence when the spec gives none and the scrape interval is unknown.
const FALLBACK: Duration = Duration::from_secs(30);
/// Shortest cadence, as the CRD's floor: each check is a batch of queries on a Prometheus other tenants share.
const FLOOR: Duration = Duration::from_secs(2);

/// The quick-check cadence of `spec`: its `checkInterval`, else two scrape intervals of the source. Zero (off) when
/// it is `0s` or not shorter than the step interval.
pub fn check_interval(spec: &CanarySpec, step_interval: Duration, scrape_interval: Option<Duration>) -> Duration {
    let declared = spec.analysis.check_interval.as_deref().and_then(|text| parse_duration(text).ok());
    let interval = match declared {
        Some(d) if d.is_zero() => return Duration::ZERO,
        Some(d) => d,
        None => scrape_interval.map_or(FALLBACK, |s| s * 2),
    };
    let interval = interval.max(FLOOR);
    if interval < step_interval { interval } else { Duration::ZERO }
}

/// True when the current stage has held for a step interval since it began or was last analysed.
pub fn analysis_due(timing: &Timing, status: &CanaryStatus, now: Timestamp) -> bool {
    status.phase == CanaryPhase::Progressing
        && !status.paused
        && status.last_check_at.as_ref().is_none_or(|at| now >= after(at.0, timing.step_interval))
}

/// True when a quick check is due and the full analysis is not.
pub fn quick_check_due(timing: &Timing, status: &CanaryStatus, now: Timestamp) -> bool {
    next_quick_check(timing, status).is_some_and(|at| now >= at) && !analysis_due(timing, status, now)
}

/// When the next quick check is due, if quick checks are on and the stage is holding.
fn next_quick_check(timing: &Timing, status: &CanaryStatus) -> Option<Timestamp> {
    if timing.check_interval.is_zero() || status.phase != CanaryPhase::Progressing || status.paused {
        return None;
    }
    let since = status.last_check_at.as_ref()?.0;
    let last = status.last_quick_check_at.as_ref().map_or(since, |t| t.0.max(since));
    Some(after(last, timing.check_interval))
}

/// `{{interval}}` of a quick check: the data gathered since the hold began or the last full analysis, in whole
/// seconds (at least one).
pub fn quick_window(status: &CanaryStatus, now: Timestamp) -> String {
    let since = status.last_check_at.as_ref().map_or(now, |t| t.0);
    let seconds = now.duration_since(since).as_secs().max(1);
    format!("{seconds}s")
}

/// The longest poll of a run waiting for pods.
const POD_WAIT_CEILING: Duration = Duration::from_secs(30);
/// No run under way (idle, or the run over): nothing of the canary's own is due. What starts the next run (a new
/// template of the target, a command on the profile) comes as a watch event, so the profile's resync governs.
pub const NOTHING_DUE: Duration = Duration::from_secs(24 * 3600);

/// When the controller should look again.
pub fn requeue_after(timing: &Timing, status: &CanaryStatus, now: Timestamp) -> Duration {
    let poll = pod_wait(timing, status, now);
    match status.phase {
        _ if status.paused => Duration::from_secs(30),
        CanaryPhase::Progressing => {
            let analysis = status.last_check_at.as_ref().map_or(now, |at| after(at.0, timing.step_interval));
            let next = next_quick_check(timing, status).map_or(analysis, |quick| quick.min(analysis));
            let wait = next.duration_since(now);
            Duration::try_from(wait).unwrap_or_default().max(Duration::from_millis(200))
        }
        CanaryPhase::Initializing | CanaryPhase::WaitingForPods | CanaryPhase::Promoting => poll,
        // Waiting for a confirm-rollout gate: polled once per step interval, as Flagger polls at each interval.
        CanaryPhase::Waiting => timing.step_interval.max(Duration::from_secs(1)),
        _ => NOTHING_DUE,
    }
}

/// Poll of a run waiting for pods (the primary's, the canary's, a promotion's): every 2 s (at most the step) at
/// first, then a quarter of the time waited so far up to [`POD_WAIT_CEILING`], never past the deadline. The owned
/// Deployments' status changes start a round at once (the controller watches them), so the poll is only a net; a
/// fixed 2 s poll let hundreds of runs waiting together (a start, many profiles created at once, pods that cannot
/// be scheduled) fill the reconcile slots and the API budget ahead of new profiles.
fn pod_wait(timing: &Timing, status: &CanaryStatus, now: Timestamp) -> Duration {
    let first = Duration::from_secs(2).min(timing.step_interval).max(Duration::from_millis(500));
    let waited = status.last_transition_at.as_ref().and_then(|t| Duration::try_from(now.duration_since(t.0)).ok());
    let waited = waited.unwrap_or_default();
    let poll = (waited / 4).clamp(first, POD_WAIT_CEILING.max(first));
    let to_deadline = status.deadline.as_ref().map(|d| Duration::try_from(d.0.duration_since(now)).unwrap_or_default());
    match to_deadline {
        Some(left) => poll.min(left.max(Duration::from_millis(200))),
        None => poll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn spec(check: Option<&str>) -> CanarySpec {
        let mut spec = CanarySpec::default();
        spec.analysis.check_interval = check.map(String::from);
        spec
    }

    #[test]
    fn the_cadence_comes_from_the_spec_or_the_scrape_interval() {
        let step = Duration::from_secs(60);
        let s = Duration::from_secs;
        assert_eq!(check_interval(&spec(None), step, Some(s(15))), s(30));
        assert_eq!(check_interval(&spec(None), step, Some(s(1))), s(2));
        assert_eq!(check_interval(&spec(None), step, None), s(30));
        assert_eq!(check_interval(&spec(Some("5s")), step, Some(s(15))), s(5));
        assert_eq!(check_interval(&spec(Some("100ms")), step, None), s(2), "floored");
        assert_eq!(check_interval(&spec(Some("0s")), step, Some(s(1))), Duration::ZERO, "off");
        assert_eq!(check_interval(&spec(Some("1m")), step, None), Duration::ZERO, "not shorter than the step");
        assert_eq!(check_interval(&spec(None), s(20), Some(s(15))), Duration::ZERO, "two scrapes exceed a 20s step");
    }

    fn holding(since: i64, quick: Option<i64>) -> CanaryStatus {
        let at = |secs| Time(Timestamp::from_second(secs).unwrap());
        CanaryStatus {
            phase: CanaryPhase::Progressing,
            last_check_at: Some(at(since)),
            last_quick_check_at: quick.map(at),
            ..CanaryStatus::default()
        }
    }

    fn timing(step: u64, check: u64) -> Timing {
        Timing {
            stages: vec![10, 100],
            step_interval: Duration::from_secs(step),
            progress_deadline: Duration::from_secs(600),
            failure_limit: 2,
            check_interval: Duration::from_secs(check),
            hook_types: Vec::new(),
        }
    }

    #[test]
    fn a_run_waiting_for_pods_polls_less_the_longer_it_waits_and_never_past_its_deadline() {
        let t = timing(60, 0);
        let at = |secs| Time(Timestamp::from_second(secs).unwrap());
        let s = Duration::from_secs;
        let waiting = |phase, since, deadline: Option<i64>| CanaryStatus {
            phase,
            last_transition_at: Some(at(since)),
            deadline: deadline.map(at),
            ..CanaryStatus::default()
        };
        let now = Timestamp::from_second(1000).unwrap();
        for phase in [CanaryPhase::Initializing, CanaryPhase::WaitingForPods, CanaryPhase::Promoting] {
            assert_eq!(requeue_after(&t, &waiting(phase, 1000, None), now), s(2), "{phase:?}: at first");
            assert_eq!(requeue_after(&t, &waiting(phase, 992, None), now), s(2), "{phase:?}: 8 s in");
            assert_eq!(requeue_after(&t, &waiting(phase, 960, None), now), s(10), "{phase:?}: 40 s in");
            assert_eq!(requeue_after(&t, &waiting(phase, 0, None), now), s(30), "{phase:?}: capped");
            assert_eq!(requeue_after(&t, &waiting(phase, 0, Some(1005)), now), s(5), "{phase:?}: the deadline");
            let past = requeue_after(&t, &waiting(phase, 0, Some(990)), now);
            assert_eq!(past, Duration::from_millis(200), "{phase:?}: a deadline passed is looked at soon");
        }
        // No transition recorded (an old status), a transition in the future (clock skew): the first poll.
        let unknown = CanaryStatus { phase: CanaryPhase::Initializing, ..CanaryStatus::default() };
        assert_eq!(requeue_after(&t, &unknown, now), s(2));
        assert_eq!(requeue_after(&t, &waiting(CanaryPhase::Initializing, 2000, None), now), s(2));
        // A step shorter than 2 s polls at the step, floored at half a second.
        let short = Timing { step_interval: Duration::from_millis(300), ..timing(60, 0) };
        assert_eq!(requeue_after(&short, &unknown, now), Duration::from_millis(500));
        // Paused or idle: not a pod wait.
        let paused = CanaryStatus { paused: true, ..waiting(CanaryPhase::WaitingForPods, 1000, None) };
        assert_eq!(requeue_after(&t, &paused, now), s(30));
        for over in [CanaryPhase::Idle, CanaryPhase::Succeeded, CanaryPhase::RolledBack, CanaryPhase::Failed] {
            assert_eq!(requeue_after(&t, &waiting(over, 1000, None), now), NOTHING_DUE, "{over:?}: the resync's");
        }
    }

    #[test]
    fn quick_checks_run_between_full_analyses_and_never_instead_of_one() {
        let t = timing(60, 5);
        let at = |secs| Timestamp::from_second(secs).unwrap();
        let s = holding(1000, None);
        assert!(!quick_check_due(&t, &s, at(1004)));
        assert!(quick_check_due(&t, &s, at(1005)));
        assert_eq!(quick_window(&s, at(1005)), "5s");
        assert_eq!(requeue_after(&t, &s, at(1001)), Duration::from_secs(4));
        let s = holding(1000, Some(1005));
        assert!(!quick_check_due(&t, &s, at(1009)));
        assert!(quick_check_due(&t, &s, at(1010)));
        assert_eq!(quick_window(&s, at(1010)), "10s", "the window covers the whole hold so far");
        // At the end of the step the full analysis runs, not a quick check.
        let s = holding(1000, Some(1055));
        assert!(analysis_due(&t, &s, at(1060)) && !quick_check_due(&t, &s, at(1060)));
        assert_eq!(requeue_after(&t, &s, at(1058)), Duration::from_secs(2));
        // Off, paused, or not holding: none.
        assert!(!quick_check_due(&timing(60, 0), &holding(1000, None), at(1030)));
        let paused = CanaryStatus { paused: true, ..holding(1000, None) };
        assert!(!quick_check_due(&t, &paused, at(1030)));
        let waiting = CanaryStatus { phase: CanaryPhase::WaitingForPods, ..holding(1000, None) };
        assert!(!quick_check_due(&t, &waiting, at(1030)));
    }
}
