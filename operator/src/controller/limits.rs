//! Observe's reads of the servers' connection limits that cap the pools: the PostgreSQL that
//! `pools.postgres.server` names (credentials and CA from Secrets in the profile's namespace) and the profile's
//! ClickHouse. Each is one connection and one query; failures are data for the pools' decision.

use super::Context;
use super::observe::{clickhouse_credentials, secret_key};
use crate::decide::{Read, Unread};
use crate::postgres::{self, PostgresLimits, Target};
use perf_clickhouse::limits::ServerLimits as ClickHouseLimits;
use perf_operator_api::PerformanceProfile;
use std::time::Duration;

/// The limits of the PostgreSQL of `pools.postgres.server`; `timeout` bounds the connection and the query.
pub async fn postgres_limits(profile: &PerformanceProfile, ctx: &Context, timeout: Duration) -> Read<PostgresLimits> {
    let server = profile.spec.pools.as_ref().and_then(|p| p.postgres.as_ref()).and_then(|p| p.server.as_ref());
    let Some(server) = server else { return Err(Unread::NotObserved("no pools.postgres.server")) };
    let credentials = &server.credentials_secret_ref;
    let user = secret_key(profile, ctx, &credentials.name, &credentials.user_key).await?;
    let password = secret_key(profile, ctx, &credentials.name, &credentials.password_key).await?;
    let ca = match &server.ca_secret_ref {
        Some(r) => Some(secret_key(profile, ctx, &r.name, &r.key).await?),
        None => None,
    };
    let target = Target::new(server, user, password, ca);
    Ok(postgres::read_limits(&target, timeout).await?)
}

/// The limits of the profile's ClickHouse.
pub async fn clickhouse_limits(profile: &PerformanceProfile, ctx: &Context) -> Read<ClickHouseLimits> {
    let Some(spec) = &profile.spec.clickhouse else { return Err(Unread::NotObserved("no clickhouse section")) };
    let credentials = clickhouse_credentials(profile, ctx, spec).await?;
    perf_clickhouse::limits::read(spec, credentials.as_ref()).await.map_err(Unread::ClickHouse)
}
