//! `perf-operator plan`: everything the operator would do for a profile, computed with no cluster by the same
//! [`decide`] a reconcile runs, on observations from a file or example values ([`Observations`]).

pub mod clickhouse;
pub mod observations;
pub mod prometheus;

pub use observations::Observations;

use crate::components::{self, slo_rules};
use crate::decide::decide;
use crate::manifest::{self, Finding};
use crate::{Error, Result, validate};
use perf_canary::templates::Resolved;
use perf_operator_api::PerformanceProfile;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The plan of one profile.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `namespace/name` of the profile.
    pub profile: String,
    /// Kubernetes objects the operator applies (server-side apply, field manager `perf-operator`).
    pub objects: Vec<serde_json::Value>,
    /// The app contract ConfigMap content.
    pub app_config: AppConfigPlan,
    /// Pool sizes, per pod, with the servers' limits they were capped by and what was said about them (a declared
    /// limit above the live one, a server that could not be read, a shortfall).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<components::pools::PoolsPlan>,
    /// Sections added by the other components (ClickHouse DDL, canary schedule, policy decisions).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Name, checksum and data of the app contract.
#[derive(Debug, Serialize)]
pub struct AppConfigPlan {
    pub name: String,
    pub checksum: String,
    pub data: BTreeMap<String, String>,
}

/// Plans a validated profile: [`decide`] on `observations` (offline, example values or a file). Pure.
pub fn plan_profile(profile: &PerformanceProfile, observations: &Observations) -> Plan {
    plan_resolved(profile, None, observations)
}

/// [`plan_profile`], with the canary's templates resolved (see [`load_resolved`]).
pub fn plan_resolved(profile: &PerformanceProfile, resolved: Option<&Resolved>, observations: &Observations) -> Plan {
    let mut profile = profile.clone();
    if profile.metadata.namespace.is_none() {
        profile.metadata.namespace = Some("default".into());
    }
    // A round after a first one: policies are given the observations' interval counters.
    profile.status = Some(observations.previous_status());
    let observed = observations.observed(&profile);
    let decision = decide(&profile, &observed, jiff::Timestamp::now());
    let mut objects = decision.objects.clone();
    objects.config_maps.push(decision.contract.clone());
    let mut extra = BTreeMap::new();
    if profile.spec.suspend {
        // The plan is still what a resumed profile would do: the user reads it before resuming.
        let note =
            "spec.suspend is true: the operator applies none of this, and a canary run stays frozen, until it is false";
        extra.insert("suspended".to_string(), serde_json::Value::String(note.into()));
    }
    if let Some(ch) = &profile.spec.clickhouse {
        extra.insert("clickhouse".to_string(), clickhouse::section(ch, None).0);
    }
    if let Some(canary) = &profile.spec.canary {
        let ctx = perf_canary::QueryContext {
            namespace: profile.metadata.namespace.clone().unwrap_or_default(),
            target: profile.spec.target_ref.name.clone(),
        };
        let replicas = decision.status.pools.as_ref().map_or(1, |p| p.app_replicas);
        let canary = resolved.map_or(canary, |r| &r.spec);
        let schedule = perf_canary::plan_schedule(canary, &profile.spec.slo, &ctx, replicas);
        extra.insert("canary".to_string(), serde_json::to_value(schedule).unwrap_or_default());
    }
    if let Some(policies) = &decision.status.policies {
        let section =
            serde_json::json!({ "observations": observations.policy_inputs(&profile), "decisions": policies });
        extra.insert("policies".to_string(), section);
    }
    let mut values = objects.to_values();
    match &decision.slo_rule {
        slo_rules::SloRule::Desired(rule) => {
            values.push(slo_rules::object(&profile, rule));
            // A Prometheus rule file as is: `promtool check rules` and Prometheus's `rule_files` take it.
            extra.insert("sloRules".to_string(), serde_json::json!({ "groups": rule.groups }));
        }
        slo_rules::SloRule::Refused { message, .. } => {
            extra.insert("sloRules".to_string(), serde_json::json!({ "refused": message }));
        }
        slo_rules::SloRule::Disabled { .. } => {}
    }
    if let Some(round) = decision.enforcement.as_ref().filter(|_| profile.spec.rate_limit.is_some()) {
        if let Some(object) = round.apply.as_ref().and_then(|(r, _)| r.object()) {
            values.push(object.clone());
        }
        extra.insert("rateLimit".to_string(), crate::enforcement::plan_section(&profile, round));
    }
    let mut pools = decision.pools.clone();
    if let Some(pools) = pools.as_mut() {
        observations.mark_examples(pools);
    }
    Plan {
        profile: format!(
            "{}/{}",
            profile.metadata.namespace.clone().unwrap_or_default(),
            profile.metadata.name.clone().unwrap_or_default()
        ),
        objects: values,
        app_config: AppConfigPlan {
            name: profile.app_config_name(),
            checksum: decision.checksum.clone(),
            data: decision.contract.data.clone().unwrap_or_default(),
        },
        pools,
        extra,
    }
}

/// Reads the profiles of a file, refusing the whole file if any of them is invalid.
pub fn load_valid_profiles(path: &Path) -> Result<Vec<PerformanceProfile>> {
    Ok(load_resolved(path)?.into_iter().map(|(p, _)| p).collect())
}

/// [`load_valid_profiles`], each with its canary's templates resolved against the templates in the file.
pub fn load_resolved(path: &Path) -> Result<Vec<(PerformanceProfile, Option<Resolved>)>> {
    let docs = manifest::read_documents(path)?;
    let mut profiles = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    // The same checks as `validate` (unknown fields, apiVersion and kind included), so `plan` never shows a plan
    // for a file that `kubectl apply` or `validate` refuses.
    for doc in docs.iter().filter(|d| manifest::identify(&d.value) == manifest::Identity::Template) {
        findings.extend(validate::check_template_document(doc));
    }
    for doc in docs.iter().filter(|d| manifest::identify(&d.value) == manifest::Identity::Profile) {
        let mut problems = validate::check_document(doc);
        if problems.is_empty()
            && let Ok(p) = manifest::parse_profile(doc)
        {
            // The canary is planned with its templates resolved against those in the file, as the operator would.
            let resolved = p.spec.canary.as_ref().map(|canary| validate::resolve_in(&p, canary, &docs)).transpose();
            match resolved {
                Ok(resolved) => profiles.push((p, resolved)),
                Err(found) => problems.extend(found.into_iter().map(|(field, message)| Finding {
                    location: doc.location(),
                    field,
                    message,
                })),
            }
        }
        findings.extend(problems);
    }
    if !findings.is_empty() {
        let message = findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        return Err(Error::InvalidSpec(message));
    }
    if profiles.is_empty() {
        return Err(Error::Manifest {
            path: path.display().to_string(),
            message: "no PerformanceProfile documents".into(),
        });
    }
    Ok(profiles)
}
