//! Reading Secrets the profile references.

use super::Context;
use crate::{Error, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use perf_operator_api::PerformanceProfile;

/// One key of a Secret in the profile's namespace, as UTF-8.
pub async fn read_secret_key(ctx: &Context, profile: &PerformanceProfile, name: &str, key: &str) -> Result<String> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::InvalidSpec(format!("Secret {namespace}/{name} not found")))?;
    let value = secret
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| Error::InvalidSpec(format!("Secret {namespace}/{name} has no key {key:?}")))?;
    String::from_utf8(value.0)
        .map_err(|_| Error::InvalidSpec(format!("Secret {namespace}/{name} key {key:?} is not UTF-8")))
}
