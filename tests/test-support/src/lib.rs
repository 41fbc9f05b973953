//! Test infrastructure shared by the workspace's suites (unit-level tests of each crate and the end-to-end suite):
//! [`prometheus`] starts the real `prometheus` binary on loopback, [`loadtester`] Flagger's load tester, [`webhook`]
//! records what is posted to it. Each
//! suite keeps what is its own (the simulated app, the readiness probe with its own client).

pub mod loadtester;
pub mod prometheus;
pub mod webhook;

/// A free TCP port on 127.0.0.1 (bound, then released for the caller).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The path in environment variable `name`, which the suite's runner (tests/run.sh) sets.
pub fn env_path(name: &str) -> std::path::PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => std::path::PathBuf::from(v),
        _ => panic!("{name} is not set: run the suite through tests/run.sh (it builds and fetches what the tests run)"),
    }
}
