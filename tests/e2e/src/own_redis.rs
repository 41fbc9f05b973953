//! A redis-server of the test's own, for tests whose policy must see statistics no other test moves.

use crate::operator::free_port;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server of the test's own on a free port of 127.0.0.1, no persistence; killed on drop. Private, so the
/// statistics the policy sees are the test's alone (tests/run.sh puts redis-server on PATH, or REDIS_SERVER_BIN).
pub struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = free_port();
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): install it (tests/run.sh does)"));
        let redis = Self { child, port };
        for _ in 0..100 {
            if redis.command("PING\r\n", 1).is_some() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server on port {port} never answered")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends inline commands and reads `replies` one-line replies; None when Redis does not answer.
    pub fn command(&self, commands: &str, replies: usize) -> Option<Vec<String>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(commands.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        for _ in 0..replies {
            let mut line = String::new();
            reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
            lines.push(line.trim_end().to_string());
        }
        Some(lines)
    }

    /// `n` lookups of keys that do not exist: a hit ratio of 0.
    pub fn misses(&self, n: usize) {
        let commands: String = (0..n).map(|i| format!("GET perf-e2e-missing-{i}\r\n")).collect();
        let replies = self.command(&commands, n).expect("Redis answers");
        assert!(replies.iter().all(|r| r == "$-1"), "expected only misses: {replies:?}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
