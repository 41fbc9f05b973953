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
/// Shortest cadence: a check per second is already one query batch per profile and second.
const FLOOR: Duration = Duration::from_secs(1);

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

/// When the controller should look again.
pub fn requeue_after(timing: &Timing, status: &CanaryStatus, now: Timestamp) -> Duration {
    let poll = Duration::from_secs(2).min(timing.step_interval).max(Duration::from_millis(500));
    match status.phase {
        _ if status.paused => Duration::from_secs(30),
        CanaryPhase::Progressing => {
            let analysis = status.last_check_at.as_ref().map_or(now, |at| after(at.0, timing.step_interval));
            let next = next_quick_check(timing, status).map_or(analysis, |quick| quick.min(analysis));
            let wait = next.duration_since(now);
            Duration::try_from(wait).unwrap_or_default().max(Duration::from_millis(200))
        }
        CanaryPhase::Initializing | CanaryPhase::WaitingForPods | CanaryPhase::Promoting => poll,
        _ => Duration::from_secs(60),
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
        assert_eq!(check_interval(&spec(Some("100ms")), step, None), s(1), "floored");
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
