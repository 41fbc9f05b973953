//! Policy components from OCI registries, for [`super::policy_runtime`]: credentials from a dockerconfigjson Secret
//! in the profile's own namespace, the keys that must have signed (the profile's and the administrator's), and the
//! pull under the URL sources' bounds ([`perf_policy_host::registry`]).

use crate::decide::PolicyUnavailable;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use perf_operator_api::RegistryPolicySource;
use perf_policy_host::registry::cosign::PublicKey;
use perf_policy_host::registry::{self, Credentials, RegistryClient, RegistryRef, Want};
use std::path::{Path, PathBuf};

/// The Secret type a pull secret must have, and its key.
const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// What the administrator requires of registry components.
#[derive(Clone, Debug, Default)]
pub struct Signers {
    /// Public keys one of which must have signed every component a tenant names (`--policy-cosign-key`); empty:
    /// only the profile's own key, if it names one.
    pub admin: Vec<PublicKey>,
}

impl Signers {
    /// Reads the administrator's keys: each path a PEM file, or a directory of them (a mounted ConfigMap: hidden
    /// entries such as `..data` are skipped). An unreadable file or a key that is not P-256 is an error naming it.
    pub fn read(paths: &[PathBuf]) -> Result<Self, perf_policy_host::Error> {
        let mut files = Vec::new();
        for path in paths.iter().filter(|p| !p.as_os_str().is_empty()) {
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(|e| unreadable(path, &e))?;
                let mut keys: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                    .collect();
                keys.sort();
                files.extend(keys);
            } else {
                files.push(path.clone());
            }
        }
        let read = |path: &PathBuf| {
            let pem = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))?;
            PublicKey::from_pem(&pem, &format!("--policy-cosign-key {}", path.display()))
        };
        Ok(Self { admin: files.iter().map(read).collect::<Result<_, _>>()? })
    }
}

fn unreadable(path: &Path, e: &std::io::Error) -> perf_policy_host::Error {
    perf_policy_host::Error::Input { what: format!("--policy-cosign-key {}", path.display()), detail: e.to_string() }
}

/// Pulls `source` for a profile in `namespace`: its pin, its Secret's credentials, and signatures by the profile's
/// key and by one of the administrator's.
pub async fn pull(
    registry_client: &RegistryClient,
    client: &Client,
    namespace: &str,
    field: &str,
    source: &RegistryPolicySource,
    signers: &Signers,
    max_bytes: usize,
) -> Result<Vec<u8>, PolicyUnavailable> {
    let r = RegistryRef::parse(&source.reference).map_err(|e| host(field, e))?;
    let credentials = match &source.pull_secret {
        Some(name) => Some(pull_secret(client, namespace, name, &r.host).await?),
        None => None,
    };
    let own = profile_key(source, field)?;
    // Each list must have signed: the profile's key, then one of the administrator's.
    let lists: Vec<&[PublicKey]> =
        [own.as_slice(), signers.admin.as_slice()].into_iter().filter(|l| !l.is_empty()).collect();
    let first = lists.first().copied().unwrap_or_default();
    let want = Want { pin: Some(&source.sha256), credentials: credentials.as_ref(), max_bytes, keys: first };
    let pulled = registry::pull(registry_client, &r, want).await.map_err(unavailable)?;
    for keys in lists.iter().skip(1) {
        registry::verify_signed(registry_client, &r, credentials.as_ref(), &pulled.manifest_digest, keys)
            .await
            .map_err(unavailable)?;
    }
    Ok(pulled.component)
}

/// The profile's own key, parsed (an error names the field).
fn profile_key(source: &RegistryPolicySource, field: &str) -> Result<Vec<PublicKey>, PolicyUnavailable> {
    let Some(pem) = &source.cosign_public_key else { return Ok(Vec::new()) };
    let key = PublicKey::from_pem(pem, &format!("{field}.registry.cosignPublicKey")).map_err(|e| host(field, e))?;
    Ok(vec![key])
}

/// A fingerprint of what a pull was checked against (the keys required), so that a pull proven for one requirement
/// is not taken as proof for a stricter one.
pub fn requirement(source: &RegistryPolicySource, signers: &Signers) -> String {
    let admin = signers.admin.len();
    let own = source
        .cosign_public_key
        .as_deref()
        .map(|k| perf_policy_host::source::sha256_hex(k.as_bytes()))
        .unwrap_or_default();
    format!("{}#{own}#{admin}", source.reference)
}

/// Credentials for `host` from the dockerconfigjson Secret `name` in `namespace`.
async fn pull_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    host: &str,
) -> Result<Credentials, PolicyUnavailable> {
    let source = |message: String| PolicyUnavailable::Source { message };
    let what = format!("pull Secret {namespace}/{name}");
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| source(format!("{what}: {e}")))?
        .ok_or_else(|| source(format!("{what} not found")))?;
    if secret.type_.as_deref() != Some(DOCKER_CONFIG_TYPE) {
        let found = secret.type_.unwrap_or_else(|| "no type".into());
        return Err(source(format!("{what} is of type {found}, expected {DOCKER_CONFIG_TYPE}")));
    }
    let json = secret.data.as_ref().and_then(|d| d.get(DOCKER_CONFIG_KEY)).map(|b| b.0.as_slice());
    let json = json.ok_or_else(|| source(format!("{what} has no {DOCKER_CONFIG_KEY} key")))?;
    Credentials::from_docker_config(json, host, &what)
        .map_err(|e| source(e.to_string()))?
        .ok_or_else(|| source(format!("{what} holds no credentials for {host}")))
}

fn host(field: &str, e: perf_policy_host::Error) -> PolicyUnavailable {
    PolicyUnavailable::Source { message: format!("{field}: {e}") }
}

fn unavailable(e: perf_policy_host::Error) -> PolicyUnavailable {
    match &e {
        perf_policy_host::Error::DigestMismatch { .. } => PolicyUnavailable::PinMismatch { message: e.to_string() },
        _ => PolicyUnavailable::Host(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_administrators_keys_are_read_from_files_and_directories() {
        let dir = std::env::temp_dir().join(format!("perf-signers-{}", std::process::id()));
        let mounted = dir.join("mounted");
        std::fs::create_dir_all(mounted.join("..2026_12_08")).unwrap();
        let pem = || rcgen::KeyPair::generate().unwrap().public_key_pem();
        std::fs::write(mounted.join("platform.pub"), pem()).unwrap();
        std::fs::write(mounted.join("security.pub"), pem()).unwrap();
        std::fs::write(mounted.join("..data"), "a ConfigMap mount's own entry").unwrap();
        std::fs::write(dir.join("single.pub"), pem()).unwrap();
        std::fs::write(dir.join("bad.pub"), "not a key").unwrap();
        let read = |paths: &[PathBuf]| Signers::read(paths).map(|s| s.admin.len());
        assert_eq!(read(&[mounted.clone(), dir.join("single.pub")]).unwrap(), 3);
        assert_eq!(read(&[PathBuf::new()]).unwrap(), 0, "an empty value names no key");
        let e = read(&[dir.join("bad.pub")]).unwrap_err().to_string();
        assert!(e.contains("bad.pub") && e.contains("PEM public key"), "{e}");
        let e = read(&[dir.join("missing.pub")]).unwrap_err().to_string();
        assert!(e.contains("missing.pub"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
