//! Registry credentials and the 401 handshake: Basic, or a Bearer token from the challenge's realm (the flow Docker
//! Hub, GHCR and distribution's token server use). Credentials come from a `kubernetes.io/dockerconfigjson` Secret
//! (or, for the CLI, a Docker config file) and are sent only to the registry's host and its token realm.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::transport::{causes, clip, read_capped};
use super::{RegistryClient, RegistryRef};
use crate::{Error, Result};

/// Largest token response read.
const MAX_TOKEN_BYTES: usize = 64 << 10;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl Credentials {
    /// The entry for `host` in a Docker config (`.dockerconfigjson`): its `auths` key may be the host, or a URL
    /// naming it (`https://host/v1/`). None when no entry names the host; an error when the file or entry is bad.
    pub fn from_docker_config(json: &[u8], host: &str, what: &str) -> Result<Option<Self>> {
        let bad = |detail: String| Error::Input { what: what.to_string(), detail };
        let config: DockerConfig =
            serde_json::from_slice(json).map_err(|e| bad(format!("expected a Docker config JSON with auths: {e}")))?;
        let entry = config.auths.iter().find(|(key, _)| auth_key_host(key).eq_ignore_ascii_case(host));
        let Some((key, entry)) = entry else { return Ok(None) };
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Some(Self { username: username.clone(), password: password.clone() }));
        }
        let auth =
            entry.auth.as_deref().ok_or_else(|| bad(format!("auths.{key}: expected auth or username and password")))?;
        let decoded = STANDARD.decode(auth.trim()).map_err(|e| bad(format!("auths.{key}.auth: not base64: {e}")))?;
        let text = String::from_utf8(decoded).map_err(|_| bad(format!("auths.{key}.auth: not UTF-8")))?;
        let (username, password) =
            text.split_once(':').ok_or_else(|| bad(format!("auths.{key}.auth: expected base64 of user:password")))?;
        Ok(Some(Self { username: username.into(), password: password.into() }))
    }

    fn basic(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.username, self.password)))
    }
}

/// The host an `auths` key names: `host`, `host:port`, or a URL such as `https://index.docker.io/v1/`.
fn auth_key_host(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    // Docker writes Docker Hub's credentials under index.docker.io, the host its API is asked at.
    if host == "docker.io" { "index.docker.io" } else { host }
}

/// The `Authorization` header answering a 401's `WWW-Authenticate`: Basic with the credentials, or a Bearer token
/// fetched from the challenge's realm (with the credentials, if any, else anonymously).
pub(crate) async fn answer(
    client: &RegistryClient,
    r: &RegistryRef,
    challenge: &str,
    credentials: Option<&Credentials>,
) -> std::result::Result<String, String> {
    let challenges = http_auth::parse_challenges(challenge).map_err(|e| {
        format!("unreadable WWW-Authenticate {:?}: {}", clip(challenge, 120), clip(&e.to_string(), 120))
    })?;
    if let Some(bearer) = challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer")) {
        let param = |name: &str| {
            bearer.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped())
        };
        let realm = param("realm").ok_or("the Bearer challenge names no realm")?;
        let scope = param("scope").unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        return token(client, &realm, param("service"), &scope, credentials).await.map(|t| format!("Bearer {t}"));
    }
    if challenges.iter().any(|c| c.scheme.eq_ignore_ascii_case("basic")) {
        return credentials.map(Credentials::basic).ok_or_else(|| {
            "the registry asks for credentials (401, Basic) and none were given (a pullSecret; for the CLI, \
             --docker-config or --username)"
                .to_string()
        });
    }
    Err(format!("unsupported WWW-Authenticate {:?}: expected Basic or Bearer", clip(challenge, 120)))
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

async fn token(
    client: &RegistryClient,
    realm: &str,
    service: Option<String>,
    scope: &str,
    credentials: Option<&Credentials>,
) -> std::result::Result<String, String> {
    let mut url = reqwest::Url::parse(realm).map_err(|e| format!("token realm {realm:?}: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("token realm {realm:?}: only https is allowed"));
    }
    client.reachable(&url).map_err(|e| format!("token realm {realm:?}: {e}"))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = &service {
            query.append_pair("service", service);
        }
        query.append_pair("scope", scope);
    }
    let mut request = client.http.get(url);
    if let Some(c) = credentials {
        request = request.header(reqwest::header::AUTHORIZATION, c.basic());
    }
    let response = request.send().await.map_err(|e| format!("token realm {realm:?}: {}", causes(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let why = if status == reqwest::StatusCode::UNAUTHORIZED { ": credentials refused" } else { "" };
        return Err(format!("token realm {realm:?} answered HTTP {status}{why}"));
    }
    let body = read_capped(response, MAX_TOKEN_BYTES, "the token answer").await?;
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| format!("token answer: {e}"))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the token answer holds no token".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_configs_give_the_entry_for_the_host() {
        let auth = STANDARD.encode("team:s3cret:with:colons");
        let json = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "r.example:5000": {{"username": "u", "password": "p"}}}}}}"#
        );
        let got = |host: &str| Credentials::from_docker_config(json.as_bytes(), host, "Secret s").unwrap();
        assert_eq!(
            got("index.docker.io").map(|c| (c.username, c.password)),
            Some(("team".into(), "s3cret:with:colons".into()))
        );
        assert_eq!(got("r.example:5000").map(|c| c.username), Some("u".into()));
        assert_eq!(got("other.example"), None);
        for (bad, says) in [
            ("{", "Docker config JSON"),
            (r#"{"auths": {"h": {}}}"#, "auths.h: expected auth"),
            (r#"{"auths": {"h": {"auth": "!!"}}}"#, "not base64"),
            (&format!(r#"{{"auths": {{"h": {{"auth": "{}"}}}}}}"#, STANDARD.encode("nocolon")), "user:password"),
        ] {
            let e = Credentials::from_docker_config(bad.as_bytes(), "h", "Secret s").unwrap_err();
            assert!(e.to_string().contains(says) && e.to_string().contains("Secret s"), "{bad}: {e}");
        }
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = Credentials { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
