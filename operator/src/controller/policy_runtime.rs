//! Loading the profiles' WASM policies: built-in, from a ConfigMap, over HTTPS or from an OCI registry
//! ([`super::policy_registry`]), pinned by sha256 and kept by verified digest. Evaluation is part of the pure decision ([`crate::decide::policy`]).

use super::policy_registry::{self, Signers};
use crate::decide::PolicyUnavailable;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use perf_operator_api::{ConfigMapPolicySource, PerformanceProfile, PolicyRef, RefusedComponent};
use perf_policy_host::registry::{DEFAULT_REDIRECT_HOSTS, RegistryClient};
use perf_policy_host::{Evaluator, HostConfig, Policy, PolicyHost, World, source};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long fetching a component may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest component fetched over HTTPS.
const MAX_COMPONENT_BYTES: usize = 16 << 20;

/// Environment variable naming extra CA certificates (PEM) for policy URLs.
pub const POLICY_CA_FILE_ENV: &str = "PERF_POLICY_CA_FILE";

/// The WASM host shared by all reconciles. It keeps compiled components (and load failures) by verified sha256 and
/// gives every profile its own instances.
pub struct PolicyRuntime {
    host: Arc<PolicyHost>,
    /// Runs compilation and decisions with policies off the async workers, a bounded number at a time.
    pub evaluator: Evaluator,
    http: reqwest::Client,
    /// Extra CA certificates for policy URLs, kept to build the client again under a new egress rule.
    extra_roots: Vec<u8>,
    /// Where policy URLs may lead; the default denies the reserved ranges.
    egress: perf_egress::Egress,
    versions: ConfigMapVersions,
    fetched: Fetched,
    /// Registry sources: the same bounds as `http`, redirects only to the registry or the allowed blob hosts.
    registry: perf_policy_host::registry::RegistryClient,
    redirect_hosts: Vec<String>,
    signers: Signers,
}

/// Which namespaces fetched which digest from which URL. A component compiled for one tenant is kept by its digest;
/// another tenant naming that digest must still fetch it from its own URL once (and so prove it can), or it would get
/// a component it could not have fetched itself.
#[derive(Default)]
struct Fetched(Mutex<HashSet<(String, String, String)>>);

/// (namespace, url, digest) triples kept at most; past it the memory starts over (each tenant then fetches once
/// more).
const MAX_FETCHED: usize = 4096;

impl Fetched {
    fn contains(&self, namespace: &str, url: &str, sha256: &str) -> bool {
        lock(&self.0).contains(&(namespace.into(), url.into(), sha256.into()))
    }

    fn record(&self, namespace: &str, url: &str, sha256: &str) {
        let mut fetched = lock(&self.0);
        if fetched.len() >= MAX_FETCHED {
            fetched.clear();
        }
        fetched.insert((namespace.into(), url.into(), sha256.into()));
    }
}

/// Which version of each policy ConfigMap the loader last read (and the digest of each key it took), and the newest
/// version its watch reported: the bytes are read again only when the version moved.
#[derive(Default)]
struct ConfigMapVersions {
    /// (namespace, name, key) -> (resourceVersion read, sha256 of the key's bytes).
    read: Mutex<HashMap<KeyOf, (String, String)>>,
    /// (namespace, name) -> newest resourceVersion a watch event carried.
    seen: Mutex<HashMap<(String, String), String>>,
    /// ConfigMap watches running: without one, no event says a version moved, so every load reads.
    watches: Arc<AtomicUsize>,
}

/// A ConfigMap's key: (namespace, name, key).
type KeyOf = (String, String, String);

/// A ConfigMap watch feeding [`PolicyRuntime::saw_config_map`], counted while it lives.
pub struct ConfigMapWatch(Arc<AtomicUsize>);

impl Drop for ConfigMapWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConfigMapVersions {
    /// The digest read at a version no watch event has moved past since, if it is `pin`.
    fn unchanged(&self, namespace: &str, name: &str, key: &str, pin: &str) -> bool {
        if self.watches.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let read = lock(&self.read);
        let Some((version, digest)) = read.get(&(namespace.into(), name.into(), key.into())) else { return false };
        let seen = lock(&self.seen);
        digest == pin && seen.get(&(namespace.into(), name.into())).is_none_or(|s| s == version)
    }

