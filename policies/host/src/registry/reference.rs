//! `registry://host[:port]/repository[:tag][@sha256:digest]`: parsed by the OCI reference grammar (oci-spec), with the
//! host always written out, so a reference never silently means Docker Hub.

use oci_client::Reference;

use crate::{Error, Result};

/// The scheme of a registry source.
pub const SCHEME: &str = "registry://";

/// A parsed registry reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// The reference as written (for messages).
    pub text: String,
    /// `host[:port]` the API is asked at (Docker Hub's `docker.io` resolved to its API host).
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` of the manifest, when pinned.
    pub digest: Option<String>,
}

impl RegistryRef {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |detail: String| Error::Input { what: format!("registry reference {text:?}"), detail };
        let rest = text.strip_prefix(SCHEME).ok_or_else(|| bad(format!("expected it to start with {SCHEME}")))?;
        let (written_host, path) = rest.split_once('/').ok_or_else(|| bad("expected host/repository".into()))?;
        if written_host.is_empty() || path.is_empty() {
            return Err(bad("expected host/repository".into()));
        }
        let parsed: Reference = rest.parse().map_err(|e| bad(format!("{e}")))?;
        // The grammar reads a first part without a dot or port as a Docker Hub namespace: refuse, not guess.
        if parsed.registry() != written_host {
            return Err(bad(format!(
                "{written_host:?} is not read as a registry host: write it with a dot or a port (registry.example.com, \
                 localhost:5000)"
            )));
        }
        let digest = parsed.digest().map(str::to_string);
        if let Some(d) = &digest {
            let hex = d.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(bad(format!("digest {d:?}: expected sha256: and 64 lower-case hex characters")));
            }
        }
        // Without tag or digest, the grammar's default tag.
        let tag = parsed.tag().map(str::to_string).or_else(|| digest.is_none().then(|| "latest".to_string()));
        Ok(Self {
            text: text.to_string(),
            host: parsed.resolve_registry().to_string(),
            repository: parsed.repository().to_string(),
            tag,
            digest,
        })
    }

    /// What the manifest is asked for by: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// `https://host/v2/repository/`.
    pub(crate) fn api(&self) -> String {
        format!("https://{}/v2/{}/", self.host, self.repository)
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            digest: None,
            text: format!("{}{}/{}:{tag}", SCHEME, self.host, self.repository),
            ..self.clone()
        }
    }

    /// The oci-client reference (for `push`).
    pub(crate) fn oci(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), Some(t)) => {
                Reference::with_tag_and_digest(self.host.clone(), self.repository.clone(), t.clone(), d.clone())
            }
            (Some(d), None) => Reference::with_digest(self.host.clone(), self.repository.clone(), d.clone()),
            (None, t) => Reference::with_tag(
                self.host.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl std::fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_kubewarden_users_write_them() {
        let d = format!("sha256:{}", "a".repeat(64));
        // The reference, and its host, repository, tag and digest (None: refused).
        type Parts<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let cases: [(&str, Option<Parts>); 12] = [
            (
                "registry://ghcr.io/kubewarden/policies/ttl:v1",
                Some(("ghcr.io", "kubewarden/policies/ttl", Some("v1"), None)),
            ),
            ("registry://localhost:5000/p", Some(("localhost:5000", "p", Some("latest"), None))),
            ("registry://127.0.0.1:5000/team/p:1.0", Some(("127.0.0.1:5000", "team/p", Some("1.0"), None))),
            (&format!("registry://r.example/p@{d}"), Some(("r.example", "p", None, Some(&d)))),
            (&format!("registry://r.example/p:v2@{d}"), Some(("r.example", "p", Some("v2"), Some(&d)))),
            ("registry://docker.io/library/p:v1", Some(("index.docker.io", "library/p", Some("v1"), None))),
            ("https://r.example/p:v1", None),
            ("registry://r.example", None),
            ("registry://registry/p:v1", None),
            ("registry://r.example/UPPER:v1", None),
            ("registry://r.example/p@sha256:abc", None),
            ("registry:///p:v1", None),
        ];
        for (text, expected) in cases {
            let parsed = RegistryRef::parse(text);
            match (parsed, expected) {
                (Ok(r), Some((host, repo, tag, digest))) => {
                    assert_eq!((r.host.as_str(), r.repository.as_str()), (host, repo), "{text}");
                    assert_eq!((r.tag.as_deref(), r.digest.as_deref()), (tag, digest), "{text}");
                }
                (Err(e), None) => assert_eq!(e.category(), "input", "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn a_digest_is_asked_for_before_a_tag() {
        let d = format!("sha256:{}", "b".repeat(64));
        let r = RegistryRef::parse(&format!("registry://r.example/p:v2@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.api(), "https://r.example/v2/p/");
        assert_eq!(r.with_tag("x.sig").manifest_ref(), "x.sig");
    }
}
