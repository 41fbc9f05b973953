//! The Prometheus client of a profile: its URL with the credentials, CA and headers its `prometheusAccess` names,
//! read from the profile's own namespace on every reconcile (a rotated Secret gets a new client, see
//! `perf_prometheus::Clients`). A profile never reaches another namespace's Secret.

use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use perf_operator_api::{CaBundleKind, CaBundleRef, PrometheusAccess};
use perf_prometheus::{Access, Auth, Prometheus};
use std::collections::BTreeMap;

use super::observe::kube_error;
use super::round::Round;
use crate::decide::{Read, SecretProblem, Unread};

/// Keys of the credentials Secret, as Flagger's MetricTemplate reads them.
const TOKEN_KEY: &str = "token";
const USERNAME_KEY: &str = "username";
const PASSWORD_KEY: &str = "password";

/// Whose `prometheusAccess` it is, which says where its Secret and ConfigMap are and whether it may choose a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The profile's, or its namespace's AnalysisTemplate: objects in the profile's namespace; no tenant header.
    Tenant,
    /// A ClusterAnalysisTemplate, the administrator's: objects in the operator's namespace; it may set the tenant
    /// header itself (to read a mesh's tenant, say), else the profile's namespace is the tenant as always.
    Administrator,
}

/// The client for `url`, reached with `access` (`field` names it in errors, e.g. `spec.canary.analysis`).
pub async fn client(
    round: &Round<'_>,
    url: &str,
    access: Option<&PrometheusAccess>,
    field: &str,
) -> Read<Arc<Prometheus>> {
    client_of(round, url, access, field, Owner::Tenant).await
}

/// [`client`], for an access `owner` wrote.
pub async fn client_of(
    round: &Round<'_>,
    url: &str,
    access: Option<&PrometheusAccess>,
    field: &str,
    owner: Owner,
) -> Read<Arc<Prometheus>> {
    let mut access = match access {
        Some(spec) => resolve(round, spec, field, owner).await?,
        None => Access::default(),
    };
    if let Some(tenant) = &round.ctx.scope.prometheus_tenant_header {
        let chosen = access.headers.iter().find(|(name, _)| perf_prometheus::selects_tenant(name, Some(tenant)));
        match (chosen, owner) {
            (Some((name, _)), Owner::Tenant) => {
                let reason = format!("{field}.prometheusAccess.headers: {}", crate::validate::tenant_header(name));
                return Err(Unread::Prometheus(perf_prometheus::Error::InvalidAccess { reason }));
            }
            (Some(_), Owner::Administrator) => {}
            // The tenant is the profile's namespace, whatever the profile says.
            (None, _) => access.headers.push((tenant.clone(), round.namespace())),
        }
    }
    round.ctx.prometheus.get_with(url, access).map_err(Unread::Prometheus)
}

async fn resolve(round: &Round<'_>, spec: &PrometheusAccess, field: &str, owner: Owner) -> Read<Access> {
    let ns = home(round, owner);
    let auth = match &spec.secret_ref {
        Some(r) => Some(credentials(&ns, &r.name, &*secret_data(round, owner, &r.name).await?, field)?),
        None => None,
    };
    let ca_pem = match &spec.ca {
        Some(r) => Some(ca_bundle(round, r, owner).await?),
        None => None,
    };
    let headers = spec.headers.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
    Ok(Access { auth, ca_pem, headers })
}

/// A bearer token, or a user name and password; both or neither is a mistake the status names.
fn credentials(ns: &str, name: &str, data: &BTreeMap<String, ByteString>, field: &str) -> Read<Auth> {
    let problem = |problem| Unread::Secret { namespace: ns.to_string(), name: name.to_string(), problem };
    let text = |key: &str| -> Read<Option<String>> {
        data.get(key)
            .map(|v| String::from_utf8(v.0.clone()).map_err(|_| problem(SecretProblem::NotUtf8(key.to_string()))))
            .transpose()
    };
    match (text(TOKEN_KEY)?, text(USERNAME_KEY)?, text(PASSWORD_KEY)?) {
        (Some(token), None, None) => Ok(Auth::Bearer(token.trim_end().to_string())),
        (None, Some(username), Some(password)) => Ok(Auth::Basic { username, password }),
        (None, Some(_), None) => Err(problem(SecretProblem::MissingKey(PASSWORD_KEY.into()))),
        (None, None, Some(_)) => Err(problem(SecretProblem::MissingKey(USERNAME_KEY.into()))),
        (None, None, None) => Err(problem(SecretProblem::MissingKey(format!(
            "{TOKEN_KEY} (or {USERNAME_KEY} and {PASSWORD_KEY}), for {field}.prometheusAccess.secretRef"
        )))),
        (Some(_), _, _) => Err(Unread::Prometheus(perf_prometheus::Error::InvalidAccess {
            reason: format!(
                "{field}.prometheusAccess.secretRef: Secret {name} holds both {TOKEN_KEY} and {USERNAME_KEY}/\
                 {PASSWORD_KEY}; keep one kind of credential"
            ),
        })),
    }
}

