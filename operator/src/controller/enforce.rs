//! Apply of the rate-limit enforcement: Envoy Gateway's BackendTrafficPolicy (server-side apply when the type is
//! served, its status read back), the rate-limit service's ConfigMap, and deletion of the object a profile no longer
//! wants. A rendering the API server refuses is remembered by the decision (`status.rateLimit.refused`), so it is
//! not sent again round after round.

use super::Context;
use super::apply::{apply_if_changed, controlled_by, is_subset};
use crate::enforcement::Rendered;
use crate::enforcement::round::{ObjectRef, Round};
use crate::{Error, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use perf_operator_api::{FIELD_MANAGER, PerformanceProfile};
use serde_json::Value;

/// What Envoy Gateway says of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayStatus {
    /// Every ancestor (Gateway) accepted this generation.
    Accepted,
    /// No ancestor has reported on this generation yet.
    Waiting(String),
    /// An ancestor refused it: which, why.
    NotAccepted(String),
}

/// What applying did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing beyond the contract.
    Nothing,
    Policy {
        written: bool,
        gateway: GatewayStatus,
    },
    ConfigMap {
        written: bool,
    },
    /// `gateway.envoyproxy.io/v1alpha1` BackendTrafficPolicy is not served by this cluster.
    CrdMissing,
    /// The API server refused the object (its schema or CEL rules): its answer. `fresh`: refused this round.
    Refused {
        message: String,
        fresh: bool,
    },
    Failed(Error),
}

/// The round's outcome and the deletion of what it retired.
#[derive(Debug)]
pub struct Applied {
    pub outcome: Outcome,
    pub retired: Option<Result<()>>,
}

/// Brings the cluster to the round.
pub async fn apply(ctx: &Context, profile: &PerformanceProfile, round: &Round) -> Applied {
    let retired = match &round.retire {
        Some(old) => Some(retire(ctx, profile, old).await),
        None => None,
    };
    let outcome = match (&round.apply, &round.refused) {
        (Some(_), Some(refused)) => Outcome::Refused { message: refused.message.clone(), fresh: false },
        (Some((Rendered::Policy { api_version, kind, plural, name, object }, _)), None) => {
            let api = policy_api(ctx, profile, api_version, kind, plural);
            apply_policy(ctx, profile, &api, name, object).await
        }
        (Some((Rendered::ConfigMap { object, .. }, _)), None) => apply_config_map(ctx, object).await,
        _ => Outcome::Nothing,
    };
    Applied { outcome, retired }
}

fn policy_api(
    ctx: &Context,
    profile: &PerformanceProfile,
    api_version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    Api::namespaced_with(ctx.client.clone(), &namespace, &ApiResource::from_gvk_with_plural(&gvk, plural))
}

async fn apply_policy(
    ctx: &Context,
    profile: &PerformanceProfile,
    api: &Api<DynamicObject>,
    name: &str,
    desired: &Value,
) -> Outcome {
    let live = match ctx.gateway_unserved.list_named(api, name).await {
        Ok(Some(live)) => live,
        Ok(None) => return Outcome::CrdMissing,
        Err(e) => return Outcome::Failed(e.into()),
    };
    let uid = profile.uid().unwrap_or_default();
    if let Some(live) = &live {
        if !controlled_by(&live.metadata, &uid) {
            return Outcome::Failed(Error::NotOwned {
                kind: crate::enforcement::envoy_gateway::KIND.into(),
                name: name.into(),
            });
        }
        let held = serde_json::to_value(live).is_ok_and(|l| is_subset(desired, &l));
        if held {
            return Outcome::Policy { written: false, gateway: gateway_status(live) };
        }
    }
    match api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired)).await {
        Ok(written) => Outcome::Policy { written: true, gateway: gateway_status(&written) },
        // Invalid (422) or Bad Request (400): the object breaks the schema or CEL rules of the installed CRD.
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
            Outcome::Refused { message: status.message, fresh: true }
        }
        Err(e) => Outcome::Failed(e.into()),
    }
}

/// Envoy Gateway's verdict from `status.ancestors[].conditions` (type `Accepted`) for the object's generation.
pub fn gateway_status(object: &DynamicObject) -> GatewayStatus {
    let generation = object.metadata.generation.unwrap_or(0);
    let ancestors = object.data["status"]["ancestors"].as_array().cloned().unwrap_or_default();
    if ancestors.is_empty() {
        return GatewayStatus::Waiting(
            "Envoy Gateway has not reported on the policy yet (is the HTTPRoute there, attached to a Gateway Envoy \
             Gateway runs?)"
                .into(),
        );
    }
    let mut waiting = Vec::new();
    for ancestor in &ancestors {
        let gateway = format!(
            "{} {}",
            ancestor["ancestorRef"]["kind"].as_str().unwrap_or("Gateway"),
            ancestor["ancestorRef"]["name"].as_str().unwrap_or("?")
        );
        let accepted = ancestor["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Accepted"));
        let Some(accepted) = accepted else {
            waiting.push(gateway);
            continue;
        };
        if accepted["observedGeneration"].as_i64().unwrap_or(0) < generation {
            waiting.push(gateway);
        } else if accepted["status"] != "True" {
            let text = |k: &str| accepted[k].as_str().unwrap_or_default().chars().take(300).collect::<String>();
            return GatewayStatus::NotAccepted(format!("{gateway}: {}: {}", text("reason"), text("message")));
        }
    }
    if waiting.is_empty() {
        GatewayStatus::Accepted
    } else {
        GatewayStatus::Waiting(format!("not reported on this version yet by {}", waiting.join(", ")))
    }
}

