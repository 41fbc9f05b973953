//! Server-side apply of owned objects, skipped when the live object already holds every desired field.

use crate::Result;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use perf_operator_api::FIELD_MANAGER;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// True when every field of `want` is present in `live` with the same value. Arrays must match element-wise, so
/// a removed or added element is drift. Fields the server adds (defaults, status, managedFields) are ignored.
pub fn is_subset(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(w), Value::Array(l)) => w.len() == l.len() && w.iter().zip(l).all(|(a, b)| is_subset(a, b)),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == live,
    }
}

/// Applies `desired` unless the live object already matches. Returns whether a write was sent.
pub async fn apply_if_changed<K>(client: &Client, desired: &K) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let namespace = desired.namespace().unwrap_or_else(|| "default".into());
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let name = desired.name_any();
    let want = serde_json::to_value(desired)?;
    if let Some(live) = api.get_opt(&name).await?
        && is_subset(&want, &serde_json::to_value(&live)?)
    {
        return Ok(false);
    }
    // force: we are the only manager of these fields; another manager's conflicting change is drift to undo.
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&want)).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn server_added_fields_are_not_drift() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 6379}]}});
        let live = json!({"spec": {"replicas": 1, "ports": [{"port": 6379, "protocol": "TCP"}], "x": 1}, "status": {}});
        assert!(is_subset(&want, &live));
    }

    #[test]
    fn changed_values_and_list_lengths_are_drift() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 6379}]}});
        assert!(!is_subset(&want, &json!({"spec": {"replicas": 2, "ports": [{"port": 6379}]}})));
        assert!(!is_subset(&want, &json!({"spec": {"replicas": 1, "ports": []}})));
        assert!(!is_subset(&want, &json!({"spec": {}})));
    }
}
