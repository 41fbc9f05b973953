//! Server-side apply of owned objects, skipped when the live object already holds every desired field.

use crate::Result;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use perf_operator_api::FIELD_MANAGER;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

pub use perf_operator_api::ssa::is_subset;

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
