//! The HTTP client registry pulls go through: the URL sources' bounds (HTTPS only, private CAs, one deadline per
//! request, names screened by the administrator's egress rule when resolved, at most 3 redirects), and redirects
//! only to the registry's own host or to the hosts the administrator lets registries hand blobs to (their CDNs).

use std::sync::Arc;
use std::time::Duration;

use perf_egress::{Egress, Kind, http};

use crate::Result;

/// Hosts registries commonly redirect blob downloads to: GitHub's (ghcr.io) and Docker Hub's CDNs.
pub const DEFAULT_REDIRECT_HOSTS: [&str; 2] =
    ["pkg-containers.githubusercontent.com", "production.cloudflare.docker.com"];

/// Redirects followed at most, as for URL sources.
const MAX_REDIRECTS: usize = 3;

/// A bounded client for registry APIs.
#[derive(Clone)]
pub struct RegistryClient {
    pub(crate) http: reqwest::Client,
    pub(crate) egress: Egress,
}

impl RegistryClient {
    /// `roots_pem`: extra CA certificates (PEM, may be empty). `redirect_hosts`: hosts besides the registry's own a
    /// redirect may lead to (exact names, case-insensitive).
    pub fn new(timeout: Duration, roots_pem: &[u8], egress: Egress, redirect_hosts: &[String]) -> Result<Self> {
        let allowed: Arc<[String]> = redirect_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let rule = egress.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let from =
                attempt.previous().first().map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()));
            let to = attempt.url();
            let same_host = from.is_some_and(|(h, p)| h.as_deref() == to.host_str() && p == to.port_or_known_default());
            let listed = to.host_str().is_some_and(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)));
            if !same_host && !listed {
                let host = to.host_str().unwrap_or("?").to_string();
                return attempt.error(RedirectRefused(host));
            }
            match http::literal(&rule, Kind::Policy, to) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        let http = crate::source::bounded_client(timeout, roots_pem, egress.clone(), redirects)?;
        Ok(Self { http, egress })
    }

    /// Refuses a URL whose written address the egress rule denies (names are screened when resolved).
    pub(crate) fn reachable(&self, url: &reqwest::Url) -> std::result::Result<(), String> {
        http::literal(&self.egress, Kind::Policy, url).map_err(|r| r.to_string())
    }
}

/// A redirect to a host that is neither the registry nor an allowed blob host.
#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redirected to another host, {}, which is not among the hosts registries may redirect to \
             (--policy-registry-redirect-hosts)",
            self.0
        )
    }
}

impl std::error::Error for RedirectRefused {}

pub(crate) use crate::source::{causes, read_capped};

/// At most `max` characters of `text` a server sent, for a message (status and events must stay short).
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}
