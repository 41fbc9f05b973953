//! Does the cache pay? A skewed (Zipf) key workload with a fixed memory budget, replayed through a real
//! `redis-server` (REDIS_SERVER_BIN, else `redis-server` on PATH), three ways side by side in one run:
//! (a) no cache, (b) the spec's static TTL classes, (c) the built-in `adaptive-ttl` policy driving the TTLs through
//! the operator's own loop during the run (INFO -> interval stats -> policy -> published TTLs and memory advice held
//! within the profile's bounds), with its default settings and with `minFactor: 1` (never below the spec's TTL).
//! Prints backend calls saved, hit ratio, evictions and memory for each, at a budget the static TTLs fit in and at
//! one under eviction pressure.
//!
//! Time is compressed: one second of the workload's clock is one millisecond of Redis's (TTLs are set with `PX`),
//! and the policy runs every 500 ms, i.e. every ~8 minutes of workload time. Run: `cargo bench -p perf-operator
//! --bench cache_pays`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perf_operator::decide::{inputs, memory};
use perf_operator::redis_stats::{self, RedisStats};
use perf_operator_api::{EvictionPolicy, RedisProvision, Slo, TtlClass};
use perf_policy_host::{HostConfig, PolicyHost, World};

/// Redis milliseconds per second of workload time.
const MS_PER_SECOND: u64 = 1;
const REQUESTS: usize = 200_000;
/// Memory budgets: one the static TTLs fit in (expiry keeps the data small), one under pressure (evictions).
const BUDGETS: [&str; 2] = ["4Mi", "2Mi"];
const POLICY_EVERY: Duration = Duration::from_millis(500);

/// A TTL class of the workload: its share of requests, keys, value size and Zipf exponent.
struct Class {
    name: &'static str,
    ttl_seconds: u32,
    share: f64,
    keys: usize,
    value_bytes: usize,
    zipf: f64,
}

const CLASSES: [Class; 3] = [
    Class { name: "riskModel", ttl_seconds: 3600, share: 0.2, keys: 2_000, value_bytes: 512, zipf: 1.1 },
    Class { name: "metrics", ttl_seconds: 300, share: 0.5, keys: 10_000, value_bytes: 128, zipf: 1.0 },
    Class { name: "query", ttl_seconds: 1800, share: 0.3, keys: 20_000, value_bytes: 256, zipf: 0.9 },
];

/// SplitMix64: the same workload on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The requests: (class index, key rank), Zipf within each class.
fn workload() -> Vec<(usize, usize)> {
    let cdfs: Vec<Vec<f64>> = CLASSES
        .iter()
        .map(|c| {
            let weights: Vec<f64> = (1..=c.keys).map(|k| 1.0 / (k as f64).powf(c.zipf)).collect();
            let total: f64 = weights.iter().sum();
            weights.iter().scan(0.0, |acc, w| Some(*acc + w / total).inspect(|v| *acc = *v)).collect()
        })
        .collect();
    let mut rng = Rng(0x00c0_ffee);
    (0..REQUESTS)
        .map(|_| {
            let pick = rng.next();
            let mut class = CLASSES.len() - 1;
            let mut acc = 0.0;
            for (i, c) in CLASSES.iter().enumerate() {
                acc += c.share;
                if pick < acc {
                    class = i;
                    break;
                }
            }
            let u = rng.next();
            (class, cdfs[class].partition_point(|p| *p < u).min(CLASSES[class].keys - 1))
        })
        .collect()
}

struct OwnRedis(Child, u16);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> OwnRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    let child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): apt-get install redis-server, or set REDIS_SERVER_BIN"));
    OwnRedis(child, port)
}

fn provision(budget: &str) -> RedisProvision {
    RedisProvision { max_memory: budget.into(), eviction_policy: EvictionPolicy::AllkeysLru, ..Default::default() }
}

#[derive(Default)]
struct Outcome {
    backend_calls: u64,
    hits: u64,
    stats: RedisStats,
    ttls: BTreeMap<String, u32>,
}

enum Mode {
    NoCache,
    Static,
    /// The built-in with its default settings, or with these (JSON).
    Adaptive(Option<serde_json::Value>),
}

