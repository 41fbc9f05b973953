//! `RateLimitReady` as decided (what `plan` shows; the apply's outcome completes it).

use super::round::{Round, object_of};
use crate::conditions::Report;
use perf_operator_api::{EnforcementMode, condition::RATE_LIMIT_READY};

/// The condition before anything is applied.
pub fn decided(round: Option<&Round>) -> Report {
    // No section (at most an object of it left to delete): a section has at least one route.
    let Some(round) = round.filter(|r| !r.enforced.is_empty()) else {
        return Report::not_configured(RATE_LIMIT_READY);
    };
    if round.mode == EnforcementMode::Contract {
        return contract(round.enforced.len());
    }
    if let Some(e) = &round.not_expressible {
        return Report::failed(RATE_LIMIT_READY, "NotExpressible", format!("{e}; the object applied before stays"));
    }
    if let Some(refused) = &round.refused {
        return Report::failed(RATE_LIMIT_READY, "Refused", refused_message(&refused.message));
    }
    let object = round.apply.as_ref().and_then(|(r, _)| object_of(r)).map(|o| o.text()).unwrap_or_default();
    Report::ok(RATE_LIMIT_READY, "Planned", format!("{object} would enforce {} route(s)", round.enforced.len()))
}

/// Contract mode's condition.
fn contract(routes: usize) -> Report {
    Report::ok(
        RATE_LIMIT_READY,
        "Published",
        format!("{routes} route limit(s) in the app contract; the app enforces them"),
    )
}

/// The message of a refused rendering.
pub fn refused_message(answer: &str) -> String {
    format!(
        "the API server refused the rendered object: {answer}; it is not sent again until the limits or the spec change"
    )
}
