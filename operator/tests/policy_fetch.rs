//! Policy components over HTTPS as tenants fetch them: a component is compiled once and kept by its digest, but a
//! namespace that names that digest must fetch it from its own URL at least once. Another tenant's URL that does
//! not serve those bytes gets a digest mismatch, never the component someone else fetched.

#[path = "../../policies/host/tests/support/https.rs"]
mod https;

use perf_operator::controller::policy_runtime::{Loading, PolicyRuntime};
use perf_operator_api::PolicyRef;
use perf_policy_host::source::sha256_hex;
use perf_policy_host::{BUILTIN_ADAPTIVE_TTL, World};

/// Loads `policy` as the cache policy of `namespace/web`; the error's text when it cannot be had.
async fn load(
    runtime: &PolicyRuntime,
    client: &kube::Client,
    namespace: &str,
    policy: &PolicyRef,
) -> Result<(), String> {
    let what =
        Loading { namespace, name: "web", world: World::Cache, policy, field: "spec.cache.policy", refused: None };
    runtime.load(client, what).await.map(|_| ()).map_err(|e| e.to_string())
}

fn url_policy(url: &str, sha256: &str) -> PolicyRef {
    serde_json::from_value(serde_json::json!({"url": {"url": url, "sha256": sha256}})).unwrap()
}

#[tokio::test]
async fn a_digest_fetched_by_one_tenant_is_not_given_to_another_without_its_own_fetch() {
    perf_operator::tls::install_crypto_provider();
    let ring = rustls::crypto::ring::default_provider;
    let (good, other) = (https::serve(BUILTIN_ADAPTIVE_TTL, ring()).await, https::serve(b"not it", ring()).await);
    let mut runtime = PolicyRuntime::trusting(format!("{}{}", good.ca, other.ca).as_bytes()).unwrap();
    // Never used for a URL source: a client that would fail if it were.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let pin = sha256_hex(BUILTIN_ADAPTIVE_TTL);
    let at_good = url_policy(&format!("https://localhost:{}/ttl.wasm", good.port), &pin);
    // By default a policy URL on the operator's own host is refused before any request.
    for url in
        [format!("https://localhost:{}/ttl.wasm", good.port), format!("https://127.0.0.1:{}/ttl.wasm", good.port)]
    {
        let refused = load(&runtime, &client, "team-a", &url_policy(&url, &pin)).await.err().map(|e| e.to_string());
        assert!(refused.as_deref().is_some_and(|e| e.contains("a loopback address")), "{url}: {refused:?}");
    }
    assert_eq!(good.answered(), 0, "nothing reached the server");
    runtime.reach(perf_egress::Egress::new(&[], &["127.0.0.0/8".into(), "::1".into()], vec![]).unwrap()).unwrap();
    load(&runtime, &client, "team-a", &at_good).await.expect("team-a fetches and loads it");
    assert_eq!(good.answered(), 1);
    load(&runtime, &client, "team-a", &at_good).await.expect("kept for team-a");
    assert_eq!(good.answered(), 1, "team-a fetched it before: no second fetch");

    // team-b names the same digest at a URL that does not serve it: refused, although the component is compiled.
    let elsewhere = url_policy(&format!("https://localhost:{}/ttl.wasm", other.port), &pin);
    let refused = load(&runtime, &client, "team-b", &elsewhere).await.expect_err("team-b cannot have it from its URL");
    assert!(refused.to_string().contains("sha256"), "{refused}");
    assert_eq!(other.answered(), 1, "team-b's own URL was asked");

    // team-b at the right URL fetches once itself, then keeps it.
    load(&runtime, &client, "team-b", &at_good).await.expect("team-b fetches and loads it");
    load(&runtime, &client, "team-b", &at_good).await.expect("kept for team-b");
    assert_eq!(good.answered(), 2, "one fetch per namespace");
}
