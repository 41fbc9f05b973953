//! Against Debian's real redis-server: the generated config is what Redis runs with, and stats are read right.
//! `tests/run.sh` starts a shared Redis (REDIS_URL) and puts redis-server on PATH.

mod fixtures;

use fixtures::{Profile, World};
use perf_operator::components::cache::{auth_conf, redis_conf, restart_checksum};
use perf_operator::components::redis_auth::{self, Credentials, acl_conf};
use perf_operator::redis_stats;
use perf_operator_api::{EvictionPolicy, PersistenceMode, RedisPersistence, RedisProvision};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .unwrap_or_else(|_| panic!("REDIS_URL not set: run the suite with tests/run.sh, which starts redis-server"))
}

/// A redis-server of our own on a free port, running the generated config and auth file (the password only in the
/// file, as in the pod: never on the command line); killed on drop.
struct OwnRedis(Child, u16);

impl OwnRedis {
    fn start(conf: &str, password: &str) -> Self {
        Self::start_auth(conf, &auth_conf(password))
    }

    /// With `auth` as the mounted `auth.conf` (e.g. the operator's ACL form).
    fn start_auth(conf: &str, auth: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // A fresh data directory: an earlier run on this port may have left files Redis would load.
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("perf-redis-{port}")));
        Self::start_on(conf, auth, port)
    }

    /// On `port`, in the data directory kept for that port (a restart finds what the last run wrote), with `auth`
    /// as `auth.conf`.
    fn start_on(conf: &str, auth_text: &str, port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("perf-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let auth = dir.join("auth.conf");
        std::fs::write(&auth, auth_text).unwrap();
        let path = dir.join("redis.conf");
        // The pod's paths, here: the auth file, and the claim's mount (Redis changes to `dir` as it reads it).
        let conf = conf
            .replace("/etc/redis-auth/auth.conf", auth.to_str().unwrap())
            .replace("dir /data\n", &format!("dir {}\n", dir.display()));
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into()))
            .arg(&path)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): install it (tests/run.sh does)"));
        Self(child, port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn fetch_with_retry(url: &str, password: Option<&str>) -> redis_stats::RedisStats {
    for _ in 0..50 {
        if let Ok(s) = redis_stats::fetch(&perf_egress::Egress::open(), url, password, Duration::from_secs(1)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis at {url} never answered")
}

#[tokio::test]
async fn redis_runs_with_the_generated_config() {
    let provision = RedisProvision {
        max_memory: "64Mi".into(),
        eviction_policy: EvictionPolicy::AllkeysLfu,
        max_clients: 321,
        ..Default::default()
    };
    let redis = OwnRedis::start(&redis_conf(&provision), "s3cret");
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let stats = fetch_with_retry(&url, Some("s3cret")).await;
    assert_eq!(stats.max_memory_bytes, 64 << 20);
    assert_eq!(stats.max_clients, 321);
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}", redis.1)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let policy: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async(&mut con).await.unwrap();
    assert_eq!(policy[1], "allkeys-lfu");
    let denied = redis_stats::fetch(&perf_egress::Egress::open(), &url, None, Duration::from_secs(2)).await;
    assert!(denied.is_err(), "the password is required");
}

/// Writes keys, kills Redis as a node loss or an OOM kill would (SIGKILL, no shutdown save), starts it again on the
/// same data directory, and says how many keys came back.
async fn keys_after_a_kill(provision: &RedisProvision) -> usize {
    let conf = redis_conf(provision);
    let first = OwnRedis::start(&conf, "s3cret");
    let port = first.1;
    fetch_with_retry(&format!("redis://127.0.0.1:{port}"), Some("s3cret")).await;
    let url = format!("redis://:s3cret@127.0.0.1:{port}");
    let mut con = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg(format!("risk:{i}")).arg("model").query_async(&mut con).await.unwrap();
    }
    // RDB snapshots on a schedule; a test of the RDB mode asks for one, as the schedule would.
    if provision.persistence.as_ref().is_some_and(|p| p.mode == PersistenceMode::Rdb) {
        let _: () = redis::cmd("SAVE").query_async(&mut con).await.unwrap();
    }
    drop(con);
    drop(first);
    let _again = OwnRedis::start_on(&conf, &auth_conf("s3cret"), port);
    fetch_with_retry(&format!("redis://127.0.0.1:{port}"), Some("s3cret")).await;
    let mut con = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DBSIZE").query_async(&mut con).await.unwrap()
}

#[tokio::test]
async fn a_persistent_redis_keeps_its_keys_across_a_kill_and_a_cache_only_one_does_not() {
    let persistent = |mode| RedisProvision {
        persistence: Some(RedisPersistence { mode, ..RedisPersistence::default() }),
        ..RedisProvision::default()
    };
    // AOF: every acknowledged write is in the file before the reply (fsync every second only bounds a power loss).
    assert_eq!(keys_after_a_kill(&persistent(PersistenceMode::Aof)).await, 100);
    assert_eq!(keys_after_a_kill(&persistent(PersistenceMode::Both)).await, 100);
    assert_eq!(keys_after_a_kill(&persistent(PersistenceMode::Rdb)).await, 100);
    assert_eq!(keys_after_a_kill(&RedisProvision::default()).await, 0, "without persistence a restart starts empty");
}

#[tokio::test]
async fn hits_misses_and_keys_are_read_from_a_live_redis() {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let before = fetch_with_retry(&url, None).await;
    let _: () = redis::cmd("SET").arg("perf-test:stats").arg("v").query_async(&mut con).await.unwrap();
    let _: Option<String> = redis::cmd("GET").arg("perf-test:stats").query_async(&mut con).await.unwrap();
    let _: Option<String> = redis::cmd("GET").arg("perf-test:missing").query_async(&mut con).await.unwrap();
    let after = fetch_with_retry(&url, None).await;
    assert!(after.hits > before.hits, "{before:?} -> {after:?}");
    assert!(after.misses > before.misses, "{before:?} -> {after:?}");
    assert!(after.keys >= 1);
}

#[tokio::test]
async fn an_external_redis_is_ready_when_it_answers_and_degraded_when_it_does_not() {
    let mut profile = Profile::test();
    profile.spec.cache = Some(
        serde_json::from_value(json!({"redis": {"external": {"address": redis_url()}}, "ttlClasses": []})).unwrap(),
    );
    // No maxClients declared: the Redis pools are capped by what the server reports, shared by the 4 pods.
    profile.spec.pools = Some(
        serde_json::from_value(json!({"appReplicas": 4, "redis": {"min": 1, "max": 10000, "reservedPercent": 10}}))
            .unwrap(),
    );
    let world = World::with(profile.clone(), None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "CacheReady").1, "ExternalReachable");
    assert_eq!(World::condition(&p, "Ready").0, "True");
    let reported = fetch_with_retry(&redis_url(), None).await.max_clients;
    let redis_pool = &p.status.as_ref().unwrap().pools.as_ref().unwrap().sizes["redis"];
    assert_eq!((redis_pool.max as u64, redis_pool.reason.as_str()), (reported * 90 / 100 / 4, "ServerCap"));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    profile.spec.cache = Some(
        serde_json::from_value(json!({"redis": {"external": {"address": format!("redis://127.0.0.1:{port}")}}}))
            .unwrap(),
    );
    profile.spec.pools = Some(serde_json::from_value(json!({"postgres": {"min": 5, "max": 20}})).unwrap());
    let world = World::with(profile, None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "CacheReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"));
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert_eq!(World::condition(&p, "PoolsReady").0, "True", "one component failing does not stop the others");
    assert_eq!(World::condition(&p, "Degraded").0, "True");
}

