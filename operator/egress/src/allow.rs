//! The administrator's allow-lists: which hosts profiles may name, per kind of server.

use crate::reserved::{Reserved, reserved};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The kinds of server a profile names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Prometheus,
    ClickHouse,
    Postgres,
    Redis,
    /// A policy component's HTTPS source.
    Policy,
    /// A canary notification's webhook (Slack, Teams, any HTTP receiver).
    Notification,
    /// A canary run's webhook (`analysis.webhooks`: load testers, gates).
    Hook,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Prometheus, Kind::ClickHouse, Kind::Postgres, Kind::Redis, Kind::Policy, Kind::Notification, Kind::Hook];

    /// The name used in flags and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prometheus => "prometheus",
            Kind::ClickHouse => "clickhouse",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Policy => "policy",
            Kind::Notification => "notification",
            Kind::Hook => "hook",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// What one allow-list entry matches.
#[derive(Clone, Debug, PartialEq)]
enum Pattern {
    /// A host name: exact, or `*.suffix` for any name under it; a `{namespace}` inside a label stands for the
    /// profile's namespace.
    Host(String),
    /// Addresses: an IP literal in a profile, or what a name no host entry matches resolves to.
    Net(IpNet),
}

/// One entry: a pattern for one kind, or for all.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    kind: Option<Kind>,
    pattern: Pattern,
}

/// An allow-list flag value that is not one.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{flag} {value:?}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

/// Why a host may not be reached. The text is fixed: no server's words, no addresses beyond the one refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    #[error("{host} is {} ({address}); the operator reaches it only when its administrator allows it (--egress-allow-reserved)", why.describe())]
    Reserved { host: String, address: IpAddr, why: Reserved },
    #[error("{host} is not among the {} endpoints the operator's administrator allows (--egress-allow)", kind.name())]
    NotListed { kind: Kind, host: String },
    #[error("{host} resolves to no address the operator's administrator allows for {} (--egress-allow)", kind.name())]
    OutsideNets { kind: Kind, host: String },
}

/// Where the operator may connect on a profile's behalf. The default denies the reserved ranges
/// ([`crate::reserved`]) and allows every other host; entries for a kind (or for all kinds) limit it to them.
#[derive(Clone, Debug, Default)]
pub struct Egress {
    rules: Vec<Rule>,
    /// Reserved addresses that may be reached anyway (a test cluster's 127.0.0.0/8).
    reserved_allowed: Vec<IpNet>,
    api_server: Vec<IpAddr>,
    /// No check at all: the CLI run by a user against their own servers.
    open: bool,
}

impl Egress {
    /// No limits (the CLI, and tests of other concerns).
    pub fn open() -> Self {
        Self { open: true, ..Self::default() }
    }