    fn record(&self, namespace: &str, name: &str, key: &str, version: String, digest: String) {
        lock(&self.read).insert((namespace.into(), name.into(), key.into()), (version, digest));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What to load: the profile (its namespace for a ConfigMap source, and its name: its instances are its own), the
/// world and the reference.
pub struct Loading<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub world: World,
    pub policy: &'a PolicyRef,
    /// The spec field of the reference (`spec.cache.policy`, `spec.rateLimit.candidate`, ...), for messages.
    pub field: &'a str,
    /// The refusal the profile's status records for this world's policy, if any.
    pub refused: Option<&'a RefusedComponent>,
}

impl PolicyRuntime {
    /// `PERF_POLICY_CA_FILE` names a PEM bundle of extra CA certificates to trust for policy URLs (a private CA);
    /// without it the platform's roots are used.
    pub fn new() -> perf_policy_host::Result<Self> {
        let extra_roots = match std::env::var_os(POLICY_CA_FILE_ENV) {
            Some(path) => std::fs::read(&path).map_err(|e| perf_policy_host::Error::Input {
                what: format!("{POLICY_CA_FILE_ENV}={}", path.to_string_lossy()),
                detail: e.to_string(),
            })?,
            None => Vec::new(),
        };
        Self::trusting(&extra_roots)
    }

    /// A runtime that trusts `extra_roots` (PEM, may be empty) besides the platform's roots for policy URLs.
    pub fn trusting(extra_roots: &[u8]) -> perf_policy_host::Result<Self> {
        let egress = perf_egress::Egress::default();
        let redirect_hosts: Vec<String> = DEFAULT_REDIRECT_HOSTS.map(String::from).to_vec();
        Ok(Self {
            host: Arc::new(PolicyHost::new(HostConfig::default())?),
            evaluator: Evaluator::new(2),
            http: source::http_client_reaching(FETCH_TIMEOUT, extra_roots, egress.clone())?,
            registry: RegistryClient::new(FETCH_TIMEOUT, extra_roots, egress.clone(), &redirect_hosts)?,
            extra_roots: extra_roots.to_vec(),
            egress,
            versions: ConfigMapVersions::default(),
            fetched: Fetched::default(),
            redirect_hosts,
            signers: Signers::default(),
        })
    }

    /// Registry sources may redirect to `redirect_hosts` besides their own host, and every component a tenant names
    /// must be signed by one of `signers.admin` (when any): registry components by a cosign signature, other sources
    /// are then refused (only a registry carries signatures).
    pub fn registry_rules(&mut self, redirect_hosts: Vec<String>, signers: Signers) -> perf_policy_host::Result<()> {
        self.registry = RegistryClient::new(FETCH_TIMEOUT, &self.extra_roots, self.egress.clone(), &redirect_hosts)?;
        self.redirect_hosts = redirect_hosts;
        self.signers = signers;
        Ok(())
    }

    /// Compiles tenants' components in `worker` from now on (a new host: nothing was loaded yet at start-up).
    pub fn compile_in(&mut self, worker: perf_policy_host::isolate::CompileWorker) -> perf_policy_host::Result<()> {
        self.host = Arc::new(PolicyHost::new(HostConfig { compile_worker: Some(worker), ..HostConfig::default() })?);
        Ok(())
    }

    /// Policy URLs (and their redirects) lead only where `egress` allows.
    pub fn reach(&mut self, egress: perf_egress::Egress) -> perf_policy_host::Result<()> {
        self.http = source::http_client_reaching(FETCH_TIMEOUT, &self.extra_roots, egress.clone())?;
        self.registry = RegistryClient::new(FETCH_TIMEOUT, &self.extra_roots, egress.clone(), &self.redirect_hosts)?;
        self.egress = egress;
        Ok(())
    }

    /// Counts a ConfigMap watch that reports to [`Self::saw_config_map`] for as long as the guard lives.
    pub fn config_map_watch(&self) -> ConfigMapWatch {
        self.versions.watches.fetch_add(1, Ordering::SeqCst);
        ConfigMapWatch(self.versions.watches.clone())
    }