#[tokio::test]
async fn memory_advice_is_held_live_without_a_restart_and_a_second_round_sets_nothing() {
    let provision =
        RedisProvision { max_memory: "64Mi".into(), eviction_policy: EvictionPolicy::AllkeysLru, ..Default::default() };
    let redis = OwnRedis::start(&redis_conf(&provision), "s3cret");
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let before = fetch_with_retry(&url, Some("s3cret")).await;
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}", redis.1)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET").arg("perf-test:kept").arg("v").query_async(&mut con).await.unwrap();
    let process = run_id(redis.1, "s3cret").await;

    // The policy advises 200 MiB (above the spec's 64 Mi) and LFU: applied within the profile's bounds.
    let advice = perf_policy_host::MemoryAdvice {
        max_memory_bytes: Some(200 << 20),
        eviction_policy: Some("allkeys-lfu".into()),
    };
    let live = perf_operator::decide::memory::live_settings(&provision, Some(&advice));
    let set = configure(&url, Some("s3cret"), &live.settings).await.unwrap();
    assert_eq!(set, 1, "maxmemory already at the bound; only the policy changes: {}", live.summary);
    let after = fetch_with_retry(&url, Some("s3cret")).await;
    assert_eq!((before.max_memory_bytes, after.max_memory_bytes), (64 << 20, 64 << 20));
    let policy: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async(&mut con).await.unwrap();
    assert_eq!(policy[1], "allkeys-lfu");
    let kept: Option<String> = redis::cmd("GET").arg("perf-test:kept").query_async(&mut con).await.unwrap();
    assert_eq!((kept.as_deref(), run_id(redis.1, "s3cret").await), (Some("v"), process), "same process, keys kept");

    let again = configure(&url, Some("s3cret"), &live.settings).await.unwrap();
    assert_eq!(again, 0, "a second round sets nothing");
    let denied = configure(&url, Some("wrong"), &live.settings).await;
    let message = denied.expect_err("a wrong password is refused").to_string();
    assert!(!message.contains("wrong"), "the password never appears in errors: {message}");
}