/// One scenario on a fresh Redis with the budget's settings.
async fn run(url: &str, requests: &[(usize, usize)], mode: &Mode, host: &PolicyHost, budget: &str) -> Outcome {
    let client = redis::Client::open(url).expect("url");
    let mut con = client.get_multiplexed_async_connection().await.expect("connect");
    let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await.expect("flush");
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut con).await.expect("resetstat");
    let spec_live = memory::live_settings(&provision(budget), None);
    redis_stats::configure(&perf_egress::Egress::open(), url, None, &spec_live.settings, Duration::from_secs(3))
        .await
        .expect("configure");
    let classes: Vec<TtlClass> =
        CLASSES.iter().map(|c| TtlClass { name: c.name.into(), ttl_seconds: c.ttl_seconds }).collect();
    let mut published: BTreeMap<String, u32> = classes.iter().map(|c| (c.name.clone(), c.ttl_seconds)).collect();
    let mut admit: BTreeMap<String, bool> = BTreeMap::new();
    let policy = host.load_builtin(World::Cache, "adaptive-ttl").expect("built-in policy");
    let mut previous = None;
    let mut last_policy = Instant::now();
    let mut out = Outcome::default();
    let values: Vec<String> = CLASSES.iter().map(|c| "v".repeat(c.value_bytes)).collect();
    for &(class, rank) in requests {
        let c = &CLASSES[class];
        if matches!(mode, Mode::NoCache) {
            out.backend_calls += 1;
            continue;
        }
        let key = format!("{}:{rank}", c.name);
        let cached: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut con).await.expect("GET");
        if cached.is_some() {
            out.hits += 1;
        } else {
            out.backend_calls += 1;
            if admit.get(c.name).copied().unwrap_or(true) {
                let ttl_ms = u64::from(published[c.name]) * MS_PER_SECOND;
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&values[class])
                    .arg("PX")
                    .arg(ttl_ms.max(1))
                    .query_async(&mut con)
                    .await
                    .expect("SET");
            }
        }
        if let Mode::Adaptive(settings) = mode
            && last_policy.elapsed() >= POLICY_EVERY
        {
            last_policy = Instant::now();
            // The operator's loop: INFO, the interval's counters, the policy, published TTLs, advice within bounds.
            let stats = redis_stats::fetch(&perf_egress::Egress::open(), url, None, Duration::from_secs(3))
                .await
                .expect("INFO");
            let interval = inputs::interval_stats(&stats, previous);
            previous = Some(inputs::counters(&stats));
            let input = inputs::cache_input(&classes, &published, interval, &Slo::default(), settings.as_ref());
            let decision = policy.evaluate_cache(&input).expect("the built-in decides");
            for (class, d) in classes.iter().zip(&decision.classes) {
                published.insert(class.name.clone(), d.ttl_seconds);
                admit.insert(class.name.clone(), d.admit);
            }
            let live = memory::live_settings(&provision(budget), decision.memory.as_ref());
            redis_stats::configure(&perf_egress::Egress::open(), url, None, &live.settings, Duration::from_secs(3))
                .await
                .expect("advice");
        }
    }
    out.stats =
        redis_stats::fetch(&perf_egress::Egress::open(), url, None, Duration::from_secs(3)).await.expect("INFO");
    out.ttls = published;
    out
}

#[tokio::main]
async fn main() {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let started = Instant::now();
    while redis_stats::fetch(&perf_egress::Egress::open(), &url, None, Duration::from_secs(1)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = workload();
    let host = PolicyHost::new(HostConfig::default()).expect("policy host");
    println!(
        "{REQUESTS} requests, Zipf keys in {} classes ({}), allkeys-lru, real redis-server",
        CLASSES.len(),
        CLASSES
            .iter()
            .map(|c| format!("{} {} keys ttl {}s", c.name, c.keys, c.ttl_seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for budget in BUDGETS {
        compare(&url, &requests, &host, budget).await;
    }
}

async fn compare(url: &str, requests: &[(usize, usize)], host: &PolicyHost, budget: &str) {
    println!("maxmemory {budget}:");
    println!(
        "{:>22} {:>13} {:>7} {:>9} {:>10} {:>9}  ttls at the end",
        "mode", "backend calls", "saved", "hit ratio", "evictions", "used MiB"
    );
    let mut results = Vec::new();
    let floor = serde_json::json!({"minFactor": 1.0});
    let modes = [
        ("no cache", Mode::NoCache),
        ("static", Mode::Static),
        ("adaptive", Mode::Adaptive(None)),
        ("adaptive, minFactor 1", Mode::Adaptive(Some(floor))),
    ];
    for (name, mode) in modes {
        let o = run(url, requests, &mode, host, budget).await;
        let saved = 1.0 - o.backend_calls as f64 / REQUESTS as f64;
        let lookups = o.hits + o.backend_calls;
        let hit_ratio =
            if matches!(mode, Mode::NoCache) || lookups == 0 { 0.0 } else { o.hits as f64 / lookups as f64 };
        println!(
            "{name:>22} {:>13} {:>6.1}% {:>9.3} {:>10} {:>9.2}  {}",
            o.backend_calls,
            saved * 100.0,
            hit_ratio,
            o.stats.evicted_keys,
            o.stats.used_memory_bytes as f64 / (1 << 20) as f64,
            if matches!(mode, Mode::NoCache) { String::new() } else { format!("{:?}", o.ttls) }
        );
        results.push((name, o.backend_calls));
    }
    let calls = |n: &str| results.iter().find(|(m, _)| *m == n).map_or(1, |(_, c)| *c).max(1) as f64;
    println!(
        "backend calls at {budget}, adaptive / static: {:.3}, adaptive with minFactor 1 / static: {:.3} (below 1: the \
         policy saves more); static / no cache: {:.3}",
        calls("adaptive") / calls("static"),
        calls("adaptive, minFactor 1") / calls("static"),
        calls("static") / calls("no cache")
    );
}
