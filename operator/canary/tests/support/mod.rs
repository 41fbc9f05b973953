//! Shared fixtures: an in-memory cluster (kube-fake-client) and a real Prometheus scraping a simulated app.
#![allow(dead_code)] // each test binary uses a different part

pub mod cluster;
pub mod http;
pub mod prometheus;

pub use cluster::*;
#[allow(unused_imports)] // tests/reconcile.rs has no HTTP stand-ins
pub use http::*;
#[allow(unused_imports)] // tests/reconcile.rs has no Prometheus
pub use prometheus::*;
