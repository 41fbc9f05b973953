//! What the operator reads from a Redis: reachability and the cache statistics that cache policies take as input.

use perf_egress::{Bounded, Egress, Kind};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RedisError {
    #[error("redis {address}: {message}")]
    Unreachable { address: String, message: String },
    /// The server refused the password (or wants one): a wrong Secret, not a network problem.
    #[error("redis {address}: the password was refused ({message})")]
    Auth { address: String, message: String },
    #[error("redis {address}: no answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    /// The administrator's egress rule refuses the address: nothing was sent.
    #[error("redis {address}: {reason}")]
    Refused { address: String, reason: String },
    /// The server answered more than [`MAX_ANSWER_BYTES`]: cut off, the connection dropped.
    #[error("redis {address}: the answer was larger than {limit} bytes and was cut off")]
    TooLarge { address: String, limit: usize },
}

/// Bytes one answer may bring. `INFO everything` of a busy server is some tens of kilobytes; a server streaming
/// more (a hostile or broken one a tenant names) is cut off here.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Counters and gauges from `INFO` and `CONFIG GET`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisStats {
    pub hits: u64,
    pub misses: u64,
    pub evicted_keys: u64,
    pub expired_keys: u64,
    pub used_memory_bytes: u64,
    /// 0 when Redis has no memory limit.
    pub max_memory_bytes: u64,
    pub keys: u64,
    pub connected_clients: u64,
    /// 0 when unknown (`CONFIG` refused).
    pub max_clients: u64,
    /// `redis_version`.
    pub version: String,
    /// `maxmemory_policy`, e.g. `allkeys-lru`.
    pub eviction_policy: String,
    /// Why `CONFIG GET` was refused, as managed services and renamed commands do: what could not be verified.
    pub config_refused: Option<String>,
}

impl RedisStats {
    /// Hits over lookups, or None before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

/// Parses the `INFO` text (all sections). Unknown or malformed lines are ignored: the format grows over versions.
pub fn parse_info(text: &str) -> RedisStats {
    let mut s = RedisStats::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(':') else { continue };
        let number = || value.trim().parse::<u64>().unwrap_or(0);
        match key {
            "keyspace_hits" => s.hits = number(),
            "keyspace_misses" => s.misses = number(),
            "evicted_keys" => s.evicted_keys = number(),
            "expired_keys" => s.expired_keys = number(),
            "used_memory" => s.used_memory_bytes = number(),
            "maxmemory" => s.max_memory_bytes = number(),
            "connected_clients" => s.connected_clients = number(),
            "redis_version" => s.version = value.trim().to_string(),
            "maxmemory_policy" => s.eviction_policy = value.trim().to_string(),
            k if k.starts_with("db") => {
                // db0:keys=12,expires=3,avg_ttl=0
                let keys = value.split(',').find_map(|kv| kv.strip_prefix("keys=")).and_then(|n| n.parse::<u64>().ok());
                s.keys += keys.unwrap_or(0);
            }
            _ => {}
        }
    }
    s
}

