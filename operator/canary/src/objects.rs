//! Pure builders of the desired objects.
//!
//! - `<target>-primary` and `<target>-canary` Deployments: the target's selector plus
//!   `perf.operator.dev/role: primary|canary`, so their pods are distinct (their HPAs and ReplicaSets never see each
//!   other's pods) while both still match the target's Service selector, which splits traffic by replica ratio.
//! - The target Deployment is scaled to zero once the primary is ready; it only carries the template. The
//!   operator applies nothing but `spec.replicas` on it (GitOps: omit `replicas` from the manifest, or tell Argo CD
//!   to ignore `/spec/replicas` of that Deployment).
//! - HPA: an HPA on the target averages over every pod matching the target's selector, i.e. primary and canary.
//!   It goes inert because its target has zero replicas (Kubernetes disables scaling at zero); the operator clones
//!   it as `<target>-primary` aimed at the primary, whose selector only matches primary pods, and sizes the canary
//!   itself as a share of the primary's replicas. No HPA ever averages canary and primary pods.
//! - HTTPRoute: only the `weight` of the backendRefs naming `<target>-primary` / `<target>-canary` changes.

use crate::{Error, Result};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use perf_operator_api::CONFIG_CHECKSUM_ANNOTATION;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Label that tells primary pods from canary pods.
pub const ROLE_LABEL: &str = "perf.operator.dev/role";
/// Annotation on the primary and canary Deployments: hash of the template they run.
pub const TEMPLATE_HASH_ANNOTATION: &str = "perf.operator.dev/template-hash";
/// Annotation on the profile carrying a manual command: `pause`, `resume`, `promote`, `abort` (optionally `@nonce`).
pub const COMMAND_ANNOTATION: &str = "perf.operator.dev/canary-command";
/// On a primary shrunk during a replica-ratio run: its full size, which sizes the run and is given back after it.
pub const FULL_REPLICAS_ANNOTATION: &str = "perf.operator.dev/full-replicas";

/// Which copy of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Canary,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Canary => "canary",
        }
    }
    /// Object name for a target.
    pub fn name(self, target: &str) -> String {
        format!("{target}-{}", self.label())
    }
}

/// `<target>-primary`.
pub fn primary_name(target: &str) -> String {
    Role::Primary.name(target)
}

/// `<target>-canary`.
pub fn canary_name(target: &str) -> String {
    Role::Canary.name(target)
}

/// Short sha256 of a pod template (the run id), without the app contract's checksum: a contract change rolls the
/// pods (`appConfig.rolloutOnChange`) but is not a new version of the app to judge.
pub fn template_hash(template: &PodTemplateSpec) -> Result<String> {
    let mut template = template.clone();
    if let Some(meta) = template.metadata.as_mut() {
        // Absent and emptied annotations hash alike.
        let emptied = meta.annotations.as_mut().is_some_and(|a| {
            a.remove(CONFIG_CHECKSUM_ANNOTATION);
            a.is_empty()
        });
        if emptied {
            meta.annotations = None;
        }
    }
    let bytes = serde_json::to_vec(&template).map_err(|source| Error::Encode { what: "pod template", source })?;
    Ok(hex::encode(&Sha256::digest(&bytes)[..8]))
}

/// The app contract's checksum on a pod template, if any.
pub fn config_checksum(template: &PodTemplateSpec) -> Option<&String> {
    template.metadata.as_ref()?.annotations.as_ref()?.get(CONFIG_CHECKSUM_ANNOTATION)
}

/// `template` carrying `checksum` as the contract's (or none).
pub fn with_config_checksum(template: &PodTemplateSpec, checksum: Option<&String>) -> PodTemplateSpec {
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    match checksum {
        Some(c) => {
            meta.annotations.get_or_insert_with(BTreeMap::new).insert(CONFIG_CHECKSUM_ANNOTATION.into(), c.clone());
        }
        None => {
            if let Some(a) = meta.annotations.as_mut() {
                a.remove(CONFIG_CHECKSUM_ANNOTATION);
            }
        }
    }
    template
}

/// Template hash annotated on a Deployment by the operator.
pub fn annotated_hash(deployment: &Deployment) -> Option<String> {
    deployment.metadata.annotations.as_ref()?.get(TEMPLATE_HASH_ANNOTATION).cloned()
}

