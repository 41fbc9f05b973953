//! Apply of the SLO's PrometheusRule: server-side apply when the Prometheus Operator's CRD is served, deletion of a
//! rule applied before when the profile turns its alerts off, and "not installed" when the CRD is absent.

use super::apply::is_subset;
use crate::components::slo_rules::{self, SloRule};
use crate::{Error, Result};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use perf_operator_api::{FIELD_MANAGER, PerformanceProfile};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What happened to the rule this round.
#[derive(Debug)]
pub enum RuleOutcome {
    /// The live rule holds the plan (`written`: a write was sent).
    Applied {
        written: bool,
    },
    /// Alerts are off; a rule left from before was deleted (`deleted`) or there was none.
    Absent {
        deleted: bool,
    },
    /// `monitoring.coreos.com/v1` PrometheusRule is not served by this cluster.
    CrdMissing,
    /// The rule was refused before any request (see the decision's report).
    Refused,
    /// The profile sets labels the administrator does not allow (`--alert-label`, `--rule-label`): not written.
    NotAllowed(String),
    Failed(Error),
}

/// Remembers that PrometheusRules are not served, for a while: every profile would otherwise ask again each round,
/// and kube logs each plain-text 404 ("404 page not found") as a warning.
#[derive(Default)]
pub struct Unserved(Mutex<Option<Instant>>);

/// How long "not served" is believed before asking again; a Prometheus Operator installed later is seen after it.
const RECHECK: Duration = Duration::from_secs(30);

impl Unserved {
    fn recently(&self) -> bool {
        self.0.lock().map(|t| t.is_some_and(|at| at.elapsed() < RECHECK)).unwrap_or(false)
    }
    fn set(&self, unserved: bool) {
        if let Ok(mut t) = self.0.lock() {
            *t = unserved.then(Instant::now);
        }
    }

    /// The live object `name` of `api`'s type, by one LIST that also says whether the type is served (a LIST of an
    /// unserved type is 404, so a cluster without it sees reads only, never a refused write per round). `Ok(None)`:
    /// not served, now or when last asked within [`RECHECK`].
    pub(super) async fn list_named(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
    ) -> std::result::Result<Option<Option<DynamicObject>>, kube::Error> {
        if self.recently() {
            return Ok(None);
        }
        match api.list(&ListParams::default().fields(&format!("metadata.name={name}"))).await {
            Ok(list) => {
                self.set(false);
                Ok(Some(list.items.into_iter().next()))
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.set(true);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

fn api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", slo_rules::KIND);
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk_with_plural(&gvk, "prometheusrules"))
}

/// Brings the cluster to the decided rule; `scope` holds the label names profiles may set.
pub async fn apply(
    client: &Client,
    unserved: &Unserved,
    profile: &PerformanceProfile,
    rule: &SloRule,
    scope: &super::Scope,
) -> RuleOutcome {
    if matches!(rule, SloRule::Refused { .. }) {
        return RuleOutcome::Refused;
    }
    let not_allowed = crate::tenancy::label_problems(&profile.spec.slo.alerts, &scope.alert_labels, &scope.rule_labels);
    if matches!(rule, SloRule::Desired(_)) && !not_allowed.is_empty() {
        return RuleOutcome::NotAllowed(not_allowed.join("; "));
    }
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api = api(client, &namespace);
    let live = match unserved.list_named(&api, rule.name()).await {
        Ok(Some(live)) => live,
        Ok(None) => return RuleOutcome::CrdMissing,
        // Alerts off and no right to look (the chart's RBAC for them turned off too): nothing of ours to delete.
        Err(kube::Error::Api(status)) if status.code == 403 && !matches!(rule, SloRule::Desired(_)) => {
            return RuleOutcome::Absent { deleted: false };
        }
        Err(e) => return RuleOutcome::Failed(e.into()),
    };
    let result = match rule {
        SloRule::Desired(plan) => {
            let desired = slo_rules::object(profile, plan);
            write(&api, &plan.name, &desired, live).await.map(|written| RuleOutcome::Applied { written })
        }
        _ => remove(&api, live).await.map(|deleted| RuleOutcome::Absent { deleted }),
    };
    result.unwrap_or_else(RuleOutcome::Failed)
}

/// Server-side apply unless the live rule already holds every desired field.
async fn write(
    api: &Api<DynamicObject>,
    name: &str,
    desired: &serde_json::Value,
    live: Option<DynamicObject>,
) -> Result<bool> {
    if let Some(live) = live
        && is_subset(desired, &serde_json::to_value(&live)?)
    {
        return Ok(false);
    }
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired)).await?;
    Ok(true)
}

/// Deletes the live rule when it is the operator's (labelled with a profile).
async fn remove(api: &Api<DynamicObject>, live: Option<DynamicObject>) -> Result<bool> {
    let Some(live) = live.filter(|l| l.labels().contains_key(crate::components::labels::PROFILE_LABEL)) else {
        return Ok(false);
    };
    match api.delete(&live.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
