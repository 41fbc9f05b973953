//! Pulling a policy component: the manifest (digest checked when the reference pins one), its one WASM layer (media
//! type checked, its digest held to the pin and its size to the cap before any byte of it is read), then the layer,
//! verified as it arrives. Every refusal names the reference and the reason; nothing is returned half-checked.

use oci_client::manifest::OciImageManifest;

use super::cosign::{self, PublicKey};
use super::transport::{causes, clip, read_capped};
use super::{
    Credentials, LAYER_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, RegistryClient, RegistryRef, auth,
};
use crate::source::{check_pin, sha256_hex, verify_sha256};
use crate::{Error, Result};

/// A component pulled and checked.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub component: Vec<u8>,
    /// `sha256:<hex>` of the manifest (what a signature signs).
    pub manifest_digest: String,
    /// The component's sha256 (64 hex characters).
    pub sha256: String,
    pub layer_media_type: String,
}

/// Requests to one repository, answering the registry's 401 once and keeping the answer.
pub(crate) struct Session<'a> {
    pub(crate) client: &'a RegistryClient,
    pub(crate) r: &'a RegistryRef,
    credentials: Option<&'a Credentials>,
    authorization: Option<String>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(client: &'a RegistryClient, r: &'a RegistryRef, credentials: Option<&'a Credentials>) -> Self {
        Self { client, r, credentials, authorization: None }
    }

    pub(crate) fn fail(&self, detail: impl Into<String>) -> Error {
        Error::Registry { reference: self.r.text.clone(), detail: detail.into() }
    }

    /// GET `path` under the repository's API, authorised as the registry asks.
    pub(crate) async fn get(&mut self, path: &str, accept: &str) -> Result<reqwest::Response> {
        let url = reqwest::Url::parse(&format!("{}{path}", self.r.api())).map_err(|e| self.fail(e.to_string()))?;
        self.client.reachable(&url).map_err(|e| self.fail(e))?;
        for attempt in 0..2 {
            let mut request = self.client.http.get(url.clone()).header(reqwest::header::ACCEPT, accept);
            if let Some(a) = &self.authorization {
                request = request.header(reqwest::header::AUTHORIZATION, a);
            }
            let response = request.send().await.map_err(|e| self.fail(causes(&e)))?;
            if response.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
            let (0, Some(challenge)) = (attempt, challenge) else { break };
            let answer = auth::answer(self.client, self.r, challenge, self.credentials).await;
            self.authorization = Some(answer.map_err(|e| self.fail(e))?);
        }
        let why = if self.credentials.is_some() { "the credentials were refused" } else { "no credentials given" };
        Err(self.fail(format!("HTTP 401 Unauthorized: {why}")))
    }

    /// The manifest at `reference` (a tag or digest): its bytes and digest, checked for size and media type.
    pub(crate) async fn manifest(&mut self, reference: &str) -> Result<(OciImageManifest, String)> {
        let found = self.manifest_if_any(reference).await?;
        found.ok_or_else(|| self.fail(format!("manifest {reference}: HTTP 404 Not Found")))
    }

    /// [`Self::manifest`], or None when the registry has none (404).
    pub(crate) async fn manifest_if_any(&mut self, reference: &str) -> Result<Option<(OciImageManifest, String)>> {
        let response = self.get(&format!("manifests/{reference}"), &MANIFEST_MEDIA_TYPES.join(", ")).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.fail(format!("manifest {reference}: HTTP {status}")));
        }
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let content_type = content_type.map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
        let bytes = read_capped(response, MAX_MANIFEST_BYTES, "the manifest").await.map_err(|e| self.fail(e))?;
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        if reference.starts_with("sha256:") && digest != reference {
            return Err(self.fail(format!("the manifest's digest is {digest}, not the {reference} asked for")));
        }
        let media_type = clip(&media_type_of(&bytes, content_type.as_deref()), 120);
        if !MANIFEST_MEDIA_TYPES.contains(&media_type.as_str()) {
            return Err(Error::MediaType {
                reference: self.r.text.clone(),
                detail: format!(
                    "the manifest is {media_type:?} (an image index names several manifests: name one by digest); \
                     expected one of {MANIFEST_MEDIA_TYPES:?}"
                ),
            });
        }
        let manifest = serde_json::from_slice(&bytes).map_err(|e| self.fail(format!("unreadable manifest: {e}")))?;
        Ok(Some((manifest, digest)))
    }

    /// The blob `digest`, at most `max` bytes, verified against its digest.
    pub(crate) async fn blob(&mut self, digest: &str, max: usize, what: &str) -> Result<Vec<u8>> {
        // The registry wrote the digest, and it becomes part of the URL: its form is checked first.
        let Some(hex) = digest.strip_prefix("sha256:").filter(|h| check_pin(h).is_ok()) else {
            return Err(
                self.fail(format!("{what}'s digest {:?} is not sha256: and 64 hex characters", clip(digest, 80)))
            );
        };
        let response = self.get(&format!("blobs/sha256:{hex}"), "*/*").await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.fail(format!("{what} {digest}: HTTP {status}")));
        }
        let bytes = read_capped(response, max, what).await.map_err(|e| self.fail(e))?;
        verify_sha256(&bytes, hex)?;
        Ok(bytes)
    }
}

