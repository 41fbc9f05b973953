//! Policies from an OCI registry, on the real API server with the operator as its own process: a component pushed
//! with `perf-operator policy push` to a registry with TLS from a test CA and basic auth is pulled with the
//! credentials of a dockerconfigjson Secret in the profile's namespace, pinned by digest, and decides. Profiles whose
//! pull is refused (no credentials, a wrong pin, a signature required but absent, a redirect nobody allowed) say so
//! in PoliciesReady, load nothing, and leave the good profile deciding.

#[path = "../../../policies/host/tests/support/registry.rs"]
mod registry_server;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::PostParams;
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::{Cluster, Operator, cluster, env_path, kubelet, repo_root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use perf_policy_host::registry::{Credentials, RegistryRef, cosign};

/// The operator's `policy push` of the built-in TTL policy to `reference`; returns its JSON report.
fn push(registry: &registry_server::Registry, reference: &str) -> Value {
    let (ca, config) = registry.client_files();
    let component = repo_root().join("policies/builtin/adaptive-ttl.wasm");
    let out = Command::new(env_path("PERF_OPERATOR_BIN"))
        .args(["policy", "push", "--world", "cache", "--output", "json"])
        .arg(&component)
        .arg(reference)
        .arg("--ca-file")
        .arg(&ca)
        .arg("--docker-config")
        .arg(&config)
        .output()
        .expect("perf-operator policy push");
    assert!(
        out.status.success(),
        "policy push: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the push report")
}

fn pull_secret(registry: &registry_server::Registry) -> Secret {
    let config = registry.docker_config(registry_server::PASSWORD);
    let mut secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson"}))
            .expect("Secret");
    secret.data = Some(BTreeMap::from([(".dockerconfigjson".into(), ByteString(config.into_bytes()))]));
    secret
}

/// An app `name` and a profile of it whose cache takes `policy`.
async fn create_profile(c: &Cluster, name: &str, policy: &Value) {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL is set by tests/run.sh");
    create_app(&c.api(), name, "registry.example/shop:1", 1).await;
    let spec = json!({"cache": {
        "redis": {"external": {"address": redis}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
        "policy": policy,
    }});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, name, spec)).await.expect("profile");
}

