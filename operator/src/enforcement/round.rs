//! The enforcement of one round, decided from the spec, the published limits and the status (pure): what to
//! apply, what to delete, and what the API server refused before (never sent again until the rendering changes).

use super::{AdminDefaults, Enforced, NotExpressible, Rendered, backend, enforced};
use perf_operator_api::{EnforcementMode, PerformanceProfile, RateLimitStatus, RefusedObject, RouteLimit, WindowLimit};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// An object applied for a gateway, as `status.rateLimit.object` names it: `Kind/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

impl ObjectRef {
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, name) = text.split_once('/')?;
        (!kind.is_empty() && !name.is_empty()).then(|| Self { kind: kind.into(), name: name.into() })
    }
    pub fn text(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// What a round does about enforcement.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    pub mode: EnforcementMode,
    pub enforced: Vec<Enforced>,
    /// What to apply, with the sha256 of its object.
    pub apply: Option<(Rendered, String)>,
    /// The limits cannot be expressed by the backend: nothing new is applied (what was applied stays).
    pub not_expressible: Option<NotExpressible>,
    /// This rendering was refused by the API server before: it is not sent again.
    pub refused: Option<RefusedObject>,
    /// An object applied before that the profile no longer wants (the mode changed, or the section went).
    pub retire: Option<ObjectRef>,
}

/// The round, or None when the profile has no `rateLimit` section and nothing of it is left to delete.
pub fn decide(profile: &PerformanceProfile, published: Option<&[RouteLimit]>) -> Option<Round> {
    let previous = profile.status.as_ref().and_then(|s| s.rate_limit.as_ref());
    let applied_before = previous.and_then(|p| p.object.as_deref()).and_then(ObjectRef::parse);
    let Some(spec) = &profile.spec.rate_limit else {
        let retire = applied_before?;
        let round = Round {
            mode: EnforcementMode::Contract,
            enforced: Vec::new(),
            apply: None,
            not_expressible: None,
            refused: None,
            retire: Some(retire),
        };
        return Some(round);
    };
    let mode = spec.enforcement.as_ref().map(|e| e.mode).unwrap_or_default();
    let enforced = enforced(profile, published.unwrap_or(&spec.routes));
    let rendered = backend(profile, &AdminDefaults::default()).render(profile, &enforced);
    let (apply, not_expressible) = match rendered {
        Ok(Rendered::Contract) => (None, None),
        Ok(rendered) => {
            let sha = digest(&rendered);
            (Some((rendered, sha)), None)
        }
        Err(e) => (None, Some(e)),
    };
    let wanted = apply.as_ref().and_then(|(r, _)| object_of(r));
    let keeps_old = not_expressible.is_some() && mode != EnforcementMode::Contract;
    let retire = applied_before.filter(|old| Some(old) != wanted.as_ref() && !keeps_old);
    let refused =
        previous.and_then(|p| p.refused.clone()).filter(|r| apply.as_ref().is_some_and(|(_, sha)| *sha == r.sha256));
    Some(Round { mode, enforced, apply, not_expressible, refused, retire })
}

/// The object a rendering applies.
pub fn object_of(rendered: &Rendered) -> Option<ObjectRef> {
    match rendered {
        Rendered::Contract => None,
        Rendered::Policy { kind, name, .. } => Some(ObjectRef { kind: kind.clone(), name: name.clone() }),
        Rendered::ConfigMap { name, .. } => Some(ObjectRef { kind: "ConfigMap".into(), name: name.clone() }),
    }
}

fn digest(rendered: &Rendered) -> String {
    let object = rendered.object().map(Value::to_string).unwrap_or_default();
    hex::encode(Sha256::digest(object.as_bytes()))
}

impl Round {
    /// `status.rateLimit` after the round: `object` is what is applied now (the previous one while it could not be
    /// replaced), `refused` what the API server refused.
    pub fn status(
        &self,
        object: Option<String>,
        refused: Option<RefusedObject>,
        written_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) -> RateLimitStatus {
        RateLimitStatus {
            mode: self.mode,
            object,
            enforced: self
                .enforced
                .iter()
                .filter(|_| self.mode != EnforcementMode::Contract)
                .map(|e| (e.route.clone(), WindowLimit { requests: e.requests, window: e.window }))
                .collect(),
            refused,
            written_at,
        }
    }
}
