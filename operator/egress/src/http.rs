//! The egress rule in a reqwest client: names are screened when resolved, and an address written in a URL (which
//! reqwest connects to without resolving) is judged before the request and at each redirect.

use crate::{Egress, Kind, Refusal};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A resolver keeping only the addresses `egress` lets `kind` reach.
pub struct Screened {
    egress: Arc<Egress>,
    kind: Kind,
}

impl Screened {
    pub fn new(egress: Egress, kind: Kind) -> Arc<Self> {
        Arc::new(Self { egress: Arc::new(egress), kind })
    }
}

impl reqwest::dns::Resolve for Screened {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (egress, kind) = (self.egress.clone(), self.kind);
        Box::pin(async move {
            let found = crate::resolve(&egress, kind, name.as_str(), 0).await?;
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether the address written in `url`, if it has one, may be reached for `kind`.
pub fn literal(egress: &Egress, kind: Kind, url: &reqwest::Url) -> Result<(), Refusal> {
    let Some(host) = url.host_str() else { return Ok(()) };
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => egress.screen(kind, host, &[SocketAddr::new(ip, 0)]).map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// A redirect policy following at most `hops` redirects, each to a place `egress` lets `kind` reach.
pub fn redirects(egress: Egress, kind: Kind, hops: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > hops {
            return attempt.error(format!("more than {hops} redirects"));
        }
        match literal(&egress, kind, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refusal) => attempt.error(refusal),
        }
    })
}
