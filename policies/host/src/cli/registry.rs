//! `policy push` / `policy pull` (as `kwctl push` / `kwctl pull`), and `--policy registry://...` for eval, validate
//! and bench: the pull is the operator's own ([`crate::registry::pull`]), so what passes here passes there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{Output, PolicySource, Ran, files};
use crate::registry::cosign::PublicKey;
use crate::registry::push::{Layout, Target, push_component};
use crate::registry::{self, Credentials, RegistryClient, RegistryRef, Want};
use crate::source::sha256_hex;
use crate::{Error, HostConfig, PolicyHost, Result, Source, World};

/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest CA bundle, Docker config or key file read.
const MAX_SMALL_FILE: usize = 1 << 20;

/// Reaching a registry: trust, credentials, pin and signature.
#[derive(Args, Debug, Clone, PartialEq, Default)]
pub struct RegistryArgs {
    /// Extra CA certificates (PEM) to trust for the registry.
    #[arg(long, value_name = "FILE.pem")]
    pub ca_file: Option<PathBuf>,
    /// Docker config holding the registry's credentials (`auths`); default `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json` when it exists.
    #[arg(long, value_name = "FILE.json")]
    pub docker_config: Option<PathBuf>,
    /// User name for the registry (with --password-stdin), instead of a Docker config.
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) for --username from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// The component's sha256 (64 hex): the pulled layer must have it, as a profile's pin.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// A cosign public key (PEM) one of which must have signed the manifest (repeatable).
    #[arg(long, value_name = "FILE.pub")]
    pub cosign_key: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct PushArgs {
    /// Component file (`.wasm`, at most 16 MiB).
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// Where: `registry://host[:port]/repository:tag`.
    #[arg(value_name = "registry://HOST/REPOSITORY:TAG")]
    pub reference: String,
    /// Check first that the component loads as this world (as the operator will).
    #[arg(long, value_enum)]
    pub world: Option<World>,
    #[arg(long, value_enum, default_value_t)]
    pub layout: Layout,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct PullArgs {
    /// What: `registry://host[:port]/repository:tag` or `...@sha256:<manifest digest>`.
    #[arg(value_name = "registry://HOST/REPOSITORY[:TAG|@DIGEST]")]
    pub reference: String,
    /// Where to write the component.
    #[arg(short = 'o', long = "output-file", value_name = "FILE.wasm")]
    pub output_file: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

impl RegistryArgs {
    fn roots(&self) -> Result<Vec<u8>> {
        self.ca_file.as_deref().map(|p| files::read(p, MAX_SMALL_FILE)).transpose().map(Option::unwrap_or_default)
    }

    fn credentials(&self, host: &str) -> Result<Option<Credentials>> {
        if let Some(username) = &self.username {
            let mut password = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut password)
                .map_err(|e| Error::Input { what: "--password-stdin".into(), detail: e.to_string() })?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            return Ok(Some(Credentials { username: username.clone(), password }));
        }
        let path = match &self.docker_config {
            Some(path) => Some(path.clone()),
            None => default_docker_config().filter(|p| p.exists()),
        };
        let Some(path) = path else { return Ok(None) };
        let json = files::read(&path, MAX_SMALL_FILE)?;
        Credentials::from_docker_config(&json, host, &path.display().to_string())
    }

    fn keys(&self) -> Result<Vec<PublicKey>> {
        let read = |p: &PathBuf| {
            let pem = String::from_utf8_lossy(&files::read(p, MAX_SMALL_FILE)?).into_owned();
            PublicKey::from_pem(&pem, &format!("--cosign-key {}", p.display()))
        };
        self.cosign_key.iter().map(read).collect()
    }
}

fn default_docker_config() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG").map(PathBuf::from);
    dir.or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker"))).map(|d| d.join("config.json"))
}

