//! Registry sources against a real registry (distribution, TLS from a test CA, basic auth, on 127.0.0.1): `policy
//! push` and `policy pull` by tag and by digest, `policy eval --policy registry://...`, and each refusal with its
//! reason (digest, media type, size, 401, trust, signatures).

#[path = "support/registry.rs"]
mod registry_server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use perf_policy_host::cli::{self, EvalArgs, Output, PolicyCommand, PolicySource, PullArgs, PushArgs, RegistryArgs};
use perf_policy_host::registry::cosign::{self, PublicKey};
use perf_policy_host::registry::push::{Blob, Layout, Target, push_artifact, push_component};
use perf_policy_host::registry::{Credentials, RegistryClient, RegistryRef, Want, pull};
use perf_policy_host::source::sha256_hex;
use perf_policy_host::{BUILTIN_ADAPTIVE_RATE_LIMIT, BUILTIN_ADAPTIVE_TTL, World};
use registry_server::{PASSWORD, Registry, USER};

fn credentials(password: &str) -> Credentials {
    Credentials { username: USER.into(), password: password.into() }
}

fn client(registry: &Registry) -> RegistryClient {
    RegistryClient::new(Duration::from_secs(10), registry.ca.as_bytes(), perf_egress::Egress::open(), &[]).unwrap()
}

fn reference(registry: &Registry, path: &str) -> RegistryRef {
    RegistryRef::parse(&format!("registry://{}/{path}", registry.host)).unwrap()
}

async fn push(registry: &Registry, path: &str, component: &[u8], layout: Layout) -> String {
    let r = reference(registry, path);
    let c = credentials(PASSWORD);
    let target = Target { reference: &r, roots_pem: registry.ca.as_bytes(), credentials: Some(&c) };
    push_component(&target, component, layout).await.unwrap()
}

fn want<'a>(pin: Option<&'a str>, credentials: Option<&'a Credentials>, keys: &'a [PublicKey]) -> Want<'a> {
    Want { pin, credentials, max_bytes: 16 << 20, keys }
}

fn registry_args(registry: &Registry) -> RegistryArgs {
    let (ca, config) = registry.client_files();
    RegistryArgs { ca_file: Some(ca), docker_config: Some(config), ..RegistryArgs::default() }
}

async fn run(command: PolicyCommand) -> serde_json::Value {
    let outcome = cli::run(command).await.unwrap();
    assert_eq!(outcome.exit_code, 0, "{}", outcome.output);
    serde_json::from_str(&outcome.output).unwrap()
}

