//! How the operator reaches a Prometheus that is not open to anyone: behind auth, a private CA, or a multi-tenant
//! gateway (Thanos, Mimir, Cortex), as Flagger's MetricTemplate `provider.secretRef` does.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Credentials, CA and headers for requests to a Prometheus. Everything it names lives in the profile's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusAccess {
    /// Secret with the credentials: key `token` (sent as `Authorization: Bearer`), or keys `username` and
    /// `password` (basic auth). Read on every reconcile, so a rotation applies without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
    /// PEM bundle of the CA that signs Prometheus's certificate, trusted in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaBundleRef>,
    /// Extra request headers, e.g. a gateway's `X-Api-Key`. Not for credentials (use `secretRef`): `Authorization`,
    /// `Host` and the framing headers are refused, and so are tenant headers (`X-Scope-OrgID`, `THANOS-TENANT`,
    /// `X-Grafana-Org-Id`): the operator sets the tenant to the profile's namespace (`--prometheus-tenant-header`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub headers: BTreeMap<String, String>,
}

/// An object in the profile's namespace, by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// A key of a ConfigMap or Secret holding PEM certificates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    /// Where the bundle is: a `ConfigMap` (the default, as cert-manager's trust-manager writes it) or a `Secret`.
    #[serde(default)]
    pub kind: CaBundleKind,
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key of the PEM bundle.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Kinds of object a CA bundle may come from.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaBundleKind {
    #[default]
    ConfigMap,
    Secret,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}
