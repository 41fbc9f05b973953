//! The pools' decision: which limit caps each pool (declared, read live this round, or as last read), the sizes,
//! `status.pools` (with what the servers allow) and `PoolsReady`. Pure, like the rest of [`super`].

use super::{Observed, Read, Unread};
use crate::components::pool_limits::{self, Allowance, Live};
use crate::components::pools::{self, Caps, PoolsPlan};
use crate::conditions::Report;
use crate::postgres::{PostgresError, PostgresLimits};
use perf_clickhouse::limits::ServerLimits as ClickHouseLimits;
use perf_operator_api::{
    PerformanceProfile, PerformanceProfileStatus, PoolSpec, PoolsSpec, PoolsStatus, ServerLimits, condition,
};
use std::collections::BTreeMap;

/// Whether the profile names a PostgreSQL for its pool (observe reads its limits).
pub fn reads_postgres(profile: &PerformanceProfile) -> bool {
    profile.spec.pools.as_ref().and_then(|p| p.postgres.as_ref()).is_some_and(|p| p.server.is_some())
}

/// Whether the profile has a ClickHouse pool and names its ClickHouse (observe reads its limits).
pub fn reads_clickhouse(profile: &PerformanceProfile) -> bool {
    profile.spec.clickhouse.is_some() && profile.spec.pools.as_ref().is_some_and(|p| p.clickhouse.is_some())
}

/// Pool sizes for the pods that serve the app. When they cannot be counted, the published sizes stay as they were.
pub fn decide(
    profile: &PerformanceProfile,
    observed: &Observed,
    status: &mut PerformanceProfileStatus,
) -> (Option<PoolsPlan>, Report) {
    let Some(spec) = &profile.spec.pools else { return (None, Report::not_configured(condition::POOLS_READY)) };
    let replicas = match (&observed.serving, spec.app_replicas) {
        (_, Some(declared)) => Some(declared),
        (Some(Ok(serving)), None) => *serving,
        (None, None) => None,
        (Some(Err(e)), None) => {
            return (kept(status), Report::failed(condition::POOLS_READY, "ObserveFailed", e.chain()));
        }
    };
    let earlier = profile.status.as_ref().and_then(|s| s.pools.as_ref()).map(|p| &p.servers);
    let servers = Servers::read(profile, observed, earlier);
    let (caps, warnings, unread) = caps(profile, spec, observed, &servers);
    // An HPA that cannot be read leaves the sizes for the pods there are, said in the message.
    let (hpa_max, hpa_note) = match &observed.autoscaling {
        Some(Ok(max)) => (*max, String::new()),
        Some(Err(e)) => (None, format!("; the HPA could not be read ({})", e.category())),
        None => (None, String::new()),
    };
    let growth = pools::Growth { hpa_max, canary: profile.spec.canary.is_some() };
    let plan = PoolsPlan { servers: servers.status, warnings, unread, ..pools::plan(spec, &caps, replicas, growth) };
    status.pools = Some(PoolsStatus {
        app_replicas: plan.app_replicas,
        worst_case_pods: plan.worst_case_pods,
        sizes: plan.sizes.clone(),
        servers: plan.servers.clone(),
    });
    let report = report(&plan, servers.reason, &hpa_note);
    (Some(plan), report)
}

/// The sizes as last published, when the pods cannot be counted this round.
fn kept(status: &PerformanceProfileStatus) -> Option<PoolsPlan> {
    status.pools.as_ref().map(|p| PoolsPlan {
        app_replicas: p.app_replicas,
        worst_case_pods: p.worst_case_pods,
        sizes: p.sizes.clone(),
        servers: p.servers.clone(),
        undersized: Vec::new(),
        warnings: Vec::new(),
        unread: Vec::new(),
    })
}