/// Rolled out: the controller saw the latest spec and every desired pod is updated and ready.
pub fn rollout_complete(deployment: &Deployment) -> bool {
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &deployment.status else { return desired == 0 };
    let seen = match (deployment.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (Some(_), None) => false,
        (None, _) => true,
    };
    seen && status.updated_replicas.unwrap_or(0) >= desired && status.ready_replicas.unwrap_or(0) >= desired
}

/// The primary's full size: its replicas, or while a run has shrunk it, the size it had before.
pub fn full_replicas(primary: &Deployment) -> u32 {
    let annotated = primary.metadata.annotations.as_ref().and_then(|a| a.get(FULL_REPLICAS_ANNOTATION));
    annotated.and_then(|v| v.parse().ok()).unwrap_or_else(|| replicas(primary))
}

/// Marks `primary` (running `replicas` pods) with its full size when it runs fewer; the mark goes when it is full.
pub fn with_full_size(mut primary: Deployment, replicas: u32, full: u32) -> Deployment {
    if replicas < full {
        let annotations = primary.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(FULL_REPLICAS_ANNOTATION.into(), full.to_string());
    }
    primary
}

/// Desired replicas of a Deployment (Kubernetes defaults a missing count to 1).
pub fn replicas(deployment: &Deployment) -> u32 {
    let n = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    u32::try_from(n).unwrap_or(0)
}

/// `<target>-primary` or `<target>-canary` running `template`.
pub fn workload(
    target: &Deployment,
    role: Role,
    template: &PodTemplateSpec,
    hash: &str,
    replicas: u32,
    owner: &OwnerReference,
) -> Result<Deployment> {
    let name = target.metadata.name.clone().unwrap_or_default();
    let spec = target.spec.as_ref().ok_or_else(|| Error::InvalidSpec {
        field: "spec.targetRef".into(),
        message: format!("Deployment {name} has no spec"),
    })?;
    let mut selector = spec.selector.clone();
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(ROLE_LABEL.into(), role.label().into());
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels.get_or_insert_with(BTreeMap::new).insert(ROLE_LABEL.into(), role.label().into());
    Ok(Deployment {
        metadata: owned_meta(role.name(&name), target, owner, Some(hash)),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            selector,
            template,
            strategy: spec.strategy.clone(),
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            paused: None,
        }),
        status: None,
    })
}

fn owned_meta(name: String, target: &Deployment, owner: &OwnerReference, hash: Option<&str>) -> ObjectMeta {
    let mut labels = target.metadata.labels.clone().unwrap_or_default();
    labels.insert("app.kubernetes.io/managed-by".into(), "perf-operator".into());
    ObjectMeta {
        name: Some(name),
        namespace: target.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: hash.map(|h| BTreeMap::from([(TEMPLATE_HASH_ANNOTATION.to_string(), h.to_string())])),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Apply body that sets only `spec.replicas` of the target (the rest stays with whoever owns it).
pub fn target_replicas(name: &str, replicas: u32) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name }, "spec": { "replicas": replicas } })
}

/// The HPA aimed at the target Deployment, if any (ours, aimed at the primary, excluded).
pub fn target_hpa<'a>(hpas: &'a [HorizontalPodAutoscaler], target: &str) -> Option<&'a HorizontalPodAutoscaler> {
    hpas.iter().find(|h| aims_at(h, target))
}

/// Whether `hpa` scales Deployment `target`.
pub fn aims_at(hpa: &HorizontalPodAutoscaler, target: &str) -> bool {
    hpa.spec.as_ref().is_some_and(|s| s.scale_target_ref.kind == "Deployment" && s.scale_target_ref.name == target)
}

/// `<target>-primary` HPA: the target's HPA, aimed at the primary.
pub fn primary_hpa(
    original: &HorizontalPodAutoscaler,
    target: &Deployment,
    owner: &OwnerReference,
) -> HorizontalPodAutoscaler {
    let name = target.metadata.name.clone().unwrap_or_default();
    let mut spec: HorizontalPodAutoscalerSpec = original.spec.clone().unwrap_or_default();
    spec.scale_target_ref.api_version = Some("apps/v1".into());
    spec.scale_target_ref.kind = "Deployment".into();
    spec.scale_target_ref.name = primary_name(&name);
    HorizontalPodAutoscaler {
        metadata: owned_meta(primary_name(&name), target, owner, None),
        spec: Some(spec),
        status: None,
    }
}