#[tokio::test]
async fn the_cli_pushes_pulls_by_tag_and_by_digest_and_evaluates_from_the_registry() {
    let registry = registry_server::start("cli");
    let file = registry.dir.join("ttl.wasm");
    std::fs::write(&file, BUILTIN_ADAPTIVE_TTL).unwrap();
    let tagged = format!("registry://{}/team-a/ttl:v1", registry.host);
    let pushed = run(PolicyCommand::Push(PushArgs {
        file,
        reference: tagged.clone(),
        world: Some(World::Cache),
        layout: Layout::Component,
        registry: registry_args(&registry),
        output: Output::Json,
    }))
    .await;
    let pin = sha256_hex(BUILTIN_ADAPTIVE_TTL);
    assert_eq!(pushed["pushed"]["sha256"], pin.as_str());
    let digest = pushed["pushed"]["manifestDigest"].as_str().unwrap().to_string();
    let pinned = pushed["pushed"]["pinned"].as_str().unwrap().to_string();
    assert_eq!(pinned, format!("registry://{}/team-a/ttl@{digest}", registry.host));

    for (i, from) in [tagged.clone(), pinned.clone()].into_iter().enumerate() {
        let out = registry.dir.join(format!("pulled-{i}.wasm"));
        let pulled = run(PolicyCommand::Pull(PullArgs {
            reference: from.clone(),
            output_file: out.clone(),
            registry: registry_args(&registry),
            output: Output::Json,
        }))
        .await;
        assert_eq!(std::fs::read(&out).unwrap(), BUILTIN_ADAPTIVE_TTL, "{from}");
        assert_eq!(
            (pulled["pulled"]["manifestDigest"].as_str(), pulled["pulled"]["sha256"].as_str()),
            (Some(digest.as_str()), Some(pin.as_str()))
        );
        assert_eq!(pulled["pulled"]["mediaType"], "application/wasm");
    }

    let eval = run(PolicyCommand::Eval(EvalArgs {
        source: PolicySource { policy: Some(PathBuf::from(&pinned)), builtin: None },
        world: World::Cache,
        input: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/cache-input.json"),
        settings: None,
        registry: RegistryArgs { sha256: Some(pin.clone()), ..registry_args(&registry) },
        output: Output::Json,
    }))
    .await;
    assert_eq!(eval["policy"]["sha256"], pin.as_str());
    assert_eq!(eval["decision"]["classes"].as_array().map(Vec::len), Some(10));

    // A component that does not load as the world it is pushed for is not pushed.
    let wrong = run_failing(PolicyCommand::Push(PushArgs {
        file: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../builtin/adaptive-rate-limit.wasm"),
        reference: format!("registry://{}/team-a/ttl:wrong", registry.host),
        world: Some(World::Cache),
        layout: Layout::Component,
        registry: registry_args(&registry),
        output: Output::Json,
    }))
    .await;
    assert_eq!(wrong["error"]["category"], "wrong_world", "{wrong}");
    let r = reference(&registry, "team-a/ttl:wrong");
    let c = credentials(PASSWORD);
    let err = pull(&client(&registry), &r, want(None, Some(&c), &[])).await.unwrap_err();
    assert!(err.to_string().contains("404"), "nothing was pushed: {err}");
}

async fn run_failing(command: PolicyCommand) -> serde_json::Value {
    let outcome = cli::run(command).await.unwrap();
    assert_ne!(outcome.exit_code, 0, "{}", outcome.output);
    serde_json::from_str(&outcome.output).unwrap()
}

