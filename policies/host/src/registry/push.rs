//! `policy push`: a component stored as a one-layer OCI artifact (the Wasm OCI artifact layout by default, or
//! Kubewarden's), by oci-client's push: the CLI runs on the author's machine, outside the operator's egress rule.

use std::collections::BTreeMap;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, WASM_CONFIG_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;

use super::{Credentials, RegistryRef, WASM_COMPONENT_LAYER, WASM_CONFIG_V0, WASM_CONTENT_LAYER};
use crate::source::sha256_hex;
use crate::{Error, Result};

/// How the artifact is laid out.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The Wasm OCI artifact (`application/wasm` layer, `application/vnd.wasm.config.v0+json` config).
    #[default]
    Component,
    /// Kubewarden's and wasm-to-oci's (`application/vnd.wasm.content.layer.v1+wasm`).
    Kubewarden,
}

/// One blob of an artifact.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Blob {
    fn descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: format!("sha256:{}", sha256_hex(&self.data)),
            size: self.data.len() as i64,
            urls: None,
            annotations: self.annotations.clone(),
            artifact_type: None,
        }
    }
}

/// Where to push and as whom.
pub struct Target<'a> {
    pub reference: &'a RegistryRef,
    /// Extra CA certificates (PEM; empty for none).
    pub roots_pem: &'a [u8],
    pub credentials: Option<&'a Credentials>,
}

/// Pushes `layers` with `config` as one manifest at the target's tag; returns the manifest's digest.
pub async fn push_artifact(target: &Target<'_>, config: Blob, layers: Vec<Blob>) -> Result<String> {
    let fail = |detail: String| Error::Registry { reference: target.reference.text.clone(), detail };
    let mut client_config = ClientConfig { protocol: ClientProtocol::Https, ..ClientConfig::default() };
    if !target.roots_pem.trim_ascii().is_empty() {
        let data = target.roots_pem.to_vec();
        client_config.extra_root_certificates = vec![Certificate { encoding: CertificateEncoding::Pem, data }];
    }
    let client = oci_client::Client::try_from(client_config).map_err(|e| fail(format!("client: {e}")))?;
    let image = target.reference.oci();
    let auth = match target.credentials {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    client
        .auth(&image, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| fail(format!("authenticating: {e}")))?;
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: config.descriptor(),
        layers: layers.iter().map(Blob::descriptor).collect(),
        subject: None,
        artifact_type: None,
        annotations: None,
    };
    for blob in layers.iter().chain([&config]) {
        let digest = blob.descriptor().digest;
        client
            .push_blob(&image, blob.data.clone(), &digest)
            .await
            .map_err(|e| fail(format!("pushing {digest}: {e}")))?;
    }
    let body = serde_json::to_vec(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    let content_type = reqwest::header::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
    client
        .push_manifest_raw(&image, body.clone(), content_type)
        .await
        .map_err(|e| fail(format!("pushing the manifest: {e}")))?;
    Ok(format!("sha256:{}", sha256_hex(&body)))
}

/// Pushes a component in `layout`; returns the manifest's digest.
pub async fn push_component(target: &Target<'_>, component: &[u8], layout: Layout) -> Result<String> {
    let layer_digest = format!("sha256:{}", sha256_hex(component));
    let (layer_type, config) = match layout {
        Layout::Component => {
            let config = serde_json::json!({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer_digest]});
            (
                WASM_COMPONENT_LAYER,
                Blob { media_type: WASM_CONFIG_V0.into(), data: config.to_string().into_bytes(), annotations: None },
            )
        }
        Layout::Kubewarden => (
            WASM_CONTENT_LAYER,
            Blob { media_type: WASM_CONFIG_MEDIA_TYPE.into(), data: b"{}".to_vec(), annotations: None },
        ),
    };
    let layer = Blob { media_type: layer_type.into(), data: component.to_vec(), annotations: None };
    push_artifact(target, config, vec![layer]).await
}