async fn apply_config_map(ctx: &Context, object: &Value) -> Outcome {
    let config_map: ConfigMap = match serde_json::from_value(object.clone()) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.into()),
    };
    match apply_if_changed(ctx, &config_map).await {
        Ok(written) => Outcome::ConfigMap { written },
        Err(e) => Outcome::Failed(e),
    }
}

/// Deletes the object of `old` when the profile controls it (gone already is done).
async fn retire(ctx: &Context, profile: &PerformanceProfile, old: &ObjectRef) -> Result<()> {
    let uid = profile.uid().unwrap_or_default();
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    if old.kind == "ConfigMap" {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
        let Some(live) = ctx.caches.get_or_read(&api, &namespace, &old.name).await? else { return Ok(()) };
        if controlled_by(live.meta(), &uid) {
            super::apply::delete::<ConfigMap>(&ctx.client, &namespace, &old.name).await?;
        }
        return Ok(());
    }
    let api = policy_api(
        ctx,
        profile,
        crate::enforcement::envoy_gateway::API_VERSION,
        &old.kind,
        crate::enforcement::envoy_gateway::PLURAL,
    );
    // A LIST by name, as the apply reads it: one verb less for the chart to grant.
    match api
        .list(&ListParams::default().fields(&format!("metadata.name={}", old.name)))
        .await
        .map(|l| l.items.into_iter().next())
    {
        Ok(Some(live)) if controlled_by(&live.metadata, &uid) => {
            match api.delete(&old.name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) => Ok(()),
        // The type is gone from the cluster: so is every object of it.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `RateLimitReady` and `status.rateLimit` from the round and what applying it did.
pub fn report(
    profile: &PerformanceProfile,
    round: &Round,
    applied: &Applied,
    now: jiff::Timestamp,
) -> (crate::conditions::Report, perf_operator_api::RateLimitStatus) {
    use crate::conditions::Report;
    use crate::enforcement::report::{decided, refused_message};
    use perf_operator_api::condition::RATE_LIMIT_READY as T;
    let previous = profile.status.as_ref().and_then(|s| s.rate_limit.as_ref());
    let before = previous.and_then(|r| r.object.clone());
    let written_at = match &applied.outcome {
        Outcome::Policy { written: true, .. } => Some(Time(now)),
        _ => previous.and_then(|r| r.written_at.clone()),
    };
    // What is live now: the new object once applied, else the old one unless it was deleted.
    let old_deleted = round.retire.is_some() && matches!(applied.retired, Some(Ok(())));
    let kept = if old_deleted { None } else { before };
    let wanted = round.apply.as_ref().and_then(|(r, _)| crate::enforcement::round::object_of(r)).map(|o| o.text());
    let mut refused = round.refused.clone();
    let (report, object) = match &applied.outcome {
        // Contract mode, limits that cannot be expressed, or only an old object to delete.
        Outcome::Nothing => (decided(Some(round)), kept),
        Outcome::Policy { gateway: GatewayStatus::Accepted, .. } => {
            let message = format!(
                "{} enforces {} route(s); Envoy Gateway accepted it",
                wanted.clone().unwrap_or_default(),
                round.enforced.len()
            );
            (Report::ok(T, "Enforced", message), wanted)
        }
        Outcome::Policy { gateway: GatewayStatus::Waiting(m), .. } => (waiting(m, written_at.as_ref(), now), wanted),
        Outcome::Policy { gateway: GatewayStatus::NotAccepted(m), .. } => {
            (Report::failed(T, "NotAccepted", m.clone()), wanted)
        }
        Outcome::ConfigMap { .. } => {
            let domain = crate::enforcement::ratelimit_service::domain(profile);
            let message = format!(
                "{} holds {} route(s) for Envoy's rate-limit service, domain {domain}: mount it into the service's config directory",
                wanted.clone().unwrap_or_default(),
                round.enforced.len()
            );
            (Report::ok(T, "Enforced", message), wanted)
        }
        Outcome::CrdMissing => (
            Report::failed(
                T,
                "CrdMissing",
                "gateway.envoyproxy.io/v1alpha1 BackendTrafficPolicy is not served by this cluster: install Envoy Gateway, \
                 or set spec.rateLimit.enforcement.mode to contract",
            ),
            kept,
        ),
        Outcome::Refused { message, fresh } => {
            if *fresh {
                let sha256 = round.apply.as_ref().map(|(_, sha)| sha.clone()).unwrap_or_default();
                refused =
                    Some(perf_operator_api::RefusedObject { sha256, message: message.chars().take(1024).collect() });
            }
            (Report::failed(T, "Refused", refused_message(message)), kept)
        }
        Outcome::Failed(e) => (Report::failed(T, "ApplyFailed", crate::error::chain(e)), kept),
    };
    let report = match (&applied.retired, &round.retire) {
        (Some(Err(e)), Some(old)) => {
            Report::failed(T, "ApplyFailed", format!("could not delete {}: {}", old.text(), crate::error::chain(e)))
        }
        _ => report,
    };
    // A failed deletion keeps naming the old object, so the next round deletes it.
    let object = match (&applied.retired, &round.retire) {
        (Some(Err(_)), Some(old)) => Some(old.text()),
        _ => object,
    };
    (report, round.status(object, refused, written_at))
}

/// How long Envoy Gateway's verdict on a new version is waited for at the progressing pace (every 15 s); after it,
/// the profile is looked at again at each resync only, so a policy no Gateway ever reports on costs nothing more.
pub const GATEWAY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

fn waiting(message: &str, written_at: Option<&Time>, now: jiff::Timestamp) -> crate::conditions::Report {
    use perf_operator_api::condition::RATE_LIMIT_READY as T;
    let waited = written_at.map(|t| now.duration_since(t.0).unsigned_abs());
    match waited {
        Some(w) if w >= GATEWAY_PATIENCE => crate::conditions::Report::failed(
            T,
            "NoGatewayVerdict",
            format!("{message}, for {} minutes; looked at again at each resync", w.as_secs() / 60),
        ),
        _ => crate::conditions::Report::progressing(T, "WaitingForGateway", message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(written_minutes_ago: Option<i64>, now: jiff::Timestamp) -> PerformanceProfile {
        let written_at = written_minutes_ago.map(|m| now - jiff::SignedDuration::from_mins(m));
        serde_json::from_value(json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": "quotes", "namespace": "trading", "uid": "u1"},
            "spec": {"targetRef": {"name": "quotes"}, "rateLimit": {
                "routes": [{"route": "/", "requestsPerSecond": 5, "burst": 5}],
                "enforcement": {"mode": "envoyGateway", "envoyGateway": {"httpRoute": "quotes"}}}},
            "status": {"rateLimit": {"mode": "envoyGateway", "object": "BackendTrafficPolicy/quotes-ratelimit",
                "writtenAt": written_at.map(|t| t.to_string())}}
        }))
        .expect("profile")
    }

    fn report_of(
        minutes: Option<i64>,
        written: bool,
    ) -> (crate::conditions::Report, perf_operator_api::RateLimitStatus) {
        let now = jiff::Timestamp::now();
        let p = profile(minutes, now);
        let round = crate::enforcement::round::decide(&p, None).expect("round");
        let applied = Applied {
            outcome: Outcome::Policy { written, gateway: GatewayStatus::Waiting("not yet".into()) },
            retired: None,
        };
        report(&p, &round, &applied, now)
    }

    #[test]
    fn envoy_gateways_verdict_is_awaited_at_the_progressing_pace_for_five_minutes_then_at_the_resync() {
        let (r, status) = report_of(None, true);
        assert_eq!((r.reason.as_str(), r.progressing), ("WaitingForGateway", true));
        assert!(status.written_at.is_some(), "a write starts the wait");
        let (r, _) = report_of(Some(2), false);
        assert_eq!((r.reason.as_str(), r.progressing), ("WaitingForGateway", true));
        let (r, status) = report_of(Some(6), false);
        assert_eq!((r.reason.as_str(), r.progressing, r.ok), ("NoGatewayVerdict", false, false), "{}", r.message);
        assert!(r.message.contains("for 6 minutes"), "{}", r.message);
        assert!(status.written_at.is_some(), "the wait keeps its start");
        // A new version written resets it.
        let (r, _) = report_of(Some(60), true);
        assert_eq!(r.reason, "WaitingForGateway");
    }

    #[test]
    fn an_ancestor_that_refuses_or_has_not_seen_this_generation_is_said_so() {
        let object = |conditions: serde_json::Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy",
                "metadata": {"name": "p", "generation": 3},
                "status": {"ancestors": [{"ancestorRef": {"kind": "Gateway", "name": "eg"}, "conditions": conditions}]}
            }))
            .expect("object")
        };
        let accepted = |seen: i64, status: &str| json!([{"type": "Accepted", "status": status, "reason": "Invalid", "message": "RateLimit: x", "observedGeneration": seen}]);
        assert_eq!(gateway_status(&object(accepted(3, "True"))), GatewayStatus::Accepted);
        assert!(matches!(gateway_status(&object(accepted(2, "True"))), GatewayStatus::Waiting(_)));
        assert_eq!(
            gateway_status(&object(accepted(3, "False"))),
            GatewayStatus::NotAccepted("Gateway eg: Invalid: RateLimit: x".into())
        );
        assert!(matches!(gateway_status(&object(json!([]))), GatewayStatus::Waiting(_)));
        let none: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "p"}}))
                .expect("object");
        assert!(matches!(gateway_status(&none), GatewayStatus::Waiting(_)));
    }
}
