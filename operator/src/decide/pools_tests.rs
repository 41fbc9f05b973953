//! The pools' decision on observations: which limit caps each pool, what status and `PoolsReady` say.

use super::*;
use crate::decide::SecretProblem;
use crate::redis_stats::RedisStats;
use serde_json::json;

/// A profile with `spec` (`targetRef` added) and, optionally, the status of an earlier round.
fn profile(spec: serde_json::Value, status: Option<serde_json::Value>) -> PerformanceProfile {
    let mut spec = spec;
    spec["targetRef"] = json!({"name": "risk-api"});
    let mut p = PerformanceProfile::new("risk-api", serde_json::from_value(spec).unwrap());
    p.status = status.map(|s| serde_json::from_value(s).unwrap());
    p
}

fn with_postgres(extra: serde_json::Value) -> PerformanceProfile {
    let mut pool = json!({"min": 2, "max": 40, "server": {"host": "db", "credentialsSecretRef": {"name": "pg"}}});
    for (k, v) in extra.as_object().unwrap() {
        pool[k] = v.clone();
    }
    profile(json!({"pools": {"appReplicas": 2, "postgres": pool}}), None)
}

fn limits(max_connections: u64) -> PostgresLimits {
    PostgresLimits {
        max_connections,
        superuser_reserved_connections: 3,
        reserved_connections: Some(2),
        connections_in_use: 4,
    }
}

fn run(p: &PerformanceProfile, observed: &Observed) -> (PoolsPlan, Report) {
    let mut status = PerformanceProfileStatus::default();
    let (plan, report) = decide(p, observed, &mut status);
    let plan = plan.unwrap();
    assert_eq!(status.pools.as_ref().map(|s| &s.sizes), Some(&plan.sizes), "status says what is published");
    (plan, report)
}

fn unreachable() -> Read<PostgresLimits> {
    Err(Unread::Timeout { what: "PostgreSQL limits", after: std::time::Duration::from_secs(5) })
}

#[test]
fn live_limits_less_every_reserved_connection_cap_the_pool() {
    // 16+: 100 - 3 superuser - 2 reserved = 95, less 10 % = 85, over 2 pods = 42, above max 40: the load's bounds.
    let observed = Observed { postgres_limits: Some(Ok(limits(100))), ..Observed::default() };
    let (plan, report) = run(&with_postgres(json!({})), &observed);
    assert_eq!((plan.sizes["postgres"].max, plan.sizes["postgres"].reason.as_str()), (40, "Fixed"));
    let server = &plan.servers["postgres"];
    assert_eq!(
        (server.server.as_str(), server.max_connections, server.reserved_connections),
        ("db:5432/postgres", Some(100), Some(5))
    );
    assert_eq!((report.ok, report.reason.as_str()), (true, "Published"));
    let observed = Observed { postgres_limits: Some(Ok(limits(37))), ..Observed::default() };
    let (plan, _) = run(&with_postgres(json!({})), &observed);
    // 37 - 5 = 32, less 10 % = 28, over 2 pods = 14.
    assert_eq!(plan.sizes["postgres"].max, 14);
}

#[test]
fn ready_with_a_warning_when_the_declared_limit_is_above_the_live_one() {
    let observed = Observed { postgres_limits: Some(Ok(limits(37))), ..Observed::default() };
    let (plan, report) = run(&with_postgres(json!({"serverMaxConnections": 60})), &observed);
    assert_eq!(plan.sizes["postgres"].max, 27, "60 less 10 % over 2 pods: the declared limit is used");
    assert_eq!((report.ok, report.warning, report.reason.as_str()), (true, true, "DeclaredAboveLive"));
    assert!(report.message.contains("60") && report.message.contains("reserved: 32"), "{}", report.message);
}