/// The namespace an `owner`'s Secrets and ConfigMaps are in.
fn home(round: &Round<'_>, owner: Owner) -> String {
    match owner {
        Owner::Tenant => round.namespace(),
        Owner::Administrator => round.ctx.scope.operator_namespace.clone(),
    }
}

/// The data of Secret `name` in `owner`'s namespace; a missing Secret is an error that names it.
async fn secret_data(round: &Round<'_>, owner: Owner, name: &str) -> Read<crate::controller::round::SecretData> {
    if owner == Owner::Tenant {
        return round.secret_data(name).await;
    }
    let ns = home(round, owner);
    let api: Api<Secret> = Api::namespaced(round.ctx.client.clone(), &ns);
    let secret = api.get_opt(name).await.map_err(kube_error(format!("get Secret {ns}/{name}")))?;
    let secret =
        secret.ok_or_else(|| Unread::Secret { namespace: ns, name: name.into(), problem: SecretProblem::NotFound })?;
    Ok(Arc::new(secret.data.unwrap_or_default()))
}

/// The PEM bundle a `ca` reference names (a ConfigMap's `data`, or a Secret's).
async fn ca_bundle(round: &Round<'_>, r: &CaBundleRef, owner: Owner) -> Read<Vec<u8>> {
    let ns = home(round, owner);
    let missing = |problem| Unread::Secret { namespace: ns.clone(), name: r.name.clone(), problem };
    match r.kind {
        CaBundleKind::Secret => {
            let data = secret_data(round, owner, &r.name).await?;
            data.get(&r.key).map(|v| v.0.clone()).ok_or_else(|| missing(SecretProblem::MissingKey(r.key.clone())))
        }
        CaBundleKind::ConfigMap => {
            let maps: Api<ConfigMap> = Api::namespaced(round.ctx.client.clone(), &ns);
            let map = maps.get_opt(&r.name).await.map_err(kube_error(format!("get ConfigMap {}", r.name)))?;
            let problem = |problem| Unread::ConfigMap { namespace: ns.clone(), name: r.name.clone(), problem };
            let map = map.ok_or_else(|| problem(SecretProblem::NotFound))?;
            map.data
                .and_then(|d| d.get(&r.key).cloned())
                .map(String::into_bytes)
                .ok_or_else(|| problem(SecretProblem::MissingKey(r.key.clone())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect()
    }

    #[test]
    fn the_secret_holds_one_kind_of_credential() {
        let auth = |pairs: &[(&str, &[u8])]| {
            credentials("shop", "prom", &data(pairs), "spec.canary.analysis").map_err(|e| e.to_string())
        };
        assert_eq!(auth(&[("token", b"t0ken\n")]), Ok(Auth::Bearer("t0ken".into())));
        let basic = Auth::Basic { username: "ops".into(), password: "pw ".into() };
        assert_eq!(auth(&[("username", b"ops"), ("password", b"pw "), ("other", b"x")]), Ok(basic));
        for (pairs, expected) in [
            (&[("username", &b"ops"[..])][..], "Secret shop/prom has no key \"password\""),
            (&[("password", &b"pw"[..])][..], "Secret shop/prom has no key \"username\""),
            (&[][..], "token (or username and password), for spec.canary.analysis.prometheusAccess.secretRef"),
            (&[("token", &b"t"[..]), ("username", &b"u"[..])][..], "holds both token and username/password"),
            (&[("token", &b"\xff"[..])][..], "key \"token\" is not UTF-8"),
        ] {
            let got = auth(pairs).unwrap_err();
            let chain = credentials("shop", "prom", &data(pairs), "spec.canary.analysis").unwrap_err().chain();
            assert!(got.contains(expected) || chain.contains(expected), "{expected:?} not in {chain}");
        }
    }
}