    /// A watch event of ConfigMap `namespace/name` at `version`, for a ConfigMap some profile takes a policy from.
    pub fn saw_config_map(&self, namespace: &str, name: &str, version: Option<String>) {
        let mut seen = lock(&self.versions.seen);
        match version {
            Some(v) => seen.insert((namespace.into(), name.into()), v),
            None => seen.remove(&(namespace.into(), name.into())),
        };
    }

    /// Loads the referenced policy. Loaded components are keyed by their verified digest, so a changed pin is a new
    /// key and the new component is loaded without a restart. A ConfigMap is read again whenever its version moved
    /// (it may have been edited in place since its pin was loaded); a URL is fetched once per pin.
    pub async fn load(&self, client: &Client, what: Loading<'_>) -> Result<Arc<Policy>, PolicyUnavailable> {
        let Loading { namespace, name, world, policy: r, field, refused } = what;
        let tenant = format!("{namespace}/{name}");
        if let Some(builtin) = &r.builtin {
            let host = self.host.clone();
            return self.evaluator.load_builtin(host, tenant, world, builtin.clone()).await.map_err(unavailable);
        }
        // Only a registry carries signatures: when the administrator requires them, no other source is taken.
        if !self.signers.admin.is_empty() && r.registry.is_none() {
            let message = "the operator's administrator requires policies signed with cosign \
                           (--policy-cosign-key): only a registry source carries a signature"
                .to_string();
            return Err(PolicyUnavailable::Source { message });
        }
        // Refused before, maybe by an operator that then ran out of memory: not compiled again.
        let pin = r.config_map.as_ref().map(|c| &c.sha256).or(r.url.as_ref().map(|u| &u.sha256));
        let pin = pin.or(r.registry.as_ref().map(|g| &g.sha256));
        let kept = self.host.config().load_limits.compile_timeout_kept;
        if let Some(refused) = pin.and_then(|pin| still_refused(refused, pin, kept, Timestamp::now())) {
            return Err(refused);
        }
        // A component loaded before (or refused before) needs no bytes: its digest says which it is.
        let cached = |sha256: &str| self.host.cached(&tenant, world, sha256).map(|r| r.map_err(unavailable));
        let (sha256, bytes) = if let Some(cm) = &r.config_map {
            if self.versions.unchanged(namespace, &cm.name, &cm.key, &cm.sha256)
                && let Some(loaded) = cached(&cm.sha256)
            {
                return loaded;
            }
            let (bytes, version) = config_map_bytes(client, namespace, &cm.name, &cm.key).await?;
            let sha256 = check_config_map_pin(namespace, cm, &bytes)?;
            if let Some(version) = version {
                self.versions.record(namespace, &cm.name, &cm.key, version, sha256.clone());
            }
            if let Some(loaded) = cached(&sha256) {
                return loaded;
            }
            (sha256, bytes)
        } else if let Some(u) = &r.url {
            if self.fetched.contains(namespace, &u.url, &u.sha256)
                && let Some(loaded) = cached(&u.sha256)
            {
                return loaded;
            }
            self.reachable(&u.url)?;
            let bytes = source::fetch(&self.http, &u.url, &u.sha256, MAX_COMPONENT_BYTES).await.map_err(unavailable)?;
            self.fetched.record(namespace, &u.url, &u.sha256);
            // Compiled before (for any tenant): these verified bytes are that component, no second compile.
            if let Some(loaded) = cached(&u.sha256) {
                return loaded;
            }
            (u.sha256.clone(), bytes)
        } else if let Some(g) = &r.registry {
            let proven = policy_registry::requirement(g, &self.signers);
            if self.fetched.contains(namespace, &proven, &g.sha256)
                && let Some(loaded) = cached(&g.sha256)
            {
                return loaded;
            }
            let registry_client = &self.registry;
            let bytes =
                policy_registry::pull(registry_client, client, namespace, field, g, &self.signers, MAX_COMPONENT_BYTES)
                    .await?;
            self.fetched.record(namespace, &proven, &g.sha256);
            if let Some(loaded) = cached(&g.sha256) {
                return loaded;
            }
            (g.sha256.clone(), bytes)
        } else {
            return Err(PolicyUnavailable::Source { message: "policy names no source".into() });
        };
        self.evaluator.load_pinned(self.host.clone(), tenant, world, bytes.into(), sha256).await.map_err(unavailable)
    }
}

/// The refusal `refused` records for `pin`, while it holds at `now`: for good, except a missed compile deadline
/// (`kept` after it, as the host's own memory of it). A record of an unknown category is not believed.
fn still_refused(
    refused: Option<&RefusedComponent>,
    pin: &str,
    kept: Duration,
    now: Timestamp,
) -> Option<PolicyUnavailable> {
    let refused = refused.filter(|r| r.sha256 == pin)?;
    let category = perf_policy_host::Error::REFUSAL_CATEGORIES.into_iter().find(|c| *c == refused.category)?;
    let elapsed = now.duration_since(refused.at.0);
    let expired = category == "compile_timeout" && (elapsed.is_negative() || elapsed.unsigned_abs() >= kept);
    (!expired).then(|| PolicyUnavailable::Refused { refused: refused.clone(), category })
}

/// A component that could not be had: a pin mismatch when its digest is not the pin.
impl PolicyRuntime {
    /// Refuses a URL whose written address the egress rule does not allow (a name is screened when resolved).
    fn reachable(&self, url: &str) -> Result<(), PolicyUnavailable> {
        let parsed = reqwest::Url::parse(url).map_err(|e| fetch_failed(url, e.to_string()))?;
        perf_egress::http::literal(&self.egress, perf_egress::Kind::Policy, &parsed)
            .map_err(|refusal| fetch_failed(url, refusal.to_string()))
    }
}

fn fetch_failed(url: &str, detail: String) -> PolicyUnavailable {
    PolicyUnavailable::Host(perf_policy_host::Error::Fetch { url: url.to_string(), detail })
}

fn unavailable(e: perf_policy_host::Error) -> PolicyUnavailable {
    match &e {
        perf_policy_host::Error::DigestMismatch { .. } => PolicyUnavailable::PinMismatch { message: e.to_string() },
        _ => PolicyUnavailable::Host(e),
    }
}

/// Checks the bytes read from a ConfigMap against the profile's pin; returns their digest. A mismatch (the
/// ConfigMap edited in place, or a wrong pin) names the ConfigMap, the key and both digests.
fn check_config_map_pin(
    namespace: &str,
    cm: &ConfigMapPolicySource,
    bytes: &[u8],
) -> Result<String, PolicyUnavailable> {
    source::verify_sha256(bytes, &cm.sha256).map_err(|e| match &e {
        perf_policy_host::Error::DigestMismatch { expected, actual } => PolicyUnavailable::PinMismatch {
            message: format!(
                "ConfigMap {namespace}/{} key {:?} holds a component with sha256 {actual}, but the profile pins \
                 {expected}: refused ({})",
                cm.name,
                cm.key,
                e.category()
            ),
        },
        _ => PolicyUnavailable::Host(e),
    })
}

/// The bytes of `key` and the ConfigMap's resourceVersion.
async fn config_map_bytes(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<(Vec<u8>, Option<String>), PolicyUnavailable> {
    let source = |message: String| PolicyUnavailable::Source { message };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api
        .get_opt(name)
        .await
        .map_err(|e| source(format!("ConfigMap {namespace}/{name}: {e}")))?
        .ok_or_else(|| source(format!("ConfigMap {namespace}/{name} not found")))?;
    let version = cm.metadata.resource_version;
    let bytes = cm
        .binary_data
        .and_then(|d| d.get(key).cloned())
        .map(|b| b.0)
        .ok_or_else(|| source(format!("ConfigMap {namespace}/{name} has no binaryData key {key:?}")))?;
    Ok((bytes, version))
}

/// The ConfigMaps (in the profile's namespace) `profile` takes a policy or a candidate from, each once, so that an
/// edit of one of them reconciles it ([`super::triggers::References`]).
pub fn config_maps_used(profile: &PerformanceProfile) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, policy) in profile.spec.policy_refs() {
        if let Some(cm) = policy.config_map.as_ref().filter(|cm| !names.contains(&cm.name)) {
            names.push(cm.name.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A profile `name` in `namespace` whose cache and rate-limit policies come from `cache` and `rate_limit`.
    fn profile(namespace: &str, name: &str, cache: Value, rate_limit: Value) -> PerformanceProfile {
        // `null` means no policy.
        serde_json::from_value(json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "targetRef": {"name": name},
                "cache": {"redis": {"external": {"address": "redis://127.0.0.1:6379"}}, "ttlClasses": [], "policy": cache},
                "rateLimit": {"routes": [], "policy": rate_limit}
            }
        }))
        .unwrap()
    }

