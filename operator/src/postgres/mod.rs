//! What the operator reads from a live PostgreSQL: the connection limits that cap the app's PostgreSQL pool
//! (`max_connections` less the reserved connections) and the client connections open now. One connection per read,
//! one query, closed at once; the password never reaches `Debug`, errors, logs or status.

pub mod tls;

use perf_egress::{Bounded, Egress, Kind};
use perf_operator_api::{PostgresServer, SslMode};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// Bytes one answer may bring (the session's start, the limits row): some hundreds are sent; a server streaming
/// more is cut off here.
pub const MAX_ANSWER_BYTES: usize = 256 << 10;

/// The connection the client speaks over: TCP to an allowed address, answers bounded.
type Stream = Bounded<TcpStream>;

/// Every number in one round trip. `current_setting(name, true)` is NULL for a setting the server does not have
/// (`reserved_connections` before PostgreSQL 16); `pg_stat_activity` shows every session's row to any role, so
/// the user needs no privilege. Background workers are not connections an app competes with: client backends only.
pub const LIMITS_QUERY: &str = "SELECT current_setting('max_connections'), \
     current_setting('superuser_reserved_connections'), current_setting('reserved_connections', true), \
     (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')";

/// The limits of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostgresLimits {
    pub max_connections: u64,
    pub superuser_reserved_connections: u64,
    /// `reserved_connections` (PostgreSQL 16 and later, for roles with `pg_use_reserved_connections`).
    pub reserved_connections: Option<u64>,
    /// Client connections open when read, by every user of the server (this read's own included).
    pub connections_in_use: u64,
}

impl PostgresLimits {
    /// Connections no ordinary role may use.
    pub fn reserved(&self) -> u64 {
        self.superuser_reserved_connections + self.reserved_connections.unwrap_or(0)
    }

    /// Connections ordinary roles (the app's) may open.
    pub fn available(&self) -> u64 {
        self.max_connections.saturating_sub(self.reserved())
    }
}

#[derive(Debug, Error)]
pub enum PostgresError {
    /// The server refused the password (SQLSTATE 28P01): a wrong Secret, not a network problem.
    #[error("PostgreSQL {server} refused the password of user {user:?}")]
    WrongPassword {
        server: String,
        user: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server answered and refused the session (no pg_hba entry, unknown database or role, too many clients).
    #[error("PostgreSQL {server} refused the connection of user {user:?}")]
    Refused {
        server: String,
        user: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// No answer: connection refused, DNS, TLS handshake, closed mid-way.
    #[error("PostgreSQL {server} is unreachable")]
    Unreachable {
        server: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL {server}: no answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    /// The CA certificate of `caSecretRef` is not usable.
    #[error("PostgreSQL {server}: the CA certificate from caSecretRef is not usable")]
    Ca {
        server: String,
        #[source]
        source: tls::CaError,
    },
    #[error("PostgreSQL {server} refused the limits query")]
    Query {
        server: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The administrator's egress rule refuses the host: nothing was sent.
    #[error("PostgreSQL {server}: {reason}")]
    EndpointRefused { server: String, reason: String },
    /// No connection could be opened (DNS, refused, unreachable network).
    #[error("PostgreSQL {server} is unreachable")]
    Connect {
        server: String,
        #[source]
        source: perf_egress::ConnectError,
    },
    /// The server sent more than [`MAX_ANSWER_BYTES`] after one request: cut off.
    #[error("PostgreSQL {server}: an answer was larger than {limit} bytes and was cut off")]
    TooLarge { server: String, limit: usize },
    /// The answer is not what every supported version sends.
    #[error("PostgreSQL {server}: {what} is {value:?}, expected a whole number")]
    Answer { server: String, what: &'static str, value: String },
}

impl PostgresError {
    /// Fixed snake_case label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            PostgresError::WrongPassword { .. } => "wrong_password",
            PostgresError::Refused { .. } => "refused",
            PostgresError::Unreachable { .. } => "unreachable",
            PostgresError::Timeout { .. } => "timeout",
            PostgresError::Ca { .. } => "ca_certificate",
            PostgresError::Query { .. } => "query",
            PostgresError::Answer { .. } => "answer",
            PostgresError::EndpointRefused { .. } => "endpoint_refused",
            PostgresError::Connect { .. } => "unreachable",
            PostgresError::TooLarge { .. } => "too_large",
        }
    }
}

/// Where and as whom to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port/database`, as status names the server.
    pub server: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
    pub ssl_mode: SslMode,
    /// PEM CA certificates for `verify-full`; None: the public web roots.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Target {
    // The password never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

impl Target {
    /// The spec's server with the credentials read from its Secrets. The port is range-checked by validation; one
    /// that still does not fit is refused by the connection, never wrapped.
    pub fn new(server: &PostgresServer, user: String, password: String, ca_pem: Option<String>) -> Self {
        Self {
            server: server.display(),
            host: server.host.clone(),
            port: u16::try_from(server.port).unwrap_or(0),
            database: server.database.clone(),
            user,
            password,
            ssl_mode: server.ssl_mode,
            ca_pem,
        }
    }

    fn config(&self, timeout: Duration) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .password(&self.password)
            .application_name("perf-operator")
            .connect_timeout(timeout)
            .ssl_mode(match self.ssl_mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
        config
    }
}

/// Connects (where `egress` allows), reads the limits and closes, all within `timeout`.
pub async fn read_limits(egress: &Egress, target: &Target, timeout: Duration) -> Result<PostgresLimits, PostgresError> {
    let server = target.server.clone();
    let config = target.config(timeout);
    let tls = tls::connector(target.ssl_mode, target.ca_pem.as_deref())
        .map_err(|source| PostgresError::Ca { server: server.clone(), source })?;
    let read = async {
        let stream = open(egress, target).await?;
        match tls {
            None => read_with(&config, stream, NoTls, target).await,
            Some(mut make) => {
                let tls = MakeTlsConnect::<Stream>::make_tls_connect(&mut make, &target.host).map_err(|e| {
                    PostgresError::Connect {
                        server: server.clone(),
                        source: perf_egress::ConnectError::Io {
                            host: target.host.clone(),
                            port: target.port,
                            source: std::io::Error::other(e),
                        },
                    }
                })?;
                read_with(&config, stream, tls, target).await
            }
        }
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(PostgresError::Timeout { server, timeout }))
}

async fn open(egress: &Egress, target: &Target) -> Result<Stream, PostgresError> {
    let server = target.server.clone();
    match perf_egress::connect(egress, Kind::Postgres, &target.host, target.port).await {
        Ok(stream) => Ok(Bounded::new(stream, MAX_ANSWER_BYTES)),
        Err(perf_egress::ConnectError::Refused(r)) => {
            Err(PostgresError::EndpointRefused { server, reason: r.to_string() })
        }
        Err(source) => Err(PostgresError::Connect { server, source }),
    }
}

async fn read_with<T>(
    config: &tokio_postgres::Config,
    stream: Stream,
    tls: T,
    target: &Target,
) -> Result<PostgresLimits, PostgresError>
where
    T: TlsConnect<Stream>,
    T::Stream: Send + 'static,
    T::Future: Send,
{
    let server = &target.server;
    let (client, connection) =
        config.connect_raw(stream, tls).await.map_err(|e| connect_error(server, &target.user, e))?;
    // The connection runs on its own task and ends when the client is dropped (it sends Terminate).
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL limits connection closed with an error");
        }
    });
    let messages = client.simple_query(LIMITS_QUERY).await.map_err(|source| match too_large(server, &source) {
        Some(cut) => cut,
        None => PostgresError::Query { server: server.clone(), source },
    })?;
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some([0, 1, 2, 3].map(|i| row.get(i))),
        _ => None,
    });
    parse(server, row.unwrap_or([None; 4]))
}

