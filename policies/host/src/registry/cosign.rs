//! cosign's keyed signatures, as `cosign sign --key` stores them: a manifest tagged `sha256-<hex>.sig` beside the
//! signed one, each layer a simple-signing payload naming the signed manifest's digest, its signature (ECDSA P-256
//! over SHA-256, ASN.1, base64) in the `dev.cosignproject.cosign/signature` annotation. A component is accepted when
//! one of those signatures verifies under one of the keys and its payload names the manifest pulled. Keyless
//! signatures (Fulcio certificates, Rekor entries) are not verified: a key must be named.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use super::pull::Session;
use super::transport::clip;
use crate::{Error, Result};

/// The layer media type of a cosign signature payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Largest payload read (cosign's are a few hundred bytes).
const MAX_PAYLOAD_BYTES: usize = 64 << 10;
/// Signatures looked at, at most (a repository may hold many, for other keys).
const MAX_SIGNATURES: usize = 16;

/// A public key signatures are verified with: SubjectPublicKeyInfo DER of an ECDSA P-256 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    der: Vec<u8>,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (what `cosign generate-key-pair` writes to `cosign.pub`); `what` names it in errors.
    pub fn from_pem(pem: &str, what: &str) -> Result<Self> {
        let bad = |detail: String| Error::Input { what: what.to_string(), detail };
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad(format!("expected a PEM public key (-----BEGIN PUBLIC KEY-----): {e}")))?;
        ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der.as_ref())
            .map_err(|e| bad(format!("expected an ECDSA P-256 public key, as cosign makes: {e}")))?;
        Ok(Self { der: der.as_ref().to_vec() })
    }

    fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.der).verify(payload, signature).is_ok()
    }
}

/// The tag cosign stores the signatures of `manifest_digest` (`sha256:<hex>`) under.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// The simple-signing payload cosign signs for `manifest_digest` in `repository` (`host/path`).
pub fn payload(repository: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Why one signature does not hold, or None when it does.
pub fn check(payload: &[u8], signature_b64: &str, manifest_digest: &str, keys: &[PublicKey]) -> Option<String> {
    let Ok(signature) = STANDARD.decode(signature_b64.trim()) else { return Some("a signature is not base64".into()) };
    if !keys.iter().any(|k| k.verifies(payload, &signature)) {
        return Some("a signature does not verify under the key".into());
    }
    // Verified: the payload is the signer's; it must speak of this manifest.
    match serde_json::from_slice::<Payload>(payload) {
        Err(e) => Some(format!("a signed payload is unreadable: {e}")),
        Ok(p) if p.critical.kind != PAYLOAD_TYPE => {
            Some(format!("a signed payload is of type {:?}", clip(&p.critical.kind, 80)))
        }
        Ok(p) if p.critical.image.digest != manifest_digest => {
            Some(format!("a signature by the key signs {}, not this manifest", clip(&p.critical.image.digest, 80)))
        }
        Ok(_) => None,
    }
}

/// Verifies that `manifest_digest` in the session's repository is signed by one of `keys`.
pub(crate) async fn verify(session: &mut Session<'_>, manifest_digest: &str, keys: &[PublicKey]) -> Result<()> {
    let refuse = |detail: String| Error::Signature { reference: session.r.text.clone(), detail };
    let tag = signature_tag(manifest_digest);
    let Some((manifest, _)) = session.manifest_if_any(&tag).await? else {
        return Err(refuse(format!(
            "unsigned: no cosign signature ({tag}) beside the manifest, and a key is required"
        )));
    };
    let mut reasons = Vec::new();
    let signed = manifest.layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING).take(MAX_SIGNATURES);
    for layer in signed {
        let Some(signature) = layer.annotations.as_ref().and_then(|a| a.get(SIGNATURE_ANNOTATION)) else {
            reasons.push("a signature layer has no signature annotation".to_string());
            continue;
        };
        if layer.size < 0 || layer.size as usize > MAX_PAYLOAD_BYTES {
            reasons.push(format!("a signed payload of {} bytes is too large", layer.size));
            continue;
        }
        let payload = session.blob(&layer.digest, MAX_PAYLOAD_BYTES, "a signed payload").await?;
        match check(&payload, signature, manifest_digest, keys) {
            None => return Ok(()),
            Some(reason) => reasons.push(reason),
        }
    }
    reasons.dedup();
    let why = if reasons.is_empty() { "it holds no cosign signature".to_string() } else { reasons.join("; ") };
    Err(refuse(format!("no signature by the required key in {tag}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn key_pair() -> (EcdsaKeyPair, PublicKey) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der = pair.public_key().as_der().unwrap();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der.as_ref()));
        (pair, PublicKey::from_pem(&pem, "key").unwrap())
    }

    fn sign(pair: &EcdsaKeyPair, payload: &[u8]) -> String {
        STANDARD.encode(pair.sign(&SystemRandom::new(), payload).unwrap().as_ref())
    }

    #[test]
    fn a_signature_holds_for_its_key_and_manifest_only() {
        let (pair, key) = key_pair();
        let (_, other) = key_pair();
        let digest = format!("sha256:{}", "a".repeat(64));
        let signed = payload("r.example/p", &digest);
        let signature = sign(&pair, &signed);
        assert_eq!(check(&signed, &signature, &digest, std::slice::from_ref(&key)), None);
        assert_eq!(check(&signed, &signature, &digest, &[other.clone(), key.clone()]), None, "any named key");
        let by_other = check(&signed, &signature, &digest, &[other]).unwrap();
        assert!(by_other.contains("does not verify"), "{by_other}");
        let elsewhere = format!("sha256:{}", "b".repeat(64));
        assert!(
            check(&signed, &signature, &elsewhere, std::slice::from_ref(&key)).unwrap().contains("not this manifest")
        );
        let mut tampered = signed.clone();
        tampered[10] ^= 1;
        assert!(check(&tampered, &signature, &digest, std::slice::from_ref(&key)).unwrap().contains("does not verify"));
        assert!(check(&signed, "%%%", &digest, std::slice::from_ref(&key)).unwrap().contains("base64"));
        let other_type = br#"{"critical":{"image":{"docker-manifest-digest":"x"},"type":"other"}}"#;
        assert!(check(other_type, &sign(&pair, other_type), "x", &[key]).unwrap().contains("of type"));
    }

    #[test]
    fn keys_must_be_pem_ecdsa_p256() {
        for (pem, says) in
            [("not a key", "PEM public key"), ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "P-256")]
        {
            let e = PublicKey::from_pem(pem, "spec.cache.policy.registry.cosignPublicKey").unwrap_err();
            assert!(e.to_string().contains(says) && e.to_string().contains("cosignPublicKey"), "{e}");
        }
        assert_eq!(signature_tag(&format!("sha256:{}", "c".repeat(64))), format!("sha256-{}.sig", "c".repeat(64)));
    }
}