#[tokio::test]
async fn a_spec_change_is_applied_live_without_a_restart() {
    let old = RedisProvision {
        max_memory: "64Mi".into(),
        eviction_policy: EvictionPolicy::AllkeysLru,
        max_clients: 321,
        ..Default::default()
    };
    let new = RedisProvision {
        max_memory: "32Mi".into(),
        eviction_policy: EvictionPolicy::VolatileLru,
        max_clients: 200,
        ..old.clone()
    };
    // The pod template does not change, so Kubernetes does not restart Redis; a new password would.
    let pw = "p\"w\\ with spaces";
    assert_eq!(restart_checksum(&redis_conf(&old)), restart_checksum(&redis_conf(&new)));

    let redis = OwnRedis::start(&redis_conf(&old), pw);
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let before = fetch_with_retry(&url, Some(pw)).await;
    assert_eq!((before.max_memory_bytes, before.max_clients), (64 << 20, 321));
    let info = redis::Client::open(url.as_str()).unwrap();
    let mut con = info.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("AUTH").arg(pw).query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("SET").arg("perf-test:kept").arg("v").query_async(&mut con).await.unwrap();

    let live = perf_operator::decide::memory::live_settings(&new, None);
    let set = configure(&url, Some(pw), &live.settings).await.unwrap();
    assert_eq!(set, 3, "maxmemory, the policy and maxclients: {}", live.summary);
    let after = fetch_with_retry(&url, Some(pw)).await;
    assert_eq!((after.max_memory_bytes, after.max_clients), (32 << 20, 200));
    let kept: Option<String> = redis::cmd("GET").arg("perf-test:kept").query_async(&mut con).await.unwrap();
    assert_eq!(kept.as_deref(), Some("v"), "same process, cache kept");
    let again = configure(&url, Some(pw), &live.settings).await.unwrap();
    assert_eq!(again, 0, "a second round sets nothing");
}