/// The error of an answer cut off at [`MAX_ANSWER_BYTES`], if `source` is one.
fn too_large(server: &str, source: &tokio_postgres::Error) -> Option<PostgresError> {
    perf_egress::too_large(source).map(|limit| PostgresError::TooLarge { server: server.to_string(), limit })
}

fn connect_error(server: &str, user: &str, source: tokio_postgres::Error) -> PostgresError {
    if let Some(cut) = too_large(server, &source) {
        return cut;
    }
    let (server, user) = (server.to_string(), user.to_string());
    match source.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => PostgresError::WrongPassword { server, user, source },
        Some(_) => PostgresError::Refused { server, user, source },
        None => PostgresError::Unreachable { server, source },
    }
}

/// The query's one row: max_connections, superuser_reserved_connections, reserved_connections (NULL before 16),
/// client connections.
pub fn parse(server: &str, row: [Option<&str>; 4]) -> Result<PostgresLimits, PostgresError> {
    let number = |what: &'static str, value: Option<&str>| -> Result<u64, PostgresError> {
        let value = value.unwrap_or_default().trim();
        value.parse::<u64>().map_err(|_| PostgresError::Answer {
            server: server.to_string(),
            what,
            value: value.to_string(),
        })
    };
    Ok(PostgresLimits {
        max_connections: number("max_connections", row[0])?,
        superuser_reserved_connections: number("superuser_reserved_connections", row[1])?,
        reserved_connections: row[2].map(|v| number("reserved_connections", Some(v))).transpose()?,
        connections_in_use: number("the count of client connections", row[3])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_parsed_with_and_without_reserved_connections() {
        let v15 = parse("db:5432/app", [Some("37"), Some("3"), None, Some("5")]).unwrap();
        assert_eq!((v15.reserved(), v15.available(), v15.connections_in_use), (3, 34, 5));
        let v16 = parse("db:5432/app", [Some("100"), Some("3"), Some("2"), Some("0")]).unwrap();
        assert_eq!((v16.reserved(), v16.available()), (5, 95));
        // More reserved than allowed (a misconfigured server refuses to start, but the sum must not wrap).
        let odd = PostgresLimits { max_connections: 2, superuser_reserved_connections: 3, ..Default::default() };
        assert_eq!(odd.available(), 0);
    }

    #[test]
    fn an_answer_that_is_not_a_number_names_the_setting() {
        let e = parse("db:5432/app", [Some("lots"), Some("3"), None, Some("1")]).unwrap_err();
        assert_eq!(e.to_string(), "PostgreSQL db:5432/app: max_connections is \"lots\", expected a whole number");
        let e = parse("db:5432/app", [None; 4]).unwrap_err();
        assert_eq!(e.category(), "answer", "no row at all");
    }

    #[test]
    fn the_password_never_reaches_debug() {
        let server: PostgresServer = serde_json::from_value(serde_json::json!({
            "host": "::1", "credentialsSecretRef": {"name": "db"}
        }))
        .unwrap();
        let target = Target::new(&server, "app".into(), "hunter2secret".into(), None);
        let text = format!("{target:?}");
        assert!(!text.contains("hunter2secret") && text.contains("[::1]:5432/postgres"), "{text}");
    }
}
