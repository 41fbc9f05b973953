//! Policies component, operator side: load the profile's WASM policies (built-in, ConfigMap or HTTPS, pinned by
//! sha256), validate their settings, evaluate them on what was observed, and publish the decisions, or what
//! `onFailure` says when a policy fails. Every failure is bounded by the host and reported in `PoliciesReady`.

use super::Context;
use super::status::Report;
use crate::components::cache::PASSWORD_KEY;
use crate::components::{Desired, Observed};
use crate::redis_stats;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use perf_canary::MetricsSource;
use perf_operator_api::{
    self as api, ConfigMapPolicySource, PerformanceProfile, PerformanceProfileStatus, PoliciesStatus, PolicyRef,
    condition,
};
use perf_policy_host::fallback::{self, Publish};
use perf_policy_host::{
    CacheInput, CacheOutput, CacheStats, Evaluator, HostConfig, Policy, PolicyHost, RateLimitInput,
};
use perf_policy_host::{RateLimitOutput, RouteTraffic, World, source};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest component fetched over HTTPS.
const MAX_COMPONENT_BYTES: usize = 16 << 20;
/// Entries of inputs and outputs kept in status.
const STATUS_ITEMS: usize = 20;

/// Environment variable naming extra CA certificates (PEM) for policy URLs.
pub const POLICY_CA_FILE_ENV: &str = "PERF_POLICY_CA_FILE";