/// Pulls `reference` as `args` say (the CLI runs on the author's machine: no egress rule, as for `--policy FILE`).
pub(super) async fn pull(reference: &str, args: &RegistryArgs, max_bytes: usize) -> Result<registry::Pulled> {
    let r = RegistryRef::parse(reference)?;
    let client = RegistryClient::new(REQUEST_TIMEOUT, &args.roots()?, perf_egress::Egress::open(), &[])?;
    let credentials = args.credentials(&r.host)?;
    let keys = args.keys()?;
    let want = Want { pin: args.sha256.as_deref(), credentials: credentials.as_ref(), max_bytes, keys: &keys };
    registry::pull(&client, &r, want).await
}

/// The bytes of a `--policy registry://...` source, pulled; None for a file or a built-in.
pub(super) async fn pulled_source(source: &PolicySource, args: &RegistryArgs) -> Result<Option<Vec<u8>>> {
    let Some(text) = source.policy.as_deref().and_then(Path::to_str).filter(|p| p.starts_with(registry::SCHEME)) else {
        return Ok(None);
    };
    let max = HostConfig::default().load_limits.max_component_bytes;
    Ok(Some(pull(text, args, max).await?.component))
}

pub(super) async fn run_pull(args: PullArgs) -> Result<Ran, (Option<super::PolicyId>, Error)> {
    let max = HostConfig::default().load_limits.max_component_bytes;
    let pulled = pull(&args.reference, &args.registry, max).await.map_err(|e| (None, e))?;
    std::fs::write(&args.output_file, &pulled.component).map_err(|e| {
        (None, Error::Input { what: format!("writing {}", args.output_file.display()), detail: e.to_string() })
    })?;
    let body = json!({
        "pulled": {
            "reference": args.reference, "manifestDigest": pulled.manifest_digest, "sha256": pulled.sha256,
            "mediaType": pulled.layer_media_type, "bytes": pulled.component.len(),
            "file": args.output_file.display().to_string(),
        },
    });
    let text = format!(
        "pulled {} ({} bytes, {}) to {}\nmanifest: {}\nsha256:   {}\n",
        args.reference,
        pulled.component.len(),
        pulled.layer_media_type,
        args.output_file.display(),
        pulled.manifest_digest,
        pulled.sha256
    );
    Ok(Ran { policy: None, body, text: Some(text) })
}

pub(super) async fn run_push(args: PushArgs) -> Result<Ran, (Option<super::PolicyId>, Error)> {
    let no_id = |e| (None, e);
    let r = RegistryRef::parse(&args.reference).map_err(no_id)?;
    if r.digest.is_some() {
        let detail = "push to a tag (registry://host/repository:tag); the digest is what the push prints".into();
        return Err(no_id(Error::Input { what: "reference".into(), detail }));
    }
    let host_config = HostConfig::default();
    let component = files::read(&args.file, host_config.load_limits.max_component_bytes).map_err(no_id)?;
    let sha256 = sha256_hex(&component);
    if let Some(world) = args.world {
        let host = PolicyHost::new(host_config).map_err(no_id)?;
        host.load(world, Source::Pinned { bytes: &component, sha256: &sha256 }).map_err(no_id)?;
    }
    let roots = args.registry.roots().map_err(no_id)?;
    let credentials = args.registry.credentials(&r.host).map_err(no_id)?;
    let target = Target { reference: &r, roots_pem: &roots, credentials: credentials.as_ref() };
    let manifest_digest = push_component(&target, &component, args.layout).await.map_err(no_id)?;
    let pinned = format!("{}{}/{}@{manifest_digest}", registry::SCHEME, r.host, r.repository);
    let body = json!({ "pushed": { "reference": args.reference, "manifestDigest": manifest_digest, "sha256": sha256, "pinned": pinned } });
    let text = format!(
        "pushed {} ({} bytes)\nmanifest: {manifest_digest}\nsha256:   {sha256}\n\nIn a profile:\n  policy:\n    registry:\n      \
         reference: {pinned}\n      sha256: {sha256}\n",
        args.reference,
        component.len()
    );
    Ok(Ran { policy: None, body, text: Some(text) })
}
