//! perf-operator: reconciles `PerformanceProfile`s. The binary in `main.rs` only parses the command line and
//! calls into this library, where tests reach everything.

pub mod api_clients;
pub mod cli;
pub mod components;
pub mod conditions;
pub mod controller;
pub mod decide;
pub mod enforcement;
pub mod error;
pub mod exit_codes;
pub mod leader;
pub mod manifest;
pub mod notify;
pub mod plan;
pub mod postgres;
pub mod promote;
pub mod reasons;
pub mod redis_stats;
pub mod reference;
pub mod shards;
pub mod strict;
pub mod telemetry;
pub mod tenancy;
pub mod tls;
pub mod tracked;
pub mod validate;

pub use error::{Error, Result};