    fn from_config_map(name: &str) -> Value {
        json!({"configMap": {"name": name, "key": "policy.wasm", "sha256": "0".repeat(64)}})
    }

    #[test]
    fn a_config_map_maps_to_the_profiles_taking_a_policy_from_it_in_its_namespace() {
        let references = super::super::triggers::References::default();
        for p in [
            profile("shop", "cache-user", from_config_map("policies"), Value::Null),
            profile("shop", "rate-limit-user", json!({"builtin": "adaptive-rate-limit"}), from_config_map("policies")),
            profile("shop", "both", from_config_map("policies"), from_config_map("policies")),
            profile("shop", "other-config-map", from_config_map("other"), Value::Null),
            profile("shop", "builtin-only", json!({"builtin": "adaptive-ttl"}), Value::Null),
            profile("billing", "same-name-elsewhere", from_config_map("policies"), Value::Null),
        ] {
            references.learn(&p);
        }
        let names = |ns: Option<&str>, cm: &str| {
            let refs = references.config_maps.profiles(ns, cm);
            refs.into_iter().map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name)).collect::<Vec<_>>()
        };
        assert_eq!(names(Some("shop"), "policies"), ["shop/both", "shop/cache-user", "shop/rate-limit-user"]);
        assert_eq!(names(Some("billing"), "policies"), ["billing/same-name-elsewhere"]);
        // The contract ConfigMap the operator writes, or any other ConfigMap, reconciles nothing.
        assert!(names(Some("shop"), "cache-user-perf").is_empty());
        assert!(names(None, "policies").is_empty());
        assert_eq!(config_maps_used(&profile("shop", "both", from_config_map("p"), from_config_map("p"))), ["p"]);
    }

    #[test]
    fn config_map_bytes_are_checked_against_the_pin_naming_the_source_and_both_digests() {
        let bytes = b"component B".as_slice();
        let digest = source::sha256_hex(bytes);
        let pinned = |sha256: &str| ConfigMapPolicySource {
            name: "policies".into(),
            key: "ttl.wasm".into(),
            sha256: sha256.into(),
        };
        assert_eq!(check_config_map_pin("shop", &pinned(&digest), bytes).unwrap(), digest);

        let old = source::sha256_hex(b"component A");
        let f = check_config_map_pin("shop", &pinned(&old), bytes).unwrap_err();
        let PolicyUnavailable::PinMismatch { message } = &f else { panic!("{f:?}") };
        for part in ["ConfigMap shop/policies", "\"ttl.wasm\"", &digest, &old] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }

        let f = check_config_map_pin("shop", &pinned("not-a-digest"), bytes).unwrap_err();
        assert!(matches!(&f, PolicyUnavailable::Host(e) if e.category() == "bad_source"), "{f:?}");
    }

    #[test]
    fn a_refusal_in_status_holds_for_its_pin_and_a_missed_deadline_only_for_a_while() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let record = |sha256: &str, category: &str| RefusedComponent {
            sha256: sha256.into(),
            category: category.into(),
            message: "too costly".into(),
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at),
        };
        let kept = Duration::from_secs(600);
        let after = |s: i64| at.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
        let held = |r: &RefusedComponent, pin: &str, now| still_refused(Some(r), pin, kept, now).is_some();
        assert!(held(&record("d", "load"), "d", after(86_400 * 365)), "a load refusal holds for good");
        assert!(!held(&record("d", "load"), "e", after(1)), "a new pin is a new component");
        assert!(held(&record("d", "compile_timeout"), "d", after(599)));
        assert!(!held(&record("d", "compile_timeout"), "d", after(600)), "tried again after ten minutes");
        assert!(!held(&record("d", "compile_timeout"), "d", after(-1)), "a record from the future is not believed");
        assert!(!held(&record("d", "trap"), "d", after(1)), "not a load refusal: never believed");
        assert!(still_refused(None, "d", kept, after(1)).is_none());
        let refusal =
            still_refused(Some(&record("d", "wrong_world")), "d", kept, after(1)).map(crate::decide::Unread::from);
        assert_eq!(refusal.map(|u| u.category()), Some("wrong_world"));
    }
}
