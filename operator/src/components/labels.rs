//! Names, labels and owner references shared by every object the operator creates.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use perf_operator_api::PerformanceProfile;
use std::collections::BTreeMap;

/// Label naming the profile an object belongs to; the controller maps owned objects back through owner references.
pub const PROFILE_LABEL: &str = "perf.operator.dev/profile";
/// Annotation on the target's pod template carrying the app contract checksum.
pub use perf_operator_api::CONFIG_CHECKSUM_ANNOTATION;

/// Standard labels of an object owned by `profile`, for `component` (e.g. `redis`).
pub fn labels(profile: &PerformanceProfile, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), component.to_string()),
        ("app.kubernetes.io/instance".to_string(), format!("{}-{component}", profile.name_any())),
        ("app.kubernetes.io/managed-by".to_string(), "perf-operator".to_string()),
        (PROFILE_LABEL.to_string(), profile.name_any()),
    ])
}

/// Controller owner reference to the profile, so Kubernetes garbage-collects owned objects with it.
pub fn owner(profile: &PerformanceProfile) -> Vec<OwnerReference> {
    let uid = profile.uid().unwrap_or_default();
    vec![OwnerReference {
        api_version: PerformanceProfile::api_version(&()).into_owned(),
        kind: PerformanceProfile::kind(&()).into_owned(),
        name: profile.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]
}

/// Metadata of an owned object.
pub fn meta(profile: &PerformanceProfile, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: profile.namespace(),
        labels: Some(labels(profile, component)),
        owner_references: Some(owner(profile)),
        ..ObjectMeta::default()
    }
}