    /// From the flags: `allow` entries are `[kind=]pattern` (a host, `*.suffix`, `{namespace}` inside a label, an
    /// address or a CIDR); `reserved` are CIDRs of reserved addresses allowed anyway; `api_server` the API
    /// server's addresses.
    pub fn new(allow: &[String], reserved: &[String], api_server: Vec<IpAddr>) -> Result<Self, ConfigError> {
        let rules = allow.iter().map(|a| a.trim()).filter(|a| !a.is_empty()).map(rule).collect::<Result<_, _>>()?;
        let reserved_allowed = reserved
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .map(|r| {
                net(r).ok_or_else(|| ConfigError {
                    flag: "--egress-allow-reserved",
                    value: r.to_string(),
                    reason: "expected an address or a CIDR, e.g. 127.0.0.0/8".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules, reserved_allowed, api_server, open: false })
    }

    /// Whether a profile in `namespace` may name `host` for `kind`, judged on the name alone (before any lookup:
    /// `validate`, `plan` and each round). An address is judged whole here; a name is judged again on what it
    /// resolves to ([`Egress::screen`]).
    pub fn check(&self, kind: Kind, namespace: &str, host: &str) -> Result<(), Refusal> {
        if self.open {
            return Ok(());
        }
        let host = normal(host);
        let written = host.parse::<IpAddr>().ok().or_else(|| {
            // Names that always mean this host (RFC 6761), judged as loopback before any lookup.
            (host == "localhost" || host.ends_with(".localhost")).then_some(IpAddr::from([127, 0, 0, 1]))
        });
        if let Some(ip) = written {
            return self.check_address(kind, &host, ip);
        }
        let mut rules = self.rules_for(kind).peekable();
        if rules.peek().is_none() {
            return Ok(());
        }
        let mut nets = false;
        for r in rules {
            match &r.pattern {
                Pattern::Host(p) if host_matches(p, &host, Some(namespace)) => return Ok(()),
                Pattern::Net(_) => nets = true,
                Pattern::Host(_) => {}
            }
        }
        // A name no host entry matches may still resolve into a listed network: judged at connect.
        if nets { Ok(()) } else { Err(Refusal::NotListed { kind, host }) }
    }

    /// The addresses `host` resolved to that may be reached for `kind`: reserved ones go unless allowed, and a
    /// name no host entry matches keeps only addresses in a listed network. The profile's namespace is not known
    /// here, so a `{namespace}` in an entry stands for any one label ([`Egress::check`] ran before with it).
    pub fn screen(&self, kind: Kind, host: &str, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, Refusal> {
        if self.open {
            return Ok(addrs.to_vec());
        }
        let host = normal(host);
        let mut rules = self.rules_for(kind).peekable();
        let named = rules.peek().is_none()
            || rules.any(|r| matches!(&r.pattern, Pattern::Host(p) if host_matches(p, &host, None)));
        let mut first_refusal = None;
        let mut kept = Vec::new();
        for addr in addrs {
            let judged =
                if named { self.check_reserved(&host, addr.ip()) } else { self.check_address(kind, &host, addr.ip()) };
            match judged {
                Ok(()) => kept.push(*addr),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        match (kept.is_empty(), first_refusal) {
            (false, _) => Ok(kept),
            (true, Some(e @ Refusal::Reserved { .. })) => Err(e),
            (true, _) => Err(Refusal::OutsideNets { kind, host }),
        }
    }

    /// An address: not reserved (unless allowed), and inside a listed network when the kind has entries.
    fn check_address(&self, kind: Kind, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        self.check_reserved(host, ip)?;
        let ip = ip.to_canonical();
        let mut rules = self.rules_for(kind).peekable();
        if rules.peek().is_none() || rules.any(|r| matches!(&r.pattern, Pattern::Net(n) if n.contains(&ip))) {
            Ok(())
        } else {
            Err(Refusal::NotListed { kind, host: host.to_string() })
        }
    }

    fn check_reserved(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        let canonical = ip.to_canonical();
        match reserved(ip, &self.api_server) {
            Some(why) if !self.reserved_allowed.iter().any(|n| n.contains(&canonical)) => {
                Err(Refusal::Reserved { host: host.to_string(), address: canonical, why })
            }
            _ => Ok(()),
        }
    }

    fn rules_for(&self, kind: Kind) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.kind.is_none_or(|k| k == kind))
    }
}

/// Lower case, no brackets around an IPv6 address, no trailing dot.
fn normal(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

fn net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn rule(text: &str) -> Result<Rule, ConfigError> {
    let invalid = |reason: &str| ConfigError { flag: "--egress-allow", value: text.to_string(), reason: reason.into() };
    let (kind, pattern) = match text.split_once('=') {
        Some((k, p)) => {
            let kind = Kind::parse(k.trim()).ok_or_else(|| {
                invalid(
                    "the kind before = must be one of prometheus, clickhouse, postgres, redis, policy, notification, hook",
                )
            })?;
            (Some(kind), p.trim())
        }
        None => (None, text),
    };
    if let Some(n) = net(pattern) {
        return Ok(Rule { kind, pattern: Pattern::Net(n) });
    }
    let host = normal(pattern);
    let labels = host.strip_prefix("*.").unwrap_or(&host);
    if labels.is_empty() || !labels.split('.').all(valid_label) {
        return Err(invalid(
            "expected a host name (a `*.` prefix and `{namespace}` inside a label allowed), an address or a CIDR",
        ));
    }
    Ok(Rule { kind, pattern: Pattern::Host(host) })
}

fn valid_label(label: &str) -> bool {
    let bare = label.replacen("{namespace}", "x", 1);
    !bare.is_empty()
        && bare.len() <= 63
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !bare.starts_with('-')
        && !bare.ends_with('-')
}

/// Whether `host` matches `pattern`; `{namespace}` is `namespace`, or any one label's part when None.
fn host_matches(pattern: &str, host: &str, namespace: Option<&str>) -> bool {
    let (pattern, wildcard) = match pattern.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (pattern, false),
    };
    let wanted: Vec<&str> = pattern.split('.').collect();
    let got: Vec<&str> = host.split('.').collect();
    let extra = match got.len().checked_sub(wanted.len()) {
        Some(0) if !wildcard => 0,
        Some(n) if wildcard && n > 0 => n,
        _ => return false,
    };
    got[extra..].iter().zip(&wanted).all(|(g, w)| label_matches(w, g, namespace))
}

fn label_matches(pattern: &str, label: &str, namespace: Option<&str>) -> bool {
    let Some((before, after)) = pattern.split_once("{namespace}") else { return pattern == label };
    match namespace {
        Some(ns) => label == format!("{before}{ns}{after}"),
        None => label.len() > before.len() + after.len() && label.starts_with(before) && label.ends_with(after),
    }
}

#[cfg(test)]
#[path = "allow_tests.rs"]
mod tests;
