//! Light traffic on the suite's Redis (`REDIS_URL`), as an app using its cache would: reads and writes of a few
//! keys of the test's own, so that what the operator reads of it (memory, hits, misses, clients) keeps moving.
//! Bounded in time, paced, aimed at 127.0.0.1 only.

use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// The suite's Redis.
pub fn url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL is set by tests/run.sh")
}

/// Runs for `span` (or until dropped): about 200 commands a second on keys prefixed `prefix`.
pub fn run(prefix: &str, span: Duration) -> Traffic {
    let prefix = prefix.to_string();
    Traffic(tokio::spawn(async move {
        let client = redis::Client::open(url()).expect("REDIS_URL");
        let Ok(mut redis) = client.get_multiplexed_async_connection().await else { return };
        let started = Instant::now();
        let mut i: u64 = 0;
        while started.elapsed() < span {
            let key = format!("{prefix}:{}", i % 64);
            // Every other read misses: the key was written on an odd step only.
            let _: redis::RedisResult<Option<String>> = redis.get(&key).await;
            if i % 2 == 1 {
                let _: redis::RedisResult<()> = redis.set_ex(&key, format!("value-{i}"), 30).await;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }))
}

/// The running traffic; stops on drop.
pub struct Traffic(tokio::task::JoinHandle<()>);

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.abort();
    }
}