/// The manifest's media type: its own `mediaType` field, else the Content-Type the registry sent.
fn media_type_of(bytes: &[u8], content_type: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let own = serde_json::from_slice::<Typed>(bytes).ok().and_then(|t| t.media_type);
    own.or(content_type.map(str::to_string)).unwrap_or_else(|| "unknown".into())
}

/// What to pull and how it must be: the component's pin (64 hex: the layer must have that digest, compared with the
/// manifest before the layer is fetched), credentials, the size cap, and the keys one of which must have signed the
/// manifest (none: no signature needed).
pub struct Want<'a> {
    pub pin: Option<&'a str>,
    pub credentials: Option<&'a Credentials>,
    pub max_bytes: usize,
    pub keys: &'a [PublicKey],
}

/// Pulls the component `r` names, as `want` says.
pub async fn pull(client: &RegistryClient, r: &RegistryRef, want: Want<'_>) -> Result<Pulled> {
    let Want { pin, credentials, max_bytes, keys } = want;
    // A malformed pin is refused before any traffic.
    pin.map(check_pin).transpose()?;
    let mut session = Session::new(client, r, credentials);
    let (manifest, manifest_digest) = session.manifest(r.manifest_ref()).await?;
    let layer = component_layer(&manifest).map_err(|detail| Error::MediaType { reference: r.text.clone(), detail })?;
    let layer_hex = layer.digest.strip_prefix("sha256:").unwrap_or_default().to_string();
    if let Some(pin) = pin.filter(|p| *p != layer_hex) {
        return Err(Error::DigestMismatch { expected: pin.to_string(), actual: layer.digest.clone() });
    }
    if layer.size < 0 || layer.size as u64 > max_bytes as u64 {
        return Err(
            session.fail(format!("the component layer is {} bytes, more than the {max_bytes} allowed", layer.size))
        );
    }
    if !keys.is_empty() {
        cosign::verify(&mut session, &manifest_digest, keys).await?;
    }
    let component = session.blob(&layer.digest, layer.size as usize, "the component layer").await?;
    Ok(Pulled { component, manifest_digest, sha256: layer_hex, layer_media_type: layer.media_type.clone() })
}

/// Verifies that the manifest `manifest_digest` in `r`'s repository is signed by one of `keys` (a second list of
/// keys after [`pull`]'s own).
pub async fn verify_signed(
    client: &RegistryClient,
    r: &RegistryRef,
    credentials: Option<&Credentials>,
    manifest_digest: &str,
    keys: &[PublicKey],
) -> Result<()> {
    cosign::verify(&mut Session::new(client, r, credentials), manifest_digest, keys).await
}

/// The manifest's one layer, which must be a WASM component of an accepted media type.
fn component_layer(manifest: &OciImageManifest) -> std::result::Result<&oci_client::manifest::OciDescriptor, String> {
    // The registry writes these: a few, each clipped, are enough to say what the artifact is.
    let types: Vec<String> = manifest.layers.iter().take(4).map(|l| clip(&l.media_type, 80)).collect();
    match manifest.layers.as_slice() {
        [layer] if LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) => {
            // Checked in form too: the digest becomes part of the blob's URL.
            if layer.digest.strip_prefix("sha256:").is_some_and(|h| check_pin(h).is_ok()) {
                Ok(layer)
            } else {
                Err(format!("the layer's digest {:?} is not a sha256 digest", clip(&layer.digest, 80)))
            }
        }
        layers => Err(format!(
            "the manifest's {} layers are {types:?}; expected one layer of {LAYER_MEDIA_TYPES:?}",
            layers.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layers: serde_json::Value) -> OciImageManifest {
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn only_one_wasm_layer_is_a_component() {
        let layer = |t: &str, digest: &str| serde_json::json!({"mediaType": t, "digest": digest, "size": 10});
        let good = format!("sha256:{}", "a".repeat(64));
        for (layers, ok) in [
            (serde_json::json!([layer("application/wasm", &good)]), true),
            (serde_json::json!([layer("application/vnd.wasm.content.layer.v1+wasm", &good)]), true),
            (serde_json::json!([layer("application/vnd.oci.image.layer.v1.tar+gzip", &good)]), false),
            (serde_json::json!([layer("application/wasm", &good), layer("application/wasm", &good)]), false),
            (serde_json::json!([]), false),
            (serde_json::json!([layer("application/wasm", "sha512:abc")]), false),
            (serde_json::json!([layer("application/wasm", &format!("sha256:../{}", "a".repeat(61)))]), false),
        ] {
            assert_eq!(component_layer(&manifest(layers.clone())).is_ok(), ok, "{layers}");
        }
    }

    #[test]
    fn the_media_type_is_the_manifests_own_before_the_header() {
        assert_eq!(media_type_of(br#"{"mediaType": "a"}"#, Some("b")), "a");
        assert_eq!(media_type_of(b"{}", Some("b")), "b");
        assert_eq!(media_type_of(b"not json", None), "unknown");
    }
}
