//! Leader election on a Lease, so two replicas never reconcile at once.

use crate::telemetry::Replica;
use crate::{Error, Result};
use kube::Client;
use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use std::time::Duration;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub holder: String,
    pub ttl: Duration,
}

/// Blocks until this replica holds the lease; returns the lock to keep renewing. While another replica holds it
/// this one is a ready standby ([`Replica::standby`]); it turns ready only on the API server's answer, so a replica
/// that never reached the lease (network, RBAC) is not ready and a rollout stops on it.
pub async fn acquire(client: Client, config: &LeaseConfig, replica: &Replica) -> Result<LeaseLock> {
    let lock = LeaseLock::new(
        client,
        &config.namespace,
        LeaseLockParams { holder_id: config.holder.clone(), lease_name: config.name.clone(), lease_ttl: config.ttl },
    );
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(LeaseLockResult::Acquired(_)) => {
                tracing::info!(lease = %config.name, holder = %config.holder, "leadership acquired");
                replica.leading();
                return Ok(lock);
            }
            Ok(LeaseLockResult::NotAcquired(_)) => {
                tracing::debug!("another replica leads; waiting");
                replica.standby();
            }
            Err(e) => tracing::warn!(error = %e, "lease not reachable; retrying"),
        }
        tokio::time::sleep(config.ttl / 3).await;
    }
}

/// Renews the lease every ttl/3 and returns when leadership is lost (the caller then stops reconciling).
pub async fn hold(lock: &LeaseLock, ttl: Duration) -> Error {
    let mut failures_since = None::<tokio::time::Instant>;
    loop {
        tokio::time::sleep(ttl / 3).await;
        match lock.try_acquire_or_renew().await {
            Ok(LeaseLockResult::Acquired(_)) => failures_since = None,
            Ok(LeaseLockResult::NotAcquired(_)) => return Error::Leader("lease taken by another replica".into()),
            Err(e) => {
                // A brief API outage is tolerated until the lease could have expired.
                let since = *failures_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= ttl {
                    return Error::Leader(format!("could not renew the lease: {e}"));
                }
            }
        }
    }
}

/// Gives the lease up on a clean shutdown so another replica takes over at once.
pub async fn release(lock: &LeaseLock) {
    if let Err(e) = lock.step_down().await {
        tracing::warn!(error = %e, "could not release the lease");
    }
}