/// The WASM host shared by all reconciles, and the policies loaded from ConfigMaps and URLs, by verified sha256.
pub struct PolicyRuntime {
    host: Arc<PolicyHost>,
    evaluator: Evaluator,
    http: reqwest::Client,
    pinned: Mutex<HashMap<(World, String), Arc<Policy>>>,
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
        Ok(Self {
            host: Arc::new(PolicyHost::new(HostConfig::default())?),
            evaluator: Evaluator::new(2),
            http: source::http_client_trusting(Duration::from_secs(10), &extra_roots)?,
            pinned: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, world: World, sha256: &str) -> Option<Arc<Policy>> {
        self.pinned.lock().unwrap_or_else(|p| p.into_inner()).get(&(world, sha256.to_string())).cloned()
    }

    /// Loads the referenced policy. Loaded components are keyed by their verified digest, so a changed pin is a new
    /// key and the new component is loaded without a restart. A ConfigMap is read on every call, since it may have
    /// been edited in place since its pin was loaded; a URL is fetched once per pin.
    async fn load(
        &self,
        ctx: &Context,
        profile: &PerformanceProfile,
        world: World,
        r: &PolicyRef,
    ) -> Result<Arc<Policy>, Failure> {
        if let Some(name) = &r.builtin {
            return self
                .evaluator
                .load_builtin(self.host.clone(), world, name.clone())
                .await
                .map_err(Failure::unavailable);
        }
        let (sha256, bytes) = if let Some(cm) = &r.config_map {
            let namespace = profile.namespace().unwrap_or_else(|| "default".into());
            let bytes = config_map_bytes(ctx, &namespace, &cm.name, &cm.key).await.map_err(Failure::source)?;
            let sha256 = check_config_map_pin(&namespace, cm, &bytes)?;
            if let Some(p) = self.cached(world, &sha256) {
                return Ok(p);
            }
            (sha256, bytes)
        } else if let Some(u) = &r.url {
            if let Some(p) = self.cached(world, &u.sha256) {
                return Ok(p);
            }
            (
                u.sha256.clone(),
                source::fetch(&self.http, &u.url, &u.sha256, MAX_COMPONENT_BYTES)
                    .await
                    .map_err(Failure::unavailable)?,
            )
        } else {
            return Err(Failure::source("policy names no source".into()));
        };
        let policy = self
            .evaluator
            .load_pinned(self.host.clone(), world, bytes.into(), sha256.clone())
            .await
            .map_err(Failure::unavailable)?;
        self.pinned.lock().unwrap_or_else(|p| p.into_inner()).insert((world, sha256), policy.clone());
        Ok(policy)
    }
}

/// Checks the bytes read from a ConfigMap against the profile's pin; returns their digest. A mismatch (the
/// ConfigMap edited in place, or a wrong pin) is refused with reason `PinMismatch`, naming the ConfigMap, the key and
/// both digests.
fn check_config_map_pin(namespace: &str, cm: &ConfigMapPolicySource, bytes: &[u8]) -> Result<String, Failure> {
    source::verify_sha256(bytes, &cm.sha256).map_err(|e| match &e {
        perf_policy_host::Error::DigestMismatch { expected, actual } => Failure {
            reason: PIN_MISMATCH,
            category: e.category(),
            message: format!(
                "ConfigMap {namespace}/{} key {:?} holds a component with sha256 {actual}, but the profile pins \
                 {expected}: refused ({})",
                cm.name,
                cm.key,
                e.category()
            ),
        },
        _ => Failure::unavailable(e),
    })
}

/// Condition reason of a component whose digest is not its pin.
pub const PIN_MISMATCH: &str = "PinMismatch";

/// Whether `profile` takes a policy from the ConfigMap `namespace/name`, so that an edit of that ConfigMap must
/// reconcile it.
pub fn uses_config_map(profile: &PerformanceProfile, namespace: Option<&str>, name: &str) -> bool {
    let cache = profile.spec.cache.as_ref().and_then(|c| c.policy.as_ref());
    let rate_limit = profile.spec.rate_limit.as_ref().and_then(|r| r.policy.as_ref());
    profile.namespace().as_deref() == namespace
        && cache.into_iter().chain(rate_limit).any(|r| r.config_map.as_ref().is_some_and(|cm| cm.name == name))
}

/// The profiles to reconcile when the ConfigMap `namespace/name` changes: those taking a policy from it. Profiles
/// that do not deserialize are left to their own watch events.
pub fn profiles_using_config_map(
    profiles: impl IntoIterator<Item = Arc<DeserializeGuard<PerformanceProfile>>>,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<DeserializeGuard<PerformanceProfile>>> {
    profiles
        .into_iter()
        .filter(|g| g.0.as_ref().is_ok_and(|p| uses_config_map(p, namespace, name)))
        .map(|g| ObjectRef::from_obj(&*g))
        .collect()
}

/// Why a policy gave no decision: condition reason, metric category (a fixed set), message.
#[derive(Clone, Debug)]
struct Failure {
    reason: &'static str,
    category: &'static str,
    message: String,
}

impl Failure {
    fn host(reason: &'static str, e: perf_policy_host::Error) -> Self {
        Self { reason, category: e.category(), message: format!("{e} ({})", e.category()) }
    }
    fn source(message: String) -> Self {
        Self { reason: "Unavailable", category: "source", message }
    }
    /// A component that could not be had: `PinMismatch` when its digest is not the pin, `Unavailable` otherwise.
    fn unavailable(e: perf_policy_host::Error) -> Self {
        let reason =
            if matches!(e, perf_policy_host::Error::DigestMismatch { .. }) { PIN_MISMATCH } else { "Unavailable" };
        Self::host(reason, e)
    }
}

async fn config_map_bytes(ctx: &Context, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, String> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let cm =
        api.get_opt(name).await.map_err(|e| e.to_string())?.ok_or(format!("ConfigMap {namespace}/{name} not found"))?;
    cm.binary_data
        .and_then(|d| d.get(key).cloned())
        .map(|b| b.0)
        .ok_or(format!("ConfigMap {namespace}/{name} has no binaryData key {key:?}"))
}

/// How a policy reference is shown in status and events.
fn label(r: &PolicyRef) -> String {
    match (&r.builtin, &r.config_map, &r.url) {
        (Some(b), _, _) => format!("builtin:{b}"),
        (_, Some(cm), _) => format!("configMap:{}/{}@{}", cm.name, cm.key, short(&cm.sha256)),
        (_, _, Some(u)) => format!("url:{}@{}", u.url, short(&u.sha256)),
        _ => "none".into(),
    }
}

fn short(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}

/// One world's result: what to publish and the status entry.
struct Outcome<T> {
    publish: Publish<T>,
    entry: Value,
    failure: Option<Failure>,
}

/// Validates settings, then evaluates; any failure goes through `onFailure`.
/// What `onFailure` may fall back to.
struct Fallback<'a, T> {
    last_good: Option<&'a T>,
    spec: &'a T,
}

async fn run<I: Clone + Send + 'static, O: Clone + Send + 'static, T: Clone>(
    ctx: &Context,
    profile: &PerformanceProfile,
    (world, r): (World, &PolicyRef),
    input: I,
    eval: impl FnOnce(Arc<Policy>, I) -> perf_policy_host::Result<O> + Send + 'static,
    decode: impl Fn(&O) -> T,
    fallback: Fallback<'_, T>,
) -> (Outcome<T>, Option<O>) {
    let runtime = &ctx.policies;
    ctx.metrics.policy_evaluations.with_label_values(&[world.as_str()]).inc();
    let settings = perf_policy_host::spec::settings_text(r.settings.as_ref());
    let result: Result<O, Failure> = async {
        let policy = runtime.load(ctx, profile, world, r).await?;
        // Settings are checked before any decision is used.
        runtime
            .evaluator
            .validate_settings(policy.clone(), settings)
            .await
            .map_err(|e| Failure::host("BadSettings", e))?;
        runtime.evaluator.run(move || eval(policy, input)).await.map_err(|e| Failure::host("PolicyFailed", e))
    }
    .await;
    if let Err(f) = &result {
        ctx.metrics.policy_failures.with_label_values(&[world.as_str(), f.category]).inc();
    }
    let decoded = result.as_ref().map(&decode).map_err(|e| e.clone());
    let publish = fallback::publish(decoded, r.on_failure, fallback.last_good, fallback.spec);
    let entry = json!({ "policy": label(r), "published": publish.source() });
    let failure = result.as_ref().err().cloned();
    (Outcome { publish, entry, failure }, result.ok())
}

/// Evaluates the profile's policies and rewrites the published TTLs and limits in `desired`.
pub async fn reconcile(
    profile: &PerformanceProfile,
    ctx: &Context,
    observed: &Observed,
    desired: &mut Desired,
    status: &mut PerformanceProfileStatus,
) -> Report {
    let cache_policy = profile.spec.cache.as_ref().and_then(|c| c.policy.as_ref().map(|p| (c, p)));
    let rate_policy = profile.spec.rate_limit.as_ref().and_then(|r| r.policy.as_ref().map(|p| (r, p)));
    if cache_policy.is_none() && rate_policy.is_none() {
        return Report::not_configured(condition::POLICIES_READY);
    }
    let _timer = ctx.metrics.timer("policies");
    ctx.metrics.reconciles.with_label_values(&["policies"]).inc();
    let previous = profile.status.as_ref();
    let mut evaluations = serde_json::Map::new();
    let mut failures = Vec::new();
    let mut withheld = false;

    if let (Some((spec, r)), Some(plan)) = (cache_policy, desired.cache.as_mut()) {
        let last_good = previous.and_then(|s| s.cache.as_ref()).map(|c| c.ttl_seconds.clone());
        let stats = cache_stats(observed, &plan.address, desired_password(&desired.objects)).await;
        let input = CacheInput::from_spec(
            &spec.ttl_classes,
            last_good.as_ref().unwrap_or(&plan.ttl_seconds),
            stats.unwrap_or_default(),
            &profile.spec.slo,
            r.settings.as_ref(),
        );
        let decode_input = input.clone();
        let (mut outcome, output) = run(
            ctx,
            profile,
            (World::Cache, r),
            input,
            |p, i| p.evaluate_cache(&i),
            move |o: &CacheOutput| o.ttl_seconds(&decode_input),
            Fallback { last_good: last_good.as_ref(), spec: &plan.ttl_seconds },
        )
        .await;
        outcome.entry["observed"] = json!({ "redis": stats.as_ref().map(|s| json!({"hits": s.hits, "misses": s.misses, "evictions": s.evictions, "usedMemoryBytes": s.used_memory_bytes, "maxMemoryBytes": s.max_memory_bytes, "keys": s.keys})) });
        if let Some(o) = &output {
            outcome.entry["reason"] = json!(o.reason);
            outcome.entry["memoryAdvice"] = json!(o.memory);
        }
        match outcome.publish.value() {
            Some(ttls) => plan.ttl_seconds = ttls.clone(),
            None => {
                withheld = true;
                plan.ttl_seconds = last_good.unwrap_or_default();
            }
        }
        outcome.entry["ttlSeconds"] = json!(plan.ttl_seconds.iter().take(STATUS_ITEMS).collect::<BTreeMap<_, _>>());
        if let Some(f) = outcome.failure {
            outcome.entry["error"] = json!(f.message);
            failures.push(("cache", f));
        }
        evaluations.insert("cache".into(), outcome.entry);
    }

    if let (Some((spec, r)), Some(plan)) = (rate_policy, desired.rate_limits.as_mut()) {
        let published: BTreeMap<String, perf_policy_host::RouteLimit> = previous
            .and_then(|s| s.policies.as_ref())
            .and_then(|p| p.evaluations.as_ref())
            .and_then(|e| e.get("rateLimit")?.get("routes").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let traffic = route_traffic(profile, ctx, spec).await;
        let input =
            RateLimitInput::from_spec(&spec.routes, &published, &traffic, &profile.spec.slo, r.settings.as_ref());
        let spec_limits = RateLimitOutput::from_spec(&spec.routes).by_route(&input);
        let last_good = (!published.is_empty()).then_some(&published);
        let decode_input = input.clone();
        let (mut outcome, output) = run(
            ctx,
            profile,
            (World::RateLimit, r),
            input,
            |p, i| p.evaluate_rate_limit(&i),
            move |o: &RateLimitOutput| o.by_route(&decode_input),
            Fallback { last_good, spec: &spec_limits },
        )
        .await;
        let chosen = match outcome.publish.value() {
            Some(v) => v.clone(),
            None => {
                withheld = true;
                published.clone()
            }
        };
        plan.routes = spec
            .routes
            .iter()
            .filter_map(|r| {
                chosen.get(&r.route).map(|l| api::RouteLimit {
                    route: r.route.clone(),
                    requests_per_second: l.requests_per_second,
                    burst: l.burst,
                })
            })
            .collect();
        if let Some(o) = &output {
            outcome.entry["reason"] = json!(o.reason);
        }
        outcome.entry["observed"] = json!(traffic.iter().take(STATUS_ITEMS).collect::<BTreeMap<_, _>>());
        outcome.entry["routes"] =
            json!(chosen.iter().take(STATUS_ITEMS.max(spec.routes.len())).collect::<BTreeMap<_, _>>());
        if let Some(f) = outcome.failure {
            outcome.entry["error"] = json!(f.message);
            failures.push(("rateLimit", f));
        }
        evaluations.insert("rateLimit".into(), outcome.entry);
    }

    status.policies = Some(PoliciesStatus { evaluations: Some(Value::Object(evaluations)) });
    match failures.first() {
        None => Report::ok(condition::POLICIES_READY, "Evaluated", "policy decisions published"),
        Some((world, f)) => {
            let fallback = if withheld { "nothing new published (FailClosed)" } else { "fallback published" };
            Report::failed(condition::POLICIES_READY, f.reason, format!("{world} policy: {}; {fallback}", f.message))
        }
    }
}

/// The provisioned Redis password, from the desired Secret (the observed one, so it matches the server).
fn desired_password(objects: &crate::components::OwnedObjects) -> Option<String> {
    objects
        .secrets
        .first()
        .and_then(|s| s.data.as_ref()?.get(PASSWORD_KEY).and_then(|b| String::from_utf8(b.0.clone()).ok()))
}

/// Redis statistics, or None when the Redis cannot be read (the policy then decides on zero observations). An
/// external Redis was read once already, in `observe`; the provisioned one is read here, where it is needed.
async fn cache_stats(
    observed: &Observed,
    provisioned_address: &str,
    provisioned_password: Option<String>,
) -> Option<CacheStats> {
    let s = match &observed.external_redis {
        Some(answer) => answer.as_ref().ok()?.clone(),
        None => {
            let url = format!("redis://{provisioned_address}");
            redis_stats::fetch(&url, provisioned_password.as_deref(), Duration::from_secs(2)).await.ok()?
        }
    };
    Some(CacheStats {
        hits: s.hits,
        misses: s.misses,
        evictions: s.evicted_keys,
        used_memory_bytes: s.used_memory_bytes,
        max_memory_bytes: s.max_memory_bytes,
        keys: s.keys,
    })
}

/// Per-route traffic from Prometheus (label `route`), over the last minute. A route whose queries fail has no data.
async fn route_traffic(
    profile: &PerformanceProfile,
    ctx: &Context,
    spec: &api::RateLimitSpec,
) -> BTreeMap<String, RouteTraffic> {
    let Some(url) = &spec.prometheus else { return BTreeMap::new() };
    let Ok(prom) = ctx.prometheus.get(url) else { return BTreeMap::new() };
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let mut out = BTreeMap::new();
    for r in &spec.routes {
        let sel = format!(r#"namespace="{namespace}", route="{}""#, r.route.replace('\\', "\\\\").replace('"', "\\\""));
        let queries = [
            format!("sum(rate(http_requests_total{{{sel}}}[1m]))"),
            format!(
                "1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[1m])))"
            ),
            format!(
                r#"100 * sum(rate(http_requests_total{{{sel}, code=~"5.."}}[1m])) / sum(rate(http_requests_total{{{sel}}}[1m]))"#
            ),
            format!(r#"sum(rate(http_requests_total{{{sel}, code="429"}}[1m])) or vector(0)"#),
        ];
        let mut values = [0.0; 4];
        let mut complete = true;
        for (i, q) in queries.iter().enumerate() {
            match prom.query(q).await {
                Ok(Some(v)) if v.is_finite() => values[i] = v,
                _ => complete = false,
            }
        }
        if complete {
            out.insert(
                r.route.clone(),
                RouteTraffic {
                    requests_per_second: values[0],
                    p99_latency_ms: values[1],
                    error_percent: values[2],
                    rejected_per_second: values[3],
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile `name` in `namespace` whose cache and rate-limit policies come from `cache` and `rate_limit`.
    fn profile(
        namespace: &str,
        name: &str,
        cache: Value,
        rate_limit: Value,
    ) -> Arc<DeserializeGuard<PerformanceProfile>> {
        // `null` means no policy.
        let p: PerformanceProfile = serde_json::from_value(json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "targetRef": {"name": name},
                "cache": {"redis": {"external": {"address": "redis://127.0.0.1:6379"}}, "ttlClasses": [], "policy": cache},
                "rateLimit": {"routes": [], "policy": rate_limit}
            }
        }))
        .unwrap();
        Arc::new(DeserializeGuard(Ok(p)))
    }

    fn from_config_map(name: &str) -> Value {
        json!({"configMap": {"name": name, "key": "policy.wasm", "sha256": "0".repeat(64)}})
    }

    fn names(refs: Vec<ObjectRef<DeserializeGuard<PerformanceProfile>>>) -> Vec<String> {
        refs.into_iter().map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name)).collect()
    }

    #[test]
    fn a_config_map_maps_to_the_profiles_taking_a_policy_from_it_in_its_namespace() {
        let profiles = vec![
            profile("shop", "cache-user", from_config_map("policies"), Value::Null),
            profile("shop", "rate-limit-user", json!({"builtin": "adaptive-rate-limit"}), from_config_map("policies")),
            profile("shop", "other-config-map", from_config_map("other"), Value::Null),
            profile("shop", "builtin-only", json!({"builtin": "adaptive-ttl"}), Value::Null),
            profile("billing", "same-name-elsewhere", from_config_map("policies"), Value::Null),
        ];
        assert_eq!(
            names(profiles_using_config_map(profiles.clone(), Some("shop"), "policies")),
            ["shop/cache-user", "shop/rate-limit-user"]
        );
        assert_eq!(
            names(profiles_using_config_map(profiles.clone(), Some("billing"), "policies")),
            ["billing/same-name-elsewhere"]
        );
        // The contract ConfigMap the operator writes, or any other ConfigMap, reconciles nothing.
        assert!(profiles_using_config_map(profiles.clone(), Some("shop"), "cache-user-perf").is_empty());
        assert!(profiles_using_config_map(profiles, None, "policies").is_empty());
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
        assert_eq!((f.reason, f.category), (PIN_MISMATCH, "digest_mismatch"));
        for part in ["ConfigMap shop/policies", "\"ttl.wasm\"", &digest, &old] {
            assert!(f.message.contains(part), "{part} missing from: {}", f.message);
        }

        let f = check_config_map_pin("shop", &pinned("not-a-digest"), bytes).unwrap_err();
        assert_eq!((f.reason, f.category), ("Unavailable", "bad_source"));
    }
}