/// Reads `INFO` and `maxclients` within `timeout`, on a connection kept for this address and password
/// ([`reused`]). The password never appears in errors.
pub async fn fetch(
    egress: &Egress,
    address: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<RedisStats, RedisError> {
    let read = within(address, timeout, reused(egress, address, password, |con| read_stats(address, con))).await;
    if let Err(RedisError::Timeout { .. }) = read {
        // A kept connection to a server that stopped answering would time out every round: the next one connects.
        kept().remove(&kept_key(address, password));
    }
    read
}

async fn read_stats(address: &str, mut con: MultiplexedConnection) -> Result<RedisStats, RedisError> {
    let text: String =
        redis::cmd("INFO").arg("everything").query_async(&mut con).await.map_err(unreachable(address))?;
    let max_clients: Result<Vec<String>, _> =
        redis::cmd("CONFIG").arg("GET").arg("maxclients").query_async(&mut con).await;
    let mut stats = parse_info(&text);
    match max_clients {
        Ok(v) => stats.max_clients = v.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        // The server answered, refusing the command: verify what INFO says, report the rest as unknown.
        Err(e) if is_refusal(&e) => {
            stats.config_refused = Some(e.to_string());
        }
        Err(e) => return Err(unreachable(address)(e)),
    }
    Ok(stats)
}

/// Connections kept between rounds, by address and a digest of the password: many profiles share one Redis, and
/// a round that opened a connection each time made a connection per profile per round. Idle ones are dropped.
struct Kept {
    connection: MultiplexedConnection,
    used: std::time::Instant,
}

type KeptKey = (String, Option<[u8; 32]>);

static KEPT: std::sync::LazyLock<Mutex<HashMap<KeptKey, Kept>>> = std::sync::LazyLock::new(Mutex::default);

/// At most this many kept connections (a tenant may name many servers); the least recently used goes first.
const KEPT_MAX: usize = 256;
/// A connection unused for this long is closed.
const KEPT_IDLE: Duration = Duration::from_secs(600);

fn kept() -> std::sync::MutexGuard<'static, HashMap<KeptKey, Kept>> {
    KEPT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `work` on the kept connection for `address` and `password`; when there is none, or it fails as a dead
/// connection would (the server restarted, the network dropped it), on a new one, which is kept if it works.
async fn reused<T, F, Fut>(egress: &Egress, address: &str, password: Option<&str>, work: F) -> Result<T, RedisError>
where
    F: Fn(MultiplexedConnection) -> Fut,
    Fut: std::future::Future<Output = Result<T, RedisError>>,
{
    let key = kept_key(address, password);
    let cached = kept().get(&key).map(|k| k.connection.clone());
    if let Some(connection) = cached {
        match work(connection).await {
            Err(RedisError::Unreachable { .. }) => {
                kept().remove(&key);
            }
            done => return done,
        }
    }
    let connection = connect(egress, address, password).await?;
    let done = work(connection.clone()).await;
    if done.is_ok() {
        keep(key, connection);
    }
    done
}

fn kept_key(address: &str, password: Option<&str>) -> KeptKey {
    use sha2::Digest;
    (address.to_string(), password.map(|p| sha2::Sha256::digest(p.as_bytes()).into()))
}

fn keep(key: KeptKey, connection: MultiplexedConnection) {
    let mut kept = kept();
    let now = std::time::Instant::now();
    kept.retain(|_, k| now.duration_since(k.used) < KEPT_IDLE);
    if kept.len() >= KEPT_MAX
        && let Some(oldest) = kept.iter().min_by_key(|(_, k)| k.used).map(|(key, _)| key.clone())
    {
        kept.remove(&oldest);
    }
    kept.insert(key, Kept { connection, used: now });
}

/// Holds `settings` live (`CONFIG GET`, then `CONFIG SET` only what differs), within `timeout`. Returns how many
/// were set: 0 when Redis already held them all. The password never appears in errors.
pub async fn configure(
    egress: &Egress,
    address: &str,
    password: Option<&str>,
    settings: &[(String, String)],
    timeout: Duration,
) -> Result<usize, RedisError> {
    within(address, timeout, async {
        let mut con = connect(egress, address, password).await?;
        let mut set = 0;
        for (key, value) in settings {
            let live: Vec<String> =
                redis::cmd("CONFIG").arg("GET").arg(key).query_async(&mut con).await.map_err(unreachable(address))?;
            if live.get(1) == Some(value) {
                continue;
            }
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(key)
                .arg(value)
                .query_async(&mut con)
                .await
                .map_err(unreachable(address))?;
            set += 1;
        }
        Ok(set)
    })
    .await
}

/// Makes the default user accept exactly `accepted` (plain passwords; compared and set as SHA-256 hashes) with
/// `ACL SETUSER ... resetpass`, and the exporter's user exist with `exporter`'s password (or not at all),
/// connecting with the first of `candidates` the server takes (during a rotation the server may still know only
/// the old one). Returns whether it changed anything: a second round sends nothing.
pub async fn hold_passwords(
    egress: &Egress,
    address: &str,
    candidates: &[&str],
    accepted: &[&str],
    exporter: Option<&str>,
    timeout: Duration,
) -> Result<bool, RedisError> {
    use crate::components::redis_auth::{EXPORTER_RULES, EXPORTER_USER, sha256};
    within(address, timeout, async {
        let mut con = connect_any(egress, address, candidates).await?;
        let mut changed = false;
        let wanted: Vec<String> = accepted.iter().map(|p| sha256(p)).collect();
        if !same(&wanted, &user_passwords(&mut con, address, "default").await?) {
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER").arg("default").arg("on").arg("resetpass");
            for hash in &wanted {
                cmd.arg(format!("#{hash}"));
            }
            let () = cmd.query_async(&mut con).await.map_err(unreachable(address))?;
            changed = true;
        }
        let live = user_passwords(&mut con, address, EXPORTER_USER).await?;
        match exporter {
            Some(password) if !same(&[sha256(password)], &live) || live.is_empty() => {
                let mut cmd = redis::cmd("ACL");
                cmd.arg("SETUSER").arg(EXPORTER_USER).arg("reset").arg("on").arg(format!("#{}", sha256(password)));
                for rule in EXPORTER_RULES.split_whitespace() {
                    cmd.arg(rule);
                }
                let () = cmd.query_async(&mut con).await.map_err(unreachable(address))?;
                changed = true;
            }
            None if !live.is_empty() => {
                let _: i64 = redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(EXPORTER_USER)
                    .query_async(&mut con)
                    .await
                    .map_err(unreachable(address))?;
                changed = true;
            }
            _ => {}
        }
        Ok(changed)
    })
    .await
}

/// Equal as sets.
fn same(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// The password hashes of `user`; empty when it does not exist.
async fn user_passwords(
    con: &mut redis::aio::MultiplexedConnection,
    address: &str,
    user: &str,
) -> Result<Vec<String>, RedisError> {
    let answer: redis::Value =
        redis::cmd("ACL").arg("GETUSER").arg(user).query_async(con).await.map_err(unreachable(address))?;
    Ok(acl_passwords(&answer))
}

/// A connection with the first password the server accepts; the last refusal when none is.
async fn connect_any(
    egress: &Egress,
    address: &str,
    candidates: &[&str],
) -> Result<redis::aio::MultiplexedConnection, RedisError> {
    let mut refused = None;
    for password in candidates {
        match connect(egress, address, Some(password)).await {
            Ok(con) => return Ok(con),
            Err(e @ RedisError::Auth { .. }) => refused = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(refused.unwrap_or_else(|| RedisError::Auth { address: address.into(), message: "no password to try".into() }))
}

/// The `passwords` entry of an `ACL GETUSER` answer (RESP2: a flat list of name, value; RESP3: a map).
fn acl_passwords(user: &redis::Value) -> Vec<String> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let list = |v: &redis::Value| match v {
        redis::Value::Array(items) | redis::Value::Set(items) => items.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    match user {
        redis::Value::Array(items) => items
            .chunks(2)
            .find(|pair| pair.first().and_then(text).as_deref() == Some("passwords"))
            .and_then(|pair| pair.get(1))
            .map(list)
            .unwrap_or_default(),
        redis::Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("passwords"))
            .map(|(_, v)| list(v))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn unreachable(address: &str) -> impl Fn(redis::RedisError) -> RedisError + '_ {
    move |e| {
        if let Some(limit) = perf_egress::too_large(&e) {
            return RedisError::TooLarge { address: address.to_string(), limit };
        }
        let message = e.to_string();
        // WRONGPASS, NOAUTH, "invalid password": the Secret is wrong, the server is fine.
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || ["WRONGPASS", "NOAUTH", "invalid password", "invalid username-password"]
                .iter()
                .any(|m| message.contains(m));
        if auth {
            RedisError::Auth { address: address.to_string(), message }
        } else {
            RedisError::Unreachable { address: address.to_string(), message }
        }
    }
}

/// A command the server refused by name or permission (renamed `CONFIG`, ACL without `+config`, a managed
/// service's own refusal): an answer, not an outage.
fn is_refusal(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm))
}

/// A connection authenticated with `password`, if any, to an address `egress` allows, whose answers are bounded
/// by [`MAX_ANSWER_BYTES`].
async fn connect(egress: &Egress, address: &str, password: Option<&str>) -> Result<MultiplexedConnection, RedisError> {
    let mut info = redis::IntoConnectionInfo::into_connection_info(address).map_err(unreachable(address))?;
    if let Some(p) = password {
        let with_password = info.redis_settings().clone().set_password(p);
        info = info.set_redis_settings(with_password);
    }
    let redis::ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
        let message = "expected a redis:// address (TCP without TLS)".to_string();
        return Err(RedisError::Unreachable { address: address.to_string(), message });
    };
    let stream = perf_egress::connect(egress, Kind::Redis, &host, port).await.map_err(|e| match e {
        perf_egress::ConnectError::Refused(r) => {
            RedisError::Refused { address: address.to_string(), reason: r.to_string() }
        }
        other => RedisError::Unreachable { address: address.to_string(), message: other.to_string() },
    })?;
    let stream = Bounded::new(stream, MAX_ANSWER_BYTES);
    // The client's own response timeout (0.5 s) as before; the caller bounds the whole exchange (`within`).
    let config = redis::AsyncConnectionConfig::new();
    let (connection, driver) = MultiplexedConnection::new_with_config(info.redis_settings(), stream, config)
        .await
        .map_err(unreachable(address))?;
    // The driver reads answers and ends when every handle is dropped or the connection fails.
    tokio::spawn(driver);
    Ok(connection)
}

/// `work` bounded by `timeout`.
async fn within<T>(
    address: &str,
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| RedisError::Timeout { address: address.to_string(), timeout })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_policies_need() {
        let text = "# Stats\r\nkeyspace_hits:90\r\nkeyspace_misses:10\r\nevicted_keys:7\r\n# Memory\r\nused_memory:1048576\r\n\
                    maxmemory:2097152\r\n# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\ndb1:keys=3,expires=0\r\nbogus\r\n";
        let s = parse_info(text);
        assert_eq!((s.hits, s.misses, s.evicted_keys, s.keys), (90, 10, 7, 15));
        assert_eq!((s.used_memory_bytes, s.max_memory_bytes), (1 << 20, 2 << 20));
        assert_eq!(s.hit_ratio(), Some(0.9));
        let s = parse_info("redis_version:7.0.15\r\nmaxmemory_policy:noeviction\r\n");
        assert_eq!((s.version.as_str(), s.eviction_policy.as_str()), ("7.0.15", "noeviction"));
    }
}