/// Each pool's cap, with the warnings (declared above live) and the servers that could not be read.
fn caps(
    profile: &PerformanceProfile,
    spec: &PoolsSpec,
    observed: &Observed,
    servers: &Servers,
) -> (Caps, Vec<String>, Vec<String>) {
    let reported = match &observed.redis {
        Some(Ok(stats)) => u32::try_from(stats.max_clients).ok().filter(|m| *m > 0),
        _ => None,
    };
    let redis = pool_limits::redis(profile.spec.cache.as_ref(), reported);
    let declared = |pool: Option<&PoolSpec>| pool.and_then(|p| p.server_max_connections);
    let postgres = spec.postgres.as_ref().map(|p| &p.pool);
    let clickhouse = pool_limits::resolve("clickhouse", declared(spec.clickhouse.as_ref()), &servers.clickhouse);
    let postgres = pool_limits::resolve("postgres", declared(postgres), &servers.postgres);
    let redis = pool_limits::resolve("redis", declared(spec.redis.as_ref()), &redis);
    let (mut warnings, mut unread) = (Vec::new(), Vec::new());
    for r in [&clickhouse, &postgres, &redis] {
        warnings.extend(r.warning.clone());
        unread.extend(r.unread.clone());
    }
    (Caps { clickhouse: clickhouse.cap, postgres: postgres.cap, redis: redis.cap }, warnings, unread)
}

/// `PoolsReady`: a server that could not be read first (its reason), then a shortfall, then a declared limit above
/// the live one (ready, as a warning: the declared limit was asked for), else published. Every note is in the
/// message.
fn report(plan: &PoolsPlan, unread_reason: Option<&'static str>, hpa_note: &str) -> Report {
    let notes: Vec<&str> =
        plan.unread.iter().chain(&plan.undersized).chain(&plan.warnings).map(String::as_str).collect();
    let sized =
        format!("sized for {} app pod(s), shares for up to {}{hpa_note}", plan.app_replicas, plan.worst_case_pods);
    // Set exactly when a server's read failed, which is what `unread` notes.
    if let Some(reason) = unread_reason {
        return Report::failed(condition::POOLS_READY, reason, notes.join("; "));
    }
    if !plan.undersized.is_empty() {
        return Report::failed(condition::POOLS_READY, "Undersized", notes.join("; "));
    }
    let said: Vec<String> =
        plan.servers.iter().filter_map(|(pool, s)| s.message.as_ref().map(|m| format!("{pool}: {m}"))).collect();
    let message = [vec![sized], plan.warnings.clone(), said].concat().join("; ");
    if plan.warnings.is_empty() {
        Report::ok(condition::POOLS_READY, "Published", message)
    } else {
        Report::warning(condition::POOLS_READY, "DeclaredAboveLive", message)
    }
}

/// The servers of the PostgreSQL and ClickHouse pools as this round found them, and their status entries.
#[derive(Default)]
struct Servers {
    postgres: Live,
    clickhouse: Live,
    status: BTreeMap<String, ServerLimits>,
    /// `PoolsReady`'s reason for the first server that could not be read.
    reason: Option<&'static str>,
}

impl Servers {
    fn read(
        profile: &PerformanceProfile,
        observed: &Observed,
        earlier: Option<&BTreeMap<String, ServerLimits>>,
    ) -> Self {
        let mut out = Servers::default();
        let earlier = |pool: &str, server: &str| earlier.and_then(|e| e.get(pool)).filter(|s| s.server == server);
        let pools = profile.spec.pools.as_ref();
        if let (Some(server), Some(read)) =
            (pools.and_then(|p| p.postgres.as_ref()).and_then(|p| p.server.as_ref()), &observed.postgres_limits)
        {
            let name = server.display();
            let entry = out.entry(read, |l| postgres_entry(&name, l), earlier("postgres", &name), &name);
            out.postgres = live(read, &entry, postgres_allowance);
            out.status.insert("postgres".into(), entry);
        }
        if let (Some(spec), Some(read), true) =
            (&profile.spec.clickhouse, &observed.clickhouse_limits, pools.is_some_and(|p| p.clickhouse.is_some()))
        {
            let name = spec.endpoint.clone();
            let entry = out.entry(read, |l| clickhouse_entry(&name, l), earlier("clickhouse", &name), &name);
            out.clickhouse = live(read, &entry, clickhouse_allowance);
            out.status.insert("clickhouse".into(), entry);
        }
        out
    }

