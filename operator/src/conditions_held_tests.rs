//! The conditions of rounds that apply nothing: a refused spec, a held target, a suspended profile.

use super::*;

use super::tests::cond;

fn t(s: &str) -> Time {
    Time(s.parse().unwrap())
}

fn ready_and_running() -> Vec<Condition> {
    vec![
        cond(condition::READY, "False", "Progressing"),
        cond(condition::PROGRESSING, "True", "Working"),
        cond(condition::DEGRADED, "False", "Healthy"),
        cond(condition::CANARY_READY, "False", "Progressing"),
        cond(condition::CACHE_READY, "True", "RedisAvailable"),
    ]
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} in {conditions:?}"))
}

#[test]
fn a_suspended_profile_keeps_what_it_reported_and_says_it_is_suspended() {
    let now = t("2026-01-02T00:00:00Z");
    let previous = ready_and_running();
    let held = held(&previous, Hold::Suspended, Some(4), &now);
    for kept in [condition::READY, condition::DEGRADED, condition::CANARY_READY, condition::CACHE_READY] {
        assert_eq!(find(&held, kept), find(&previous, kept), "{kept} stays as the last round left it");
    }
    let progressing = find(&held, condition::PROGRESSING);
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "Suspended"));
    let suspended = find(&held, condition::SUSPENDED);
    assert_eq!((suspended.status.as_str(), suspended.message.as_str()), ("True", SUSPENDED_MESSAGE));
    assert_eq!(suspended.last_transition_time, now);
    assert_eq!(held.iter().filter(|c| c.type_ == condition::SUSPENDED).count(), 1);
    assert_eq!(phase(&held), "Suspended", "whatever else is true");

    // A second round while suspended changes nothing (no status write, no event).
    let again = super::held(&held, Hold::Suspended, Some(4), &t("2026-01-03T00:00:00Z"));
    assert_eq!(again, held);
}

#[test]
fn a_profile_suspended_before_its_first_round_is_neither_ready_nor_failed() {
    let held = held(&[], Hold::Suspended, Some(1), &t("2026-01-02T00:00:00Z"));
    assert_eq!(find(&held, condition::READY).status, "Unknown");
    assert_eq!(find(&held, condition::READY).reason, "Suspended");
    assert_eq!(phase(&held), "Suspended");
    let status = PerformanceProfileStatus { conditions: held, ..Default::default() };
    assert!(
        transitions(None, &status, &Warnings::of(Hold::Suspended)).iter().all(|c| !Warnings::Suspended.is_warning(c)),
        "suspending is the user's choice: no Warning event"
    );
}

#[test]
fn a_held_target_degrades_the_profile_naming_the_holder() {
    let message = "deployment web is already the target of profile first";
    let held = held(&ready_and_running(), Hold::TargetHeld(message), Some(4), &t("2026-01-02T00:00:00Z"));
    let ready = find(&held, condition::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str(), ready.message.as_str()),
        ("False", "TargetHeld", message)
    );
    assert_eq!(find(&held, condition::DEGRADED).status, "True");
    assert_eq!(phase(&held), "Degraded");
    assert!(Warnings::of(Hold::TargetHeld(message)).is_warning(ready));
    assert!(
        held.iter().all(|c| c.type_ != condition::CANARY_READY),
        "no component speaks for a profile that acts on nothing"
    );
}