/// A managed Redis that refuses CONFIG stays Ready with the limitation said; a wrong password is named as such;
/// the server's own figures reach status.
#[tokio::test]
async fn a_managed_redis_refusing_config_stays_ready_and_a_wrong_password_is_named() {
    let provision = RedisProvision { max_memory: "16Mi".into(), ..Default::default() };
    let conf = format!("{}rename-command CONFIG \"\"\n", redis_conf(&provision));
    let redis = OwnRedis::start(&conf, "managed-pw");
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let stats = fetch_with_retry(&url, Some("managed-pw")).await;
    assert!(stats.config_refused.is_some(), "{stats:?}");

    let external = |password_key: &str| {
        let mut profile = Profile::test();
        let cache = json!({"redis": {"external": {"address": url, "passwordSecretRef": {"name": "managed", "key": password_key}}},
                           "ttlClasses": []});
        profile.spec.cache = Some(serde_json::from_value(cache).unwrap());
        profile
    };
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "managed", "namespace": fixtures::NS},
        "stringData": {}, "data": {"right": "bWFuYWdlZC1wdw==", "wrong": "bm9wZQ=="}
    }))
    .unwrap();
    for (key, ready, reason) in [("right", "True", "ExternalReachable"), ("wrong", "False", "WrongPassword")] {
        let world = World::with(external(key), None).await;
        world.api::<k8s_openapi::api::core::v1::Secret>().create(&Default::default(), &secret).await.unwrap();
        world.reconcile().await.unwrap();
        let p = world.profile().await;
        let (status, got, message) = World::condition(&p, "CacheReady");
        assert_eq!((status.as_str(), got.as_str()), (ready, reason), "{key}: {message}");
        assert!(!message.contains("managed-pw") && !message.contains("nope"), "{message}");
        let server = p.status.unwrap().cache.unwrap().server;
        if key == "right" {
            let server = server.unwrap();
            assert!(server.limitations[0].contains("CONFIG GET refused"), "{server:?}");
            assert_eq!((server.max_clients, server.max_memory_bytes), (None, 16 << 20));
            assert!(!server.version.is_empty());
        } else {
            assert_eq!(server, None);
        }
    }
}

/// Connects with `password` and reads `key`; the error when the password is refused.
async fn get_with(port: u16, password: &str, key: &str) -> Result<Option<String>, String> {
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    let mut con =
        redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    redis::cmd("GET").arg(key).query_async(&mut con).await.map_err(|e| e.to_string())
}

/// The server's `run_id`: the same value means the same process (no restart).
async fn run_id(port: u16, password: &str) -> String {
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    let mut con = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await.unwrap();
    info.lines().find_map(|l| l.strip_prefix("run_id:")).unwrap_or_default().trim().to_string()
}

#[tokio::test]
async fn a_password_rotation_keeps_the_cache_with_both_passwords_in_the_grace_then_retires_the_old_one() {
    let grace = Duration::from_secs(600);
    let t0: jiff::Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
    // The exporter's password as observe draws it for a new Redis: its own, not derived from the app's.
    let old = Credentials { current: "old-pw".into(), exporter: "exp-drawn".into(), ..Credentials::default() };
    let conf = redis_conf(&RedisProvision::default());
    let redis = OwnRedis::start_auth(&conf, &acl_conf(&old, false));
    let (port, url) = (redis.1, format!("redis://127.0.0.1:{}", redis.1));
    fetch_with_retry(&url, Some("old-pw")).await;
    let mut con = redis::Client::open(format!("redis://:old-pw@127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET").arg("risk:model").arg("cached").query_async(&mut con).await.unwrap();
    let process = run_id(port, "old-pw").await;

    // Rotation: the new password becomes current and the old one keeps working, live, in the same process.
    let rotated = redis_auth::decide(&old, Some("2026-11-30"), Some("new-pw"), grace, t0);
    let candidates = ["new-pw", "old-pw"];
    let hold = async |accepted: Vec<&str>| {
        redis_stats::hold_passwords(
            &perf_egress::Egress::open(),
            &url,
            &candidates,
            &accepted,
            Some("exp-pw"),
            Duration::from_secs(3),
        )
        .await
    };
    assert!(hold(rotated.accepted()).await.unwrap(), "the server knew only the old password");
    assert!(!hold(rotated.accepted()).await.unwrap(), "a second round sends nothing");
    for password in ["new-pw", "old-pw"] {
        assert_eq!(get_with(port, password, "risk:model").await, Ok(Some("cached".into())), "{password}");
    }
    assert_eq!(run_id(port, "new-pw").await, process, "no restart");
    exporter_reads_only(port, "exp-pw").await;

    // The grace over: the old password is refused, the cache is still there.
    let retired =
        redis_auth::decide(&rotated, Some("2026-11-30"), None, grace, t0 + jiff::SignedDuration::from_secs(601));
    assert_eq!(retired.accepted(), ["new-pw"]);
    assert!(hold(retired.accepted()).await.unwrap(), "the old password retired");
    let refused = get_with(port, "old-pw", "risk:model").await.unwrap_err();
    assert!(refused.contains("WRONGPASS") || refused.to_lowercase().contains("auth"), "{refused}");
    assert_eq!(get_with(port, "new-pw", "risk:model").await, Ok(Some("cached".into())));
    assert_eq!(run_id(port, "new-pw").await, process, "no restart");

    // A restart reads the auth.conf written from the same credentials: the new password only.
    drop(con);
    drop(redis);
    let _again = OwnRedis::start_on(&conf, &acl_conf(&retired, true), port);
    fetch_with_retry(&url, Some("new-pw")).await;
    assert!(get_with(port, "old-pw", "x").await.is_err());
    // The exporter's user from the file Redis read, with the password drawn for it.
    exporter_reads_only(port, &retired.exporter).await;
    // A wrong password among the candidates alone is named as such, never shown.
    let wrong = redis_stats::hold_passwords(
        &perf_egress::Egress::open(),
        &url,
        &["nope"],
        &["new-pw"],
        None,
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(matches!(wrong, redis_stats::RedisError::Auth { .. }) && !wrong.to_string().contains("nope"), "{wrong}");
}

/// The exporter's user (`exporter`, `password`) reads what an exporter reads and nothing else.
async fn exporter_reads_only(port: u16, password: &str) {
    let url = format!("redis://exporter:{password}@127.0.0.1:{port}");
    let mut con = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").query_async(&mut con).await.unwrap();
    assert!(info.contains("redis_version"), "{info}");
    let maxmemory: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory").query_async(&mut con).await.unwrap();
    assert_eq!(maxmemory.len(), 2);
    let _: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    let _: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut con).await.unwrap();
    for denied in
        [vec!["GET", "risk:model"], vec!["SET", "x", "1"], vec!["FLUSHALL"], vec!["CONFIG", "SET", "maxmemory", "1"]]
    {
        let mut cmd = redis::cmd(denied[0]);
        for arg in &denied[1..] {
            cmd.arg(*arg);
        }
        let refused: Result<redis::Value, _> = cmd.query_async(&mut con).await;
        let message = refused.expect_err(&format!("{denied:?} allowed")).to_string();
        assert!(message.to_lowercase().contains("noperm"), "{denied:?}: {message}");
    }
}

/// `total_connections_received` of the Redis on `port`.
async fn connections_received(port: u16) -> u64 {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut con).await.unwrap();
    info.lines().find_map(|l| l.strip_prefix("total_connections_received:")?.trim().parse().ok()).unwrap()
}