async fn policies_ready(c: &Cluster, name: &str) -> Option<(String, String, String)> {
    let p = c.profiles().get(name).await.ok()?;
    let cond = p.status?.conditions.into_iter().find(|c| c.type_ == "PoliciesReady")?;
    Some((cond.status, cond.reason, cond.message))
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_component_pulled_from_a_registry_decides_and_refused_pulls_say_why() {
    let c = cluster().await;
    let registry = registry_server::start("e2e");
    let ca_file = registry.dir.join("operator-ca.pem");
    std::fs::write(&ca_file, &registry.ca).expect("CA file");
    let pushed = push(&registry, &format!("registry://{}/team-a/ttl:v1", registry.host));
    let (pinned, pin) = (pushed["pushed"]["pinned"].as_str().unwrap(), pushed["pushed"]["sha256"].as_str().unwrap());
    c.api::<Secret>().create(&PostParams::default(), &pull_secret(&registry)).await.expect("pull Secret");

    let unsigned_key = unsigned_key_pem();
    let source = |registry: Value| json!({"registry": registry, "onFailure": "UseSpec"});
    let tagged = format!("registry://{}/team-a/ttl:v1", registry.host);
    let profiles = [
        ("good", source(json!({"reference": pinned, "sha256": pin, "pullSecret": "regcred"})), None),
        ("nocreds", source(json!({"reference": tagged, "sha256": pin})), Some(("Unavailable", "401"))),
        (
            "wrongpin",
            source(json!({"reference": tagged, "sha256": "0".repeat(64), "pullSecret": "regcred"})),
            Some(("PinMismatch", "sha256")),
        ),
        (
            "unsigned",
            source(
                json!({"reference": pinned, "sha256": pin, "pullSecret": "regcred", "cosignPublicKey": unsigned_key}),
            ),
            Some(("Unavailable", "unsigned")),
        ),
        (
            "nosecret",
            source(json!({"reference": pinned, "sha256": pin, "pullSecret": "missing"})),
            Some(("Unavailable", "not found")),
        ),
    ];
    let _kubelet = kubelet::run(c.api::<Pod>());
    let ca = ca_file.to_str().expect("utf-8 path").to_string();
    let mut op = Operator::start_env(
        perf_e2e::operator::RELEASE_NAMESPACE,
        &c.namespace,
        "replica-a",
        &[],
        None,
        &[("PERF_POLICY_CA_FILE", &ca)],
    );
    for (name, policy, _) in &profiles {
        create_profile(&c, name, policy).await;
    }
    for (name, _, refused) in &profiles {
        let Some((reason, says)) = refused else { continue };
        let (status, got_reason, message) = c
            .eventually(120, &format!("{name}: PoliciesReady refused"), || async {
                policies_ready(&c, name).await.filter(|(s, _, m)| s == "False" && m.contains(says))
            })
            .await;
        assert_eq!((status.as_str(), got_reason.as_str()), ("False", *reason), "{name}: {message}");
    }
    c.wait_condition("good", "PoliciesReady", "True", 120).await;
    let good = c.profiles().get("good").await.expect("profile");
    let evaluation = good.status.and_then(|s| s.policies?.cache).map(|c| c.evaluation).expect("a cache evaluation");
    assert!(evaluation.policy.starts_with(pinned), "{}", evaluation.policy);
    assert!(op.running(), "the operator lives on");
}

/// Signs `digest` in `repository` (`host/path`) as `cosign sign --key` does, with `pair`.
async fn cosign_sign(registry: &registry_server::Registry, path: &str, digest: &str, pair: &EcdsaKeyPair) {
    use perf_policy_host::registry::push::{Blob, Target, push_artifact};
    let repository = format!("{}/{path}", registry.host);
    let payload = cosign::payload(&repository, digest);
    let signature = STANDARD.encode(pair.sign(&SystemRandom::new(), &payload).expect("a signature").as_ref());
    let reference =
        RegistryRef::parse(&format!("registry://{repository}:{}", cosign::signature_tag(digest))).expect("ref");
    let credentials =
        Credentials { username: registry_server::USER.into(), password: registry_server::PASSWORD.into() };
    let target = Target { reference: &reference, roots_pem: registry.ca.as_bytes(), credentials: Some(&credentials) };
    let layer = Blob {
        media_type: cosign::SIMPLE_SIGNING.into(),
        data: payload,
        annotations: Some(BTreeMap::from([(cosign::SIGNATURE_ANNOTATION.to_string(), signature)])),
    };
    let config =
        Blob { media_type: "application/vnd.oci.image.config.v1+json".into(), data: b"{}".to_vec(), annotations: None };
    push_artifact(&target, config, vec![layer]).await.expect("push the signature");
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn the_administrators_key_is_required_of_every_tenant_component() {
    let c = cluster().await;
    let registry = registry_server::start("e2e-admin");
    let dir = registry.dir.join("admin-keys");
    std::fs::create_dir_all(&dir).expect("key dir");
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a key pair");
    let der = pair.public_key().as_der().expect("SPKI");
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der.as_ref()));
    std::fs::write(dir.join("platform.pub"), pem).expect("key file");
    let ca_file = registry.dir.join("operator-ca.pem");
    std::fs::write(&ca_file, &registry.ca).expect("CA file");
    let signed = push(&registry, &format!("registry://{}/team-a/signed:v1", registry.host));
    let unsigned = push(&registry, &format!("registry://{}/team-a/unsigned:v1", registry.host));
    let digest = signed["pushed"]["manifestDigest"].as_str().expect("digest");
    cosign_sign(&registry, "team-a/signed", digest, &pair).await;
    c.api::<Secret>().create(&PostParams::default(), &pull_secret(&registry)).await.expect("pull Secret");
    let ttl = std::fs::read(repo_root().join("policies/builtin/adaptive-ttl.wasm")).expect("built-in");
    let mut cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ttl"}})).expect("ConfigMap");
    cm.binary_data = Some(BTreeMap::from([("policy.wasm".into(), ByteString(ttl))]));
    c.api::<k8s_openapi::api::core::v1::ConfigMap>().create(&PostParams::default(), &cm).await.expect("ConfigMap");

    let from = |pushed: &Value| {
        let (reference, pin) = (pushed["pushed"]["pinned"].as_str(), pushed["pushed"]["sha256"].as_str());
        json!({"registry": {"reference": reference, "sha256": pin, "pullSecret": "regcred"}, "onFailure": "UseSpec"})
    };
    let pin = signed["pushed"]["sha256"].as_str().expect("pin");
    let profiles = [
        ("signed", from(&signed), None),
        ("builtin", json!({"builtin": "adaptive-ttl"}), None),
        ("unsigned", from(&unsigned), Some("unsigned")),
        (
            "configmap",
            json!({"configMap": {"name": "ttl", "key": "policy.wasm", "sha256": pin}}),
            Some("requires policies signed"),
        ),
    ];
    let _kubelet = kubelet::run(c.api::<Pod>());
    let (ca, keys) = (ca_file.to_str().expect("utf-8").to_string(), dir.to_str().expect("utf-8").to_string());
    let release = perf_e2e::operator::RELEASE_NAMESPACE;
    let env = [("PERF_POLICY_CA_FILE", ca.as_str())];
    let mut op = Operator::start_env(release, &c.namespace, "replica-a", &["--policy-cosign-key", &keys], None, &env);
    for (name, policy, _) in &profiles {
        create_profile(&c, name, policy).await;
    }
    for (name, _, refused) in &profiles {
        match refused {
            None => c.wait_condition(name, "PoliciesReady", "True", 120).await,
            Some(says) => {
                c.eventually(120, &format!("{name}: refused"), || async {
                    policies_ready(&c, name).await.filter(|(s, _, m)| s == "False" && m.contains(says))
                })
                .await;
            }
        }
    }
    assert!(op.running(), "the operator lives on");
}

/// A cosign public key (PEM, ECDSA P-256) nobody signed with.
fn unsigned_key_pem() -> String {
    rcgen::KeyPair::generate().expect("a P-256 key").public_key_pem()
}