#[test]
fn a_failed_read_names_its_reason_and_sizes_from_the_last_read_of_the_same_server_only() {
    let earlier = json!({"pools": {"appReplicas": 2, "sizes": {}, "servers": {"postgres": {
        "server": "db:5432/postgres", "maxConnections": 37, "reservedConnections": 3, "connectionsInUse": 9}}}});
    let mut p = with_postgres(json!({}));
    p.status = Some(serde_json::from_value(earlier).unwrap());
    let observed = Observed { postgres_limits: Some(unreachable()), ..Observed::default() };
    let (plan, report) = run(&p, &observed);
    assert_eq!((plan.sizes["postgres"].max, plan.sizes["postgres"].reason.as_str()), (15, "ServerCap"));
    let server = &plan.servers["postgres"];
    assert_eq!(
        (server.max_connections, server.error.as_deref()),
        (Some(37), Some("PostgreSQL limits: no answer within 5s"))
    );
    assert_eq!((report.ok, report.reason.as_str()), (false, "Unreachable"));
    assert!(report.message.contains("as read earlier"), "{}", report.message);
    // Another server now: what the old one allowed says nothing about it.
    let mut moved = with_postgres(json!({}));
    moved.status = p.status.clone();
    moved.spec.pools.as_mut().unwrap().postgres.as_mut().unwrap().server.as_mut().unwrap().host = "db2".into();
    let (plan, _) = run(&moved, &observed);
    assert_eq!((plan.sizes["postgres"].max, plan.sizes["postgres"].reason.as_str()), (2, "Unverified"));
    let secret = Err(Unread::Secret { namespace: "risk".into(), name: "pg".into(), problem: SecretProblem::NotFound });
    let (_, report) =
        run(&with_postgres(json!({})), &Observed { postgres_limits: Some(secret), ..Observed::default() });
    assert_eq!(report.reason, "CredentialsUnavailable");
}

#[test]
fn the_clickhouse_pool_takes_the_binding_limit_and_says_what_the_server_did_not() {
    let p = profile(
        json!({"clickhouse": {"endpoint": "http://ch:8123"}, "pools": {"appReplicas": 4, "clickhouse": {"min": 1, "max": 500}}}),
        None,
    );
    let read = |max_connections, max_concurrent_queries, missing: Option<&str>| Observed {
        clickhouse_limits: Some(Ok(ClickHouseLimits {
            max_connections,
            max_concurrent_queries,
            missing: missing.map(Into::into),
        })),
        ..Observed::default()
    };
    // max_concurrent_queries 100 binds before max_connections 4096: 90 over 4 pods = 22.
    let (plan, _) = run(&p, &read(Some(4096), Some(100), None));
    let size = &plan.sizes["clickhouse"];
    assert_eq!(
        (size.max, size.limit.as_deref().unwrap_or_default().starts_with("ClickHouse max_concurrent_queries 100")),
        (22, true)
    );
    // An old server without system.server_settings: the bounds, and the reason in the message.
    let (plan, report) = run(&p, &read(None, None, Some("limits unknown: system.server_settings does not exist")));
    assert_eq!((plan.sizes["clickhouse"].max, plan.sizes["clickhouse"].limit.as_deref()), (500, None));
    assert_eq!((report.ok, report.reason.as_str()), (true, "Published"));
    assert!(report.message.contains("clickhouse: limits unknown"), "{}", report.message);
}

#[test]
fn redis_pools_are_capped_by_the_configured_declared_or_reported_maxclients() {
    let redis = |cache: serde_json::Value, replicas: u32| {
        profile(json!({"cache": cache, "pools": {"appReplicas": replicas, "redis": {"min": 1, "max": 500}}}), None)
    };
    let reported = |max_clients| Observed {
        redis: Some(Ok(RedisStats { max_clients, ..RedisStats::default() })),
        ..Observed::default()
    };
    // Configured 1000, 10 % reserved, 30 pods: 30 each.
    let (plan, _) = run(&redis(json!({"redis": {"provision": {"maxClients": 1000}}}), 30), &Observed::default());
    assert_eq!((plan.sizes["redis"].max, plan.sizes["redis"].reason.as_str()), (30, "ServerCap"));
    let external = |m: Option<u32>| json!({"redis": {"external": {"address": "redis://c:6379", "maxClients": m}}});
    // Reported 2000 over 10 pods: 180; a declared 100 wins over it: 9; neither: the bounds.
    assert_eq!(run(&redis(external(None), 10), &reported(2000)).0.sizes["redis"].max, 180);
    assert_eq!(run(&redis(external(Some(100)), 10), &reported(2000)).0.sizes["redis"].max, 9);
    assert_eq!(run(&redis(external(None), 10), &Observed::default()).0.sizes["redis"].max, 500);
}