#[tokio::test]
async fn rounds_reuse_one_connection_and_reconnect_after_the_server_drops_it() {
    // A Redis of this test's own, so that no other test's connections are counted.
    let own = OwnRedis::start_auth("port 0\nsave \"\"\nappendonly no\n", "");
    let url = format!("redis://127.0.0.1:{}", own.1);
    fetch_with_retry(&url, None).await;
    let before = connections_received(own.1).await;
    for _ in 0..10 {
        redis_stats::fetch(&perf_egress::Egress::open(), &url, None, Duration::from_secs(2)).await.expect("read");
    }
    // The counting connection itself is the only new one: ten rounds opened none.
    assert_eq!(connections_received(own.1).await - before, 1, "rounds opened connections of their own");

    // The server drops every client (a restart or a network cut looks the same to the client): the next round
    // still reads, on a new connection, which is kept in turn.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::RedisResult<u64> = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = redis_stats::fetch(&perf_egress::Egress::open(), &url, None, Duration::from_secs(2)).await;
    assert!(stats.is_ok(), "after the server dropped the kept connection: {stats:?}");
    let reconnected = connections_received(own.1).await;
    redis_stats::fetch(&perf_egress::Egress::open(), &url, None, Duration::from_secs(2)).await.expect("read");
    assert_eq!(connections_received(own.1).await - reconnected, 1, "the new connection is kept");
    // A different password is a different connection (tenants never share an authenticated one).
    let refused =
        redis_stats::fetch(&perf_egress::Egress::open(), &url, Some("not-this-one"), Duration::from_secs(2)).await;
    assert!(refused.is_err(), "a password Redis does not ask for: {refused:?}");
}

/// `redis_stats::configure` as the tests call it: no egress rule, 3 s.
async fn configure(
    url: &str,
    password: Option<&str>,
    settings: &[(String, String)],
) -> Result<usize, redis_stats::RedisError> {
    redis_stats::configure(&perf_egress::Egress::open(), url, password, settings, Duration::from_secs(3)).await
}
