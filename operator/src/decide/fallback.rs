//! What to publish after an evaluation, from the profile's `onFailure`. Pure.
//!
//! | `onFailure`    | failed, with a last good decision | failed, never decided yet             |
//! |----------------|-----------------------------------|---------------------------------------|
//! | `KeepLastGood` | the last good decision            | the spec's values                     |
//! | `UseSpec`      | the spec's values                 | the spec's values                     |
//! | `FailClosed`   | the last good decision            | closed: nothing admitted, 0 requests/s |
//!
//! `FailClosed` never publishes a value the policy did not decide. Before the first decision it publishes the closed
//! values rather than nothing: a contract without limits would let every request through (fail open).

use perf_operator_api::{PolicyFailureMode, PublishedFrom};

/// The values a failed policy may fall back to.
pub struct Fallbacks<T> {
    pub last_good: Option<T>,
    pub spec: T,
    pub closed: T,
}

/// The decision on success; otherwise what `mode` says.
pub fn publish<T, E>(result: Result<T, E>, mode: PolicyFailureMode, fallbacks: Fallbacks<T>) -> (T, PublishedFrom) {
    match result {
        Ok(decision) => (decision, PublishedFrom::Policy),
        Err(_) => on_failure(mode, fallbacks),
    }
}

/// What to publish when the evaluation failed.
pub fn on_failure<T>(mode: PolicyFailureMode, f: Fallbacks<T>) -> (T, PublishedFrom) {
    match (mode, f.last_good) {
        (PolicyFailureMode::KeepLastGood | PolicyFailureMode::FailClosed, Some(good)) => {
            (good, PublishedFrom::LastGood)
        }
        (PolicyFailureMode::KeepLastGood, None) | (PolicyFailureMode::UseSpec, _) => (f.spec, PublishedFrom::Spec),
        (PolicyFailureMode::FailClosed, None) => (f.closed, PublishedFrom::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PolicyFailureMode::*;

    fn fallbacks(last_good: Option<u32>) -> Fallbacks<u32> {
        Fallbacks { last_good, spec: 1, closed: 0 }
    }

    #[test]
    fn success_publishes_the_decision_whatever_the_mode() {
        for mode in [KeepLastGood, UseSpec, FailClosed] {
            assert_eq!(publish(Ok::<_, ()>(3), mode, fallbacks(Some(2))), (3, PublishedFrom::Policy));
        }
    }

    #[test]
    fn failure_follows_the_mode_and_fail_closed_never_publishes_nothing() {
        let cases = [
            (KeepLastGood, Some(2), (2, PublishedFrom::LastGood)),
            (KeepLastGood, None, (1, PublishedFrom::Spec)),
            (UseSpec, Some(2), (1, PublishedFrom::Spec)),
            (UseSpec, None, (1, PublishedFrom::Spec)),
            (FailClosed, Some(2), (2, PublishedFrom::LastGood)),
            (FailClosed, None, (0, PublishedFrom::Closed)),
        ];
        for (mode, last_good, expected) in cases {
            assert_eq!(publish(Err(()), mode, fallbacks(last_good)), expected, "{mode:?} {last_good:?}");
        }
    }
}