#[tokio::test]
async fn kubewardens_layout_is_read_and_other_artifacts_are_refused_with_their_reason() {
    let registry = registry_server::start("refusals");
    let c = credentials(PASSWORD);
    let http = client(&registry);
    push(&registry, "kw/rl:v1", BUILTIN_ADAPTIVE_RATE_LIMIT, Layout::Kubewarden).await;
    let pin = sha256_hex(BUILTIN_ADAPTIVE_RATE_LIMIT);
    let pulled = pull(&http, &reference(&registry, "kw/rl:v1"), want(Some(&pin), Some(&c), &[])).await.unwrap();
    assert_eq!(
        (pulled.component.as_slice(), pulled.layer_media_type.as_str()),
        (BUILTIN_ADAPTIVE_RATE_LIMIT, "application/vnd.wasm.content.layer.v1+wasm")
    );

    // Artifacts that are not one WASM layer.
    let r = reference(&registry, "kw/image:v1");
    let target = Target { reference: &r, roots_pem: registry.ca.as_bytes(), credentials: Some(&c) };
    let blob =
        |media_type: &str, data: &[u8]| Blob { media_type: media_type.into(), data: data.to_vec(), annotations: None };
    let config = blob("application/vnd.oci.image.config.v1+json", b"{}");
    push_artifact(&target, config.clone(), vec![blob("application/vnd.oci.image.layer.v1.tar+gzip", b"tar")])
        .await
        .unwrap();
    let r2 = reference(&registry, "kw/two:v1");
    let two = Target { reference: &r2, ..target };
    let wasm = blob("application/wasm", BUILTIN_ADAPTIVE_TTL);
    push_artifact(&two, config, vec![wasm.clone(), wasm]).await.unwrap();

    let (wrong_pin, wrong) = ("1".repeat(64), credentials("wrong"));
    let other_digest = format!("registry://{}/kw/rl@sha256:{}", registry.host, "0".repeat(64));
    let cases: Vec<(RegistryRef, Want, &str, &str)> = vec![
        (
            reference(&registry, "kw/image:v1"),
            want(None, Some(&c), &[]),
            "media_type",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (reference(&registry, "kw/two:v1"), want(None, Some(&c), &[]), "media_type", "expected one layer"),
        (reference(&registry, "kw/rl:v1"), want(Some(&wrong_pin), Some(&c), &[]), "digest_mismatch", "sha256:"),
        (RegistryRef::parse(&other_digest).unwrap(), want(None, Some(&c), &[]), "fetch", "404"),
        (reference(&registry, "kw/rl:nope"), want(None, Some(&c), &[]), "fetch", "404"),
        (
            reference(&registry, "kw/rl:v1"),
            Want { max_bytes: 1024, ..want(None, Some(&c), &[]) },
            "fetch",
            "more than the 1024 allowed",
        ),
        (
            reference(&registry, "kw/rl:v1"),
            want(None, None, &[]),
            "fetch",
            "asks for credentials (401, Basic) and none were given",
        ),
        (reference(&registry, "kw/rl:v1"), want(None, Some(&wrong), &[]), "fetch", "credentials were refused"),
        (reference(&registry, "kw/rl:v1"), want(Some("NOT-A-PIN"), Some(&c), &[]), "bad_source", "NOT-A-PIN"),
    ];
    for (r, w, category, says) in cases {
        let what = format!("{r} pin={:?} max={}", w.pin, w.max_bytes);
        let err = pull(&http, &r, w).await.unwrap_err();
        assert_eq!(err.category(), category, "{what}: {err}");
        assert!(err.to_string().contains(says), "{what}: {err}");
    }

    // A registry whose certificate is not trusted, and one the egress rule does not allow (loopback is reserved).
    let untrusted = RegistryClient::new(Duration::from_secs(5), b"", perf_egress::Egress::open(), &[]).unwrap();
    let err = pull(&untrusted, &reference(&registry, "kw/rl:v1"), want(None, Some(&c), &[])).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    let reserved =
        RegistryClient::new(Duration::from_secs(5), registry.ca.as_bytes(), perf_egress::Egress::default(), &[])
            .unwrap();
    let err = pull(&reserved, &reference(&registry, "kw/rl:v1"), want(None, Some(&c), &[])).await.unwrap_err();
    assert_eq!(err.category(), "fetch", "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

/// A cosign key pair: the signing half and the public key as `cosign.pub`.
fn key_pair() -> (EcdsaKeyPair, PublicKey) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der.as_ref()));
    (pair, PublicKey::from_pem(&pem, "test key").unwrap())
}

/// Stores signatures as `cosign sign --key` does: payload layers, each signature in its annotation, under the
/// `sha256-<hex>.sig` tag of `signed_digest`.
async fn sign(registry: &Registry, repository: &str, signed_digest: &str, layers: Vec<(Vec<u8>, String)>) {
    let c = credentials(PASSWORD);
    let r = reference(registry, &format!("{repository}:{}", cosign::signature_tag(signed_digest)));
    let target = Target { reference: &r, roots_pem: registry.ca.as_bytes(), credentials: Some(&c) };
    let layers = layers
        .into_iter()
        .map(|(payload, signature)| Blob {
            media_type: cosign::SIMPLE_SIGNING.into(),
            data: payload,
            annotations: Some(BTreeMap::from([(cosign::SIGNATURE_ANNOTATION.to_string(), signature)])),
        })
        .collect();
    let config =
        Blob { media_type: "application/vnd.oci.image.config.v1+json".into(), data: b"{}".to_vec(), annotations: None };
    push_artifact(&target, config, layers).await.unwrap();
}

