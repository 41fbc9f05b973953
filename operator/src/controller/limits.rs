//! Observe's reads of the servers' connection limits that cap the pools: the PostgreSQL that
//! `pools.postgres.server` names (credentials and CA from Secrets in the profile's namespace) and the profile's
//! ClickHouse. Each is one connection and one query; failures are data for the pools' decision.

use super::observe::clickhouse_credentials;
use super::round::Round;
use crate::decide::{Read, Unread};
use crate::postgres::{self, PostgresLimits, Target};
use perf_clickhouse::limits::ServerLimits as ClickHouseLimits;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a PostgreSQL server's limits are used before they are read again. `max_connections` changes only with
/// a restart; the connections other roles hold move, and a pool decision a few seconds behind them is as good.
pub const POSTGRES_TTL: Duration = Duration::from_secs(30);

/// The limits of each PostgreSQL server (per credentials), shared by the profiles that name it: read at most once
/// per [`POSTGRES_TTL`], and by one round at a time (the others wait for its answer instead of each connecting with
/// TLS and SCRAM). A failure is not kept: the next round tries again.
#[derive(Default)]
pub struct PostgresCache {
    entries: Mutex<HashMap<[u8; 32], Arc<Slot>>>,
}

/// One server's last answer and when it came; its lock is the single flight.
type Slot = tokio::sync::Mutex<Option<(Instant, PostgresLimits)>>;

impl PostgresCache {
    pub async fn read(
        &self,
        egress: &perf_egress::Egress,
        target: &Target,
        timeout: Duration,
    ) -> Result<PostgresLimits, crate::postgres::PostgresError> {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let key = key(target);
            if !entries.contains_key(&key) {
                // Servers no profile reads any more go when a new one comes.
                entries.retain(|_, slot| slot.try_lock().map_or(true, |held| fresh(held.as_ref()).is_some()));
            }
            entries.entry(key).or_default().clone()
        };
        let mut held = slot.lock().await;
        if let Some(limits) = fresh(held.as_ref()) {
            return Ok(limits.clone());
        }
        let limits = postgres::read_limits(egress, target, timeout).await?;
        *held = Some((Instant::now(), limits.clone()));
        Ok(limits)
    }
}

fn fresh(held: Option<&(Instant, PostgresLimits)>) -> Option<&PostgresLimits> {
    held.filter(|(at, _)| at.elapsed() < POSTGRES_TTL).map(|(_, limits)| limits)
}

/// Server, database, user, password and CA, hashed: the password is never kept in the clear as a key.
fn key(target: &Target) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [&target.server, &target.host, &target.database, &target.user, &target.password] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(target.port.to_be_bytes());
    hash.update(format!("{:?}", target.ssl_mode).as_bytes());
    hash.update(target.ca_pem.as_deref().unwrap_or_default().as_bytes());
    hash.finalize().into()
}

/// The limits of the PostgreSQL of `pools.postgres.server`; `timeout` bounds the connection and the query.
pub async fn postgres_limits(round: &Round<'_>, timeout: Duration) -> Read<PostgresLimits> {
    let server = round.profile.spec.pools.as_ref().and_then(|p| p.postgres.as_ref()).and_then(|p| p.server.as_ref());
    let Some(server) = server else { return Err(Unread::NotObserved("no pools.postgres.server")) };
    let credentials = &server.credentials_secret_ref;
    let user = round.secret_key(&credentials.name, &credentials.user_key).await?;
    let password = round.secret_key(&credentials.name, &credentials.password_key).await?;
    let ca = match &server.ca_secret_ref {
        Some(r) => Some(round.secret_key(&r.name, &r.key).await?),
        None => None,
    };
    let target = Target::new(server, user, password, ca);
    Ok(round.ctx.postgres_limits.read(&round.ctx.scope.egress, &target, timeout).await?)
}

/// The limits of the profile's ClickHouse.
pub async fn clickhouse_limits(round: &Round<'_>) -> Read<ClickHouseLimits> {
    let Some(spec) = &round.profile.spec.clickhouse else { return Err(Unread::NotObserved("no clickhouse section")) };
    let credentials = clickhouse_credentials(round, spec).await?;
    perf_clickhouse::limits::read(&round.ctx.clickhouse, spec, credentials.as_ref()).await.map_err(Unread::ClickHouse)
}
