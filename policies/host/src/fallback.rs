//! What to publish after an evaluation, from the profile's `onFailure`. Pure, so the operator's reconcile and its
//! tests share it.

use perf_operator_api::PolicyFailureMode;

/// The value to publish and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Publish<T> {
    /// The policy's new decision.
    Decision(T),
    /// The evaluation failed; the last decision that succeeded is kept.
    LastGood(T),
    /// The evaluation failed (or there is no good decision yet); the spec values apply.
    Spec(T),
    /// The evaluation failed and the profile says `FailClosed`: publish nothing new, mark the component not ready.
    Withhold,
}

impl<T> Publish<T> {
    /// The value to publish, if any.
    pub fn value(&self) -> Option<&T> {
        match self {
            Publish::Decision(v) | Publish::LastGood(v) | Publish::Spec(v) => Some(v),
            Publish::Withhold => None,
        }
    }

    /// Fixed label for status and metrics.
    pub fn source(&self) -> &'static str {
        match self {
            Publish::Decision(_) => "policy",
            Publish::LastGood(_) => "last_good",
            Publish::Spec(_) => "spec",
            Publish::Withhold => "withheld",
        }
    }
}

/// The decision on success; otherwise what `mode` says, given the last good decision and the spec values.
pub fn publish<T: Clone, E>(
    result: Result<T, E>,
    mode: PolicyFailureMode,
    last_good: Option<&T>,
    spec: &T,
) -> Publish<T> {
    match result {
        Ok(decision) => Publish::Decision(decision),
        Err(_) => on_failure(mode, last_good, spec),
    }
}

/// What to publish when the evaluation failed.
pub fn on_failure<T: Clone>(mode: PolicyFailureMode, last_good: Option<&T>, spec: &T) -> Publish<T> {
    match (mode, last_good) {
        (PolicyFailureMode::KeepLastGood, Some(good)) => Publish::LastGood(good.clone()),
        (PolicyFailureMode::KeepLastGood, None) | (PolicyFailureMode::UseSpec, _) => Publish::Spec(spec.clone()),
        (PolicyFailureMode::FailClosed, _) => Publish::Withhold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PolicyFailureMode::*;

    #[test]
    fn success_publishes_the_decision_whatever_the_mode() {
        for mode in [KeepLastGood, UseSpec, FailClosed] {
            assert_eq!(publish(Ok::<_, ()>(3), mode, Some(&2), &1), Publish::Decision(3));
        }
    }

    #[test]
    fn failure_follows_the_mode() {
        let cases = [
            (KeepLastGood, Some(2), Publish::LastGood(2)),
            (KeepLastGood, None, Publish::Spec(1)),
            (UseSpec, Some(2), Publish::Spec(1)),
            (FailClosed, Some(2), Publish::Withhold),
        ];
        for (mode, last_good, expected) in cases {
            assert_eq!(publish(Err(()), mode, last_good.as_ref(), &1), expected, "{mode:?}");
        }
        assert_eq!(Publish::<u32>::Withhold.value(), None);
        assert_eq!(Publish::Spec(1).source(), "spec");
    }
}
