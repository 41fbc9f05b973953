//! Policy components in OCI registries (`registry://host/repository:tag` or `@sha256:...`, as Kubewarden users write
//! them): the manifest and its one WASM layer pulled over HTTPS under the same bounds as URL sources, media types
//! checked, the layer's digest held to the pin before its bytes are read, and an optional cosign signature verified.
//! `policy push` ([`push`]) stores a component the way this pull reads it.

mod auth;
pub mod cosign;
mod pull;
pub mod push;
mod reference;
mod transport;

pub use auth::Credentials;
pub use pull::{Pulled, Want, pull, verify_signed};
pub use reference::{RegistryRef, SCHEME};
pub use transport::{DEFAULT_REDIRECT_HOSTS, RegistryClient};

/// The WASM component layer (the CNCF Wasm OCI artifact layout, `wkg` and `wash`).
pub const WASM_COMPONENT_LAYER: &str = "application/wasm";
/// Kubewarden's and wasm-to-oci's layer.
pub const WASM_CONTENT_LAYER: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
/// Layer media types accepted as a policy component.
pub const LAYER_MEDIA_TYPES: [&str; 2] = [WASM_COMPONENT_LAYER, WASM_CONTENT_LAYER];
/// Manifest media types read: OCI's image manifest and Docker's v2 schema 2 (what older registries answer).
pub const MANIFEST_MEDIA_TYPES: [&str; 2] =
    [oci_client::manifest::OCI_IMAGE_MEDIA_TYPE, oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE];
/// The config `policy push` writes: the Wasm OCI artifact's config.
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";

/// Largest manifest read (a policy's is under 1 KiB; distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 256 << 10;