fn signed(pair: &EcdsaKeyPair, payload: &[u8]) -> (Vec<u8>, String) {
    (payload.to_vec(), STANDARD.encode(pair.sign(&SystemRandom::new(), payload).unwrap().as_ref()))
}

#[tokio::test]
async fn signatures_are_verified_against_the_named_key() {
    let registry = registry_server::start("signatures");
    let c = credentials(PASSWORD);
    let http = client(&registry);
    let (pair, key) = key_pair();
    let (other_pair, other_key) = key_pair();
    let repository = |name: &str| format!("{}/team-a/{name}", registry.host);

    // signed: by the key; other: by another key; unsigned; copied: the signature of another manifest; tampered:
    // the signed payload altered after signing; tag-moved: a new component pushed under the signed tag.
    let d_signed = push(&registry, "team-a/signed:v1", BUILTIN_ADAPTIVE_TTL, Layout::Component).await;
    sign(
        &registry,
        "team-a/signed",
        &d_signed,
        vec![
            signed(&other_pair, &cosign::payload(&repository("signed"), &d_signed)),
            signed(&pair, &cosign::payload(&repository("signed"), &d_signed)),
        ],
    )
    .await;
    let d_other = push(&registry, "team-a/other:v1", BUILTIN_ADAPTIVE_TTL, Layout::Component).await;
    sign(
        &registry,
        "team-a/other",
        &d_other,
        vec![signed(&other_pair, &cosign::payload(&repository("other"), &d_other))],
    )
    .await;
    push(&registry, "team-a/unsigned:v1", BUILTIN_ADAPTIVE_TTL, Layout::Component).await;
    let d_copied = push(&registry, "team-a/copied:v1", BUILTIN_ADAPTIVE_RATE_LIMIT, Layout::Component).await;
    sign(
        &registry,
        "team-a/copied",
        &d_copied,
        vec![signed(&pair, &cosign::payload(&repository("signed"), &d_signed))],
    )
    .await;
    let d_tampered = push(&registry, "team-a/tampered:v1", BUILTIN_ADAPTIVE_TTL, Layout::Component).await;
    let (mut payload, signature) = signed(&pair, &cosign::payload(&repository("tampered"), &d_tampered));
    payload.push(b' ');
    sign(&registry, "team-a/tampered", &d_tampered, vec![(payload, signature)]).await;
    let d_moved = push(&registry, "team-a/moved:v1", BUILTIN_ADAPTIVE_TTL, Layout::Component).await;
    sign(&registry, "team-a/moved", &d_moved, vec![signed(&pair, &cosign::payload(&repository("moved"), &d_moved))])
        .await;
    push(&registry, "team-a/moved:v1", BUILTIN_ADAPTIVE_TTL, Layout::Kubewarden).await;

    let keys = std::slice::from_ref(&key);
    let pulled = pull(&http, &reference(&registry, "team-a/signed:v1"), want(None, Some(&c), keys)).await.unwrap();
    assert_eq!(pulled.manifest_digest, d_signed);
    assert!(
        pull(&http, &reference(&registry, "team-a/other:v1"), want(None, Some(&c), std::slice::from_ref(&other_key)))
            .await
            .is_ok()
    );
    let cases = [
        ("team-a/other:v1", "does not verify under the key"),
        ("team-a/unsigned:v1", "unsigned"),
        ("team-a/copied:v1", "not this manifest"),
        ("team-a/tampered:v1", "does not verify under the key"),
        ("team-a/moved:v1", "unsigned"),
    ];
    for (path, says) in cases {
        let err = pull(&http, &reference(&registry, path), want(None, Some(&c), keys)).await.unwrap_err();
        assert_eq!(err.category(), "signature", "{path}: {err}");
        assert!(err.to_string().contains(says), "{path}: {err}");
    }
    // Without a key required, an unsigned component is pulled.
    assert!(pull(&http, &reference(&registry, "team-a/unsigned:v1"), want(None, Some(&c), &[])).await.is_ok());
}
