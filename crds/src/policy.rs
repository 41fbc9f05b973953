//! References to WASM policies (cache TTL and rate-limit plugins).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Schema pattern of a sha256 pin: 64 lower-case hex characters.
pub const SHA256_PATTERN: &str = "^[a-f0-9]{64}$";

/// Where a policy comes from, its settings and what to do when it fails. Exactly one source is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.builtin), has(self.configMap), has(self.url), has(self.registry)].filter(x, x).size() == 1").message("policy: exactly one of builtin, configMap, url or registry must be set"))]
pub struct PolicyRef {
    /// Name of a policy shipped in the operator binary (`adaptive-ttl`, `adaptive-rate-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub builtin: Option<String>,
    /// A component stored in a ConfigMap's `binaryData`, pinned by sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapPolicySource>,
    /// A component fetched over HTTPS, pinned by sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UrlPolicySource>,
    /// A component pushed to an OCI registry (`policy push`, `kwctl push`), pinned by sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryPolicySource>,
    /// Opaque settings passed to the policy; the policy validates them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub settings: Option<serde_json::Value>,
    /// What happens when the policy traps, times out, runs out of memory or returns bad output.
    #[serde(default)]
    pub on_failure: PolicyFailureMode,
}

/// A policy component in a ConfigMap key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapPolicySource {
    /// ConfigMap name in the profile's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key in `binaryData` holding the component.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// sha256 of the component, 64 lower-case hex characters. A mismatch is refused.
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: String,
}

/// A policy component at an HTTPS URL.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UrlPolicySource {
    /// HTTPS URL of the component.
    #[schemars(regex(pattern = r"^https://[^\s]+$"), length(max = 2048))]
    pub url: String,
    /// sha256 of the component, 64 lower-case hex characters. A mismatch is refused.
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: String,
}

/// A policy component stored in an OCI registry: one WASM layer (the WASM component layer `application/wasm`, or
/// Kubewarden's and wasm-to-oci's `application/vnd.wasm.content.layer.v1+wasm`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegistryPolicySource {
    /// `registry://host[:port]/repository:tag` or `registry://host[:port]/repository@sha256:<manifest digest>`.
    /// Over HTTPS only; a digest here must also match the manifest.
    #[schemars(regex(pattern = r"^registry://[^\s/]+/[^\s]+$"), length(max = 2048))]
    pub reference: String,
    /// sha256 of the component (the WASM layer's bytes), 64 lower-case hex characters. A mismatch is refused.
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: String,
    /// A `kubernetes.io/dockerconfigjson` Secret in the profile's namespace holding credentials for the registry
    /// (its `auths` entry for the registry's host). Without it the registry is read anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub pull_secret: Option<String>,
    /// A public key (PEM, ECDSA P-256 as `cosign generate-key-pair` makes) that must have signed the component's
    /// manifest (a cosign signature stored beside it, `sha256-<digest>.sig`). Unsigned or otherwise signed
    /// components are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub cosign_public_key: Option<String>,
}

/// Fallback when a policy evaluation fails.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PolicyFailureMode {
    /// Keep the last decision that succeeded (the spec values before the first success).
    #[default]
    KeepLastGood,
    /// Use the values written in the spec.
    UseSpec,
    /// Publish nothing new and mark the component not ready.
    FailClosed,
}

pub(crate) fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}