    /// The status entry of one server: as read, or the earlier reading with why this round's failed.
    fn entry<T>(
        &mut self,
        read: &Read<T>,
        fresh: impl Fn(&T) -> ServerLimits,
        earlier: Option<&ServerLimits>,
        server: &str,
    ) -> ServerLimits {
        match read {
            Ok(limits) => fresh(limits),
            Err(e) => {
                self.reason.get_or_insert(reason(e));
                let kept =
                    earlier.cloned().unwrap_or_else(|| ServerLimits { server: server.into(), ..Default::default() });
                ServerLimits { error: Some(e.chain()), ..kept }
            }
        }
    }
}

/// The pool's server from its entry: what it allows now, or what it allowed when last read.
fn live<T>(read: &Read<T>, entry: &ServerLimits, allowance: fn(&ServerLimits, bool) -> Option<Allowance>) -> Live {
    match read {
        Ok(_) => Live::Read(allowance(entry, true)),
        Err(_) => Live::Failed { message: entry.error.clone().unwrap_or_default(), earlier: allowance(entry, false) },
    }
}

fn postgres_entry(server: &str, l: &PostgresLimits) -> ServerLimits {
    ServerLimits {
        server: server.into(),
        max_connections: Some(l.max_connections),
        reserved_connections: Some(l.reserved()),
        connections_in_use: Some(l.connections_in_use),
        ..Default::default()
    }
}

fn clickhouse_entry(server: &str, l: &ClickHouseLimits) -> ServerLimits {
    ServerLimits {
        server: server.into(),
        max_connections: l.max_connections,
        max_concurrent_queries: l.max_concurrent_queries,
        message: l.missing.clone(),
        ..Default::default()
    }
}

fn postgres_allowance(s: &ServerLimits, now: bool) -> Option<Allowance> {
    let max = s.max_connections?;
    let reserved = s.reserved_connections.unwrap_or(0);
    let source = if now {
        format!("live PostgreSQL max_connections {max} minus {reserved} reserved")
    } else {
        format!("PostgreSQL max_connections {max} minus {reserved} reserved, as read earlier")
    };
    Some(Allowance { connections: max.saturating_sub(reserved), source })
}

fn clickhouse_allowance(s: &ServerLimits, now: bool) -> Option<Allowance> {
    let limits = ClickHouseLimits {
        max_connections: s.max_connections,
        max_concurrent_queries: s.max_concurrent_queries,
        missing: None,
    };
    let binding = limits.binding()?;
    let when = if now { "" } else { ", as read earlier" };
    Some(Allowance {
        connections: binding.value,
        source: format!("ClickHouse {} {}{when}", binding.setting, binding.value),
    })
}

/// `PoolsReady`'s reason for a server that could not be read.
fn reason(e: &Unread) -> &'static str {
    match e {
        Unread::Secret { .. } => "CredentialsUnavailable",
        Unread::Postgres(PostgresError::WrongPassword { .. }) => "WrongPassword",
        Unread::Postgres(PostgresError::Ca { .. }) => "BadCaCertificate",
        Unread::Postgres(
            PostgresError::Refused { .. } | PostgresError::Query { .. } | PostgresError::Answer { .. },
        ) => "ServerRefused",
        Unread::Postgres(PostgresError::EndpointRefused { .. }) => "EndpointRefused",
        Unread::Postgres(PostgresError::TooLarge { .. }) => "AnswerTooLarge",
        Unread::ClickHouse(perf_clickhouse::Error::Unauthorized { .. }) => "WrongPassword",
        Unread::ClickHouse(perf_clickhouse::Error::Statement { .. }) => "ServerRefused",
        _ => "Unreachable",
    }
}

#[cfg(test)]
#[path = "pools_tests.rs"]
mod tests;
