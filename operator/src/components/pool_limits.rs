//! Which limit caps each pool. A declared `serverMaxConnections` overrides what the server allows (a pooler in
//! front, a server about to be resized) and is checked against it: above it is a warning with both numbers. A
//! server that could not be read this round is sized from what is known: the declared limit, else what the last
//! read of the same server said; with neither, the pool is held at its minimum ([`Cap::Unverified`]), never above
//! a share nobody verified.

use super::pools::Cap;
use perf_operator_api::CacheSpec;

/// What a server allows the app's pods in all (before `reservedPercent`), and where that number comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub connections: u64,
    /// e.g. `live PostgreSQL max_connections 37 minus 3 reserved`.
    pub source: String,
}

/// A pool's server as this round found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Live {
    /// No server to read for this pool (or, for Redis, none whose limit is known).
    #[default]
    NotNamed,
    /// Read this round: what it allows; None when it sets no limit.
    Read(Option<Allowance>),
    /// Not read this round (`message` says why); `earlier`: what the last read of the same server said.
    Failed { message: String, earlier: Option<Allowance> },
}

/// A pool's cap, and what to say about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub cap: Cap,
    /// The declared limit is above what the server allows.
    pub warning: Option<String>,
    /// The server could not be read, and what the pool is sized from instead.
    pub unread: Option<String>,
}

/// The cap of pool `pool` from its declared `serverMaxConnections` and its server.
pub fn resolve(pool: &str, declared: Option<u32>, live: &Live) -> Resolved {
    let known = match live {
        Live::Read(allowance) => allowance.as_ref(),
        Live::Failed { earlier, .. } => earlier.as_ref(),
        Live::NotNamed => None,
    };
    let warning = match (declared, known) {
        (Some(d), Some(k)) if u64::from(d) > k.connections => Some(format!(
            "{pool}: declared serverMaxConnections {d} is above what the server allows ({}: {}); sized from the \
             declared {d}",
            k.source, k.connections
        )),
        _ => None,
    };
    let cap = match (declared, live) {
        (Some(d), _) => Cap::Limit { connections: u64::from(d), source: format!("declared serverMaxConnections {d}") },
        (None, Live::Read(Some(a)) | Live::Failed { earlier: Some(a), .. }) => {
            Cap::Limit { connections: a.connections, source: a.source.clone() }
        }
        (None, Live::NotNamed | Live::Read(None)) => Cap::None,
        (None, Live::Failed { earlier: None, .. }) => Cap::Unverified,
    };
    let unread = match live {
        Live::Failed { message, .. } => Some(format!("{pool}: {message}; sized from {}", describe(&cap))),
        _ => None,
    };
    Resolved { cap, warning, unread }
}

fn describe(cap: &Cap) -> String {
    match cap {
        Cap::Limit { source, .. } => source.clone(),
        Cap::Unverified => "nothing known: held at min until the server answers".into(),
        Cap::None => "the declared bounds".into(),
    }
}

/// The Redis pools' server: the `maxclients` the operator configures, or for an external Redis the declared one,
/// else the one the server reported (`reported`). An external Redis that could not be read leaves the bounds (its
/// readiness is `CacheReady`'s to report).
pub fn redis(cache: Option<&CacheSpec>, reported: Option<u32>) -> Live {
    let allowance =
        |connections: u32, source: String| Live::Read(Some(Allowance { connections: connections.into(), source }));
    let Some(cache) = cache else { return Live::NotNamed };
    match (&cache.redis.provision, &cache.redis.external) {
        (Some(p), _) => {
            allowance(p.max_clients, format!("Redis maxclients {}, as the operator configures it", p.max_clients))
        }
        (None, Some(e)) => match (e.max_clients, reported) {
            (Some(m), _) => allowance(m, format!("declared maxClients {m} of the external Redis")),
            (None, Some(r)) => allowance(r, format!("Redis maxclients {r}, as the server reports it")),
            (None, None) => Live::NotNamed,
        },
        (None, None) => Live::NotNamed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(connections: u64) -> Allowance {
        Allowance { connections, source: "live PostgreSQL max_connections 37 minus 3 reserved".into() }
    }

    #[test]
    fn the_live_limit_caps_when_nothing_is_declared() {
        let r = resolve("postgres", None, &Live::Read(Some(live(34))));
        assert_eq!(r.cap, Cap::Limit { connections: 34, source: live(34).source });
        assert_eq!((r.warning, r.unread), (None, None));
        assert_eq!(resolve("clickhouse", None, &Live::Read(None)).cap, Cap::None, "a server without limits");
    }

    #[test]
    fn a_declared_limit_overrides_and_above_the_live_one_is_a_warning_with_both_numbers() {
        let above = resolve("postgres", Some(200), &Live::Read(Some(live(34))));
        assert_eq!(above.cap, Cap::Limit { connections: 200, source: "declared serverMaxConnections 200".into() });
        let warning = above.warning.unwrap();
        assert!(warning.contains("200") && warning.contains("37 minus 3 reserved: 34"), "{warning}");
        let below = resolve("postgres", Some(20), &Live::Read(Some(live(34))));
        assert_eq!(
            (below.cap, below.warning),
            (Cap::Limit { connections: 20, source: "declared serverMaxConnections 20".into() }, None)
        );
    }

    #[test]
    fn an_unread_server_is_sized_from_what_is_known_and_never_from_nothing() {
        let failed = |earlier| Live::Failed { message: "PostgreSQL db:5432/app is unreachable".into(), earlier };
        let declared = resolve("postgres", Some(50), &failed(None));
        assert_eq!(declared.cap, Cap::Limit { connections: 50, source: "declared serverMaxConnections 50".into() });
        assert!(declared.unread.unwrap().ends_with("sized from declared serverMaxConnections 50"));
        let remembered = resolve("postgres", None, &failed(Some(live(34))));
        assert_eq!(remembered.cap, Cap::Limit { connections: 34, source: live(34).source });
        // The declared limit is still checked against the last reading.
        assert!(resolve("postgres", Some(50), &failed(Some(live(34)))).warning.is_some());
        let nothing = resolve("postgres", None, &failed(None));
        assert_eq!(nothing.cap, Cap::Unverified);
        assert!(nothing.unread.unwrap().contains("held at min"));
    }

    #[test]
    fn redis_pools_take_the_configured_then_declared_then_reported_maxclients() {
        let cache = |redis: serde_json::Value| -> CacheSpec {
            serde_json::from_value(serde_json::json!({"redis": redis})).unwrap()
        };
        let connections = |l: Live| match l {
            Live::Read(Some(a)) => Some(a.connections),
            _ => None,
        };
        assert_eq!(
            connections(redis(Some(&cache(serde_json::json!({"provision": {"maxClients": 1000}}))), Some(7))),
            Some(1000)
        );
        let external =
            |m: Option<u32>| cache(serde_json::json!({"external": {"address": "redis://c:6379", "maxClients": m}}));
        // A declared cap wins over the reported one (a proxy in front of Redis may allow fewer).
        assert_eq!(connections(redis(Some(&external(Some(100))), Some(2000))), Some(100));
        assert_eq!(connections(redis(Some(&external(None)), Some(2000))), Some(2000));
        // Neither known (unreachable, nothing declared): the pool's own bounds.
        assert_eq!(redis(Some(&external(None)), None), Live::NotNamed);
        assert_eq!(redis(None, Some(5)), Live::NotNamed);
    }
}