/// The Services `<target>-primary` and `<target>-canary` of `roles`, each selecting only its side's pods: both as
/// HTTPRoute backends, or the canary's alone as the canary-only address by replica ratio.
pub fn role_services(target: &Deployment, port: u32, owner: &OwnerReference, roles: &[Role]) -> Vec<Service> {
    let name = target.metadata.name.clone().unwrap_or_default();
    let base: BTreeMap<String, String> =
        target.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    let port = i32::try_from(port).unwrap_or(80);
    roles
        .iter()
        .map(|&role| {
            let mut selector = base.clone();
            selector.insert(ROLE_LABEL.into(), role.label().into());
            Service {
                metadata: owned_meta(role.name(&name), target, owner, None),
                spec: Some(ServiceSpec {
                    selector: Some(selector),
                    ports: Some(vec![ServicePort {
                        name: Some("http".into()),
                        port,
                        target_port: Some(IntOrString::Int(port)),
                        ..ServicePort::default()
                    }]),
                    ..ServiceSpec::default()
                }),
                status: None,
            }
        })
        .collect()
}

/// Apply body for an HTTPRoute: its rules with the weights of the primary/canary backendRefs set.
///
/// Gateway API declares `spec.rules` atomic, so server-side apply takes the whole list; it is copied from the live
/// route and only the weights differ. Argo CD must ignore them:
/// `jqPathExpressions: [".spec.rules[].backendRefs[]?.weight"]`.
pub fn route_weights(route: &Value, target: &str, canary_weight: u32) -> Result<Value> {
    let name = route["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let fail = |message: String| Error::Route { route: name.clone(), message };
    let mut rules = route["spec"]["rules"].as_array().cloned().ok_or_else(|| fail("has no spec.rules".into()))?;
    let (primary, canary) = (primary_name(target), canary_name(target));
    let (mut saw_primary, mut saw_canary) = (false, false);
    for rule in &mut rules {
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else { continue };
        for backend in refs {
            let weight = match backend["name"].as_str() {
                Some(n) if n == primary => {
                    saw_primary = true;
                    100 - canary_weight.min(100)
                }
                Some(n) if n == canary => {
                    saw_canary = true;
                    canary_weight.min(100)
                }
                _ => continue,
            };
            backend["weight"] = json!(weight);
        }
    }
    if !(saw_primary && saw_canary) {
        return Err(fail(format!("needs backendRefs named {primary} and {canary} in spec.rules")));
    }
    Ok(json!({
        "apiVersion": route["apiVersion"],
        "kind": "HTTPRoute",
        "metadata": { "name": name },
        "spec": { "rules": rules },
    }))
}

/// Owner reference to the profile (objects go away with it).
pub fn owner(profile: &perf_operator_api::PerformanceProfile) -> Result<OwnerReference> {
    use kube::Resource;
    profile.controller_owner_ref(&()).ok_or_else(|| Error::InvalidSpec {
        field: "metadata.uid".into(),
        message: "profile has no uid (was it read from the API server?)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_weights_change_only_our_backends_and_require_both() {
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"rules": [{"matches": [{"path": {"value": "/"}}], "backendRefs": [
                {"name": "web-primary", "port": 80, "weight": 100}, {"name": "web-canary", "port": 80, "weight": 0},
                {"name": "other", "port": 80, "weight": 7}]}]}});
        let body = route_weights(&route, "web", 25).unwrap();
        let refs = &body["spec"]["rules"][0]["backendRefs"];
        assert_eq!(
            (refs[0]["weight"].clone(), refs[1]["weight"].clone(), refs[2]["weight"].clone()),
            (json!(75), json!(25), json!(7))
        );
        assert_eq!(body["spec"]["rules"][0]["matches"], route["spec"]["rules"][0]["matches"]);
        let mut lacking = route.clone();
        lacking["spec"]["rules"][0]["backendRefs"] = json!([{"name": "web-primary"}]);
        let err = route_weights(&lacking, "web", 25).unwrap_err().to_string();
        assert!(err.contains("web-canary"), "{err}");
    }
}
