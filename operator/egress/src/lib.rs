//! Where the operator may connect on a tenant's behalf, and how much one answer may bring back.
//!
//! A profile names servers (Prometheus, ClickHouse, PostgreSQL, Redis, a policy's URL) that the operator then
//! reaches from inside the cluster, with its network position. [`Egress`] is the administrator's rule for those
//! connections: reserved addresses ([`reserved`]) are denied unless allowed, and allow-lists per kind limit the
//! rest. It is applied twice: on the name before anything is sent ([`Egress::check`], in `validate`, `plan` and
//! each round, so a refusal names the field) and on the addresses a name resolves to at connect
//! ([`Egress::screen`], [`connect`]), so a name that later points elsewhere is caught too.
//! [`Bounded`] caps each answer's bytes on the connection itself.

mod allow;
mod bounded;
mod connect;
#[cfg(feature = "reqwest")]
pub mod http;
pub mod reserved;

pub use allow::{ConfigError, Egress, Kind, Refusal};
pub use bounded::{AnswerTooLarge, Bounded, too_large};
pub use connect::{ConnectError, connect, resolve};
