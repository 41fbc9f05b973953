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
    /// How long a lease lasts after its last renewal; a standby takes it only once that much has passed.
    pub ttl: Duration,
    /// The leader stops acting when it has not renewed for this long. Shorter than `ttl` (client-go's rule, 10 s
    /// of a 15 s lease by default), so the old leader has stopped before a standby may take over.
    pub renew_deadline: Duration,
}

impl LeaseConfig {
    /// How often the leader renews (and a standby retries): a third of the renew deadline, so two renewals can
    /// fail before the deadline passes.
    pub fn retry_period(&self) -> Duration {
        self.renew_deadline / 3
    }

    /// The renew deadline a `ttl` gets when none is set: two thirds of it.
    pub fn default_renew_deadline(ttl: Duration) -> Duration {
        ttl * 2 / 3
    }
}

/// Blocks until this replica holds the lease; returns the lock to keep renewing. While another replica holds it
/// this one is a ready standby ([`Replica::standby`]); it turns ready only on the API server's answer, so a replica
/// that never reached the lease (network, RBAC) is not ready and a rollout stops on it.
///
/// Also returns when the successful request was sent: the lease's renewTime is no earlier, so the renew deadline
/// counted from it ends no later than the server's (a slow answer must not stretch it).
pub async fn acquire(
    client: Client,
    config: &LeaseConfig,
    replica: &Replica,
) -> Result<(LeaseLock, tokio::time::Instant)> {
    let lock = LeaseLock::new(
        client,
        &config.namespace,
        LeaseLockParams { holder_id: config.holder.clone(), lease_name: config.name.clone(), lease_ttl: config.ttl },
    );
    loop {
        let sent = tokio::time::Instant::now();
        match lock.try_acquire_or_renew().await {
            Ok(LeaseLockResult::Acquired(_)) => {
                tracing::info!(lease = %config.name, holder = %config.holder, "leadership acquired");
                replica.leading();
                return Ok((lock, sent));
            }
            Ok(LeaseLockResult::NotAcquired(_)) => {
                tracing::debug!("another replica leads; waiting");
                replica.standby();
            }
            Err(e) => tracing::warn!(error = %e, "lease not reachable; retrying"),
        }
        tokio::time::sleep(config.retry_period()).await;
    }
}

/// Renews the lease every retry period and returns when leadership is lost: the lease taken by another replica, or
/// no successful renewal within the renew deadline (each attempt is bounded by what is left of it, so a hung API
/// server cannot stretch it), counted from `renewed`, when the request of the last success was sent. The caller stops
/// reconciling at once.
pub async fn hold(lock: &LeaseLock, config: &LeaseConfig, mut renewed: tokio::time::Instant) -> Error {
    loop {
        tokio::time::sleep(config.retry_period()).await;
        let sent = tokio::time::Instant::now();
        let Some(left) = config.renew_deadline.checked_sub(sent.duration_since(renewed)).filter(|l| !l.is_zero())
        else {
            return Error::Leader(format!("lease not renewed within {:?}", config.renew_deadline));
        };
        match tokio::time::timeout(left, lock.try_acquire_or_renew()).await {
            // Counted from when the request left: the server's renewTime is no earlier than that.
            Ok(Ok(LeaseLockResult::Acquired(_))) => renewed = sent,
            Ok(Ok(LeaseLockResult::NotAcquired(_))) => return Error::Leader("lease taken by another replica".into()),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the lease; retrying within the renew deadline"),
            Err(_) => {
                return Error::Leader(format!("lease not renewed within {:?}", config.renew_deadline));
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
