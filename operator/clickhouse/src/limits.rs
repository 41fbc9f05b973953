//! ClickHouse's connection limits, the cap of the app's ClickHouse pool: `max_connections` and
//! `max_concurrent_queries` from `system.server_settings`. A server without that table (before 23.x) or a user not
//! allowed to read it still answers: the limits are then unknown, and [`ServerLimits::missing`] says why.

use crate::error::{Error, Result};
use crate::observe::bounded;
use crate::{Credentials, client};
use perf_operator_api::clickhouse::ClickHouseSpec;
use serde::Deserialize;

/// What the server allows. 0 is ClickHouse's "no limit" for both settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: Option<u64>,
    pub max_concurrent_queries: Option<u64>,
    /// What the server did not say, and why.
    pub missing: Option<String>,
}

/// The binding limit of a server: the smaller of its limits that are set (not 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub setting: &'static str,
    pub value: u64,
}

impl ServerLimits {
    /// The limit that binds first, or None when the server sets none.
    pub fn binding(&self) -> Option<Binding> {
        [("max_concurrent_queries", self.max_concurrent_queries), ("max_connections", self.max_connections)]
            .into_iter()
            .filter_map(|(setting, value)| value.filter(|v| *v > 0).map(|value| Binding { setting, value }))
            .min_by_key(|b| b.value)
    }
}

#[derive(Deserialize)]
struct Setting {
    name: String,
    value: String,
}

const QUERY: &str =
    "SELECT name, value FROM system.server_settings WHERE name IN ('max_connections', 'max_concurrent_queries')";

/// Reads the limits of the spec's server.
pub async fn read(http: &crate::Http, spec: &ClickHouseSpec, creds: Option<&Credentials>) -> Result<ServerLimits> {
    let rows = bounded(QUERY, crate::rows::fetch_all::<Setting>(client(http, spec, creds).query(QUERY))).await?;
    match rows {
        Ok(rows) => Ok(parse(rows.into_iter().map(|r| (r.name, r.value)))),
        Err(e) => absent(Error::from_client(&spec.endpoint, QUERY, e)),
    }
}

/// A refusal that means "this server does not say", not "this server is broken": the table is unknown (code 60,
/// UNKNOWN_TABLE, on servers before `system.server_settings`) or the user may not read it (497, ACCESS_DENIED).
pub fn absent(e: Error) -> Result<ServerLimits> {
    let Error::Statement { message, .. } = &e else { return Err(e) };
    let why = if message.contains("Code: 60.") {
        "system.server_settings does not exist on this server (ClickHouse before 23.x)"
    } else if message.contains("Code: 497.") {
        "the operator's user may not read system.server_settings"
    } else {
        return Err(e);
    };
    Ok(ServerLimits { missing: Some(format!("limits unknown: {why}")), ..ServerLimits::default() })
}

/// The settings' rows; a setting absent or not a number is said in `missing`.
pub fn parse(rows: impl IntoIterator<Item = (String, String)>) -> ServerLimits {
    let mut limits = ServerLimits::default();
    let mut unknown = Vec::new();
    for (name, value) in rows {
        let slot = match name.as_str() {
            "max_connections" => &mut limits.max_connections,
            "max_concurrent_queries" => &mut limits.max_concurrent_queries,
            _ => continue,
        };
        match value.trim().parse::<u64>() {
            Ok(v) => *slot = Some(v),
            Err(_) => unknown.push(format!("{name} is {value:?}, not a number")),
        }
    }
    for (name, value) in
        [("max_connections", limits.max_connections), ("max_concurrent_queries", limits.max_concurrent_queries)]
    {
        if value.is_none() && !unknown.iter().any(|u| u.starts_with(name)) {
            unknown.push(format!("{name} is not in system.server_settings"));
        }
    }
    if !unknown.is_empty() {
        limits.missing = Some(unknown.join("; "));
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_smaller_limit_that_is_set_binds() {
        let both = parse(rows(&[("max_connections", "4096"), ("max_concurrent_queries", "100")]));
        assert_eq!(both.binding(), Some(Binding { setting: "max_concurrent_queries", value: 100 }));
        assert_eq!(both.missing, None);
        // 0 is "no limit": the other one binds.
        let unlimited = parse(rows(&[("max_connections", "4096"), ("max_concurrent_queries", "0")]));
        assert_eq!(unlimited.binding(), Some(Binding { setting: "max_connections", value: 4096 }));
        let none = parse(rows(&[("max_connections", "0"), ("max_concurrent_queries", "0")]));
        assert_eq!(none.binding(), None);
    }

    #[test]
    fn an_absent_or_odd_setting_is_said() {
        let one = parse(rows(&[("max_connections", "1024")]));
        assert_eq!(one.max_connections, Some(1024));
        assert_eq!(one.missing.as_deref(), Some("max_concurrent_queries is not in system.server_settings"));
        let odd = parse(rows(&[("max_connections", "many"), ("max_concurrent_queries", "50")]));
        assert_eq!((odd.max_connections, odd.binding().map(|b| b.value)), (None, Some(50)));
        assert_eq!(odd.missing.as_deref(), Some("max_connections is \"many\", not a number"));
    }

    #[test]
    fn an_old_server_or_a_denied_table_is_unknown_limits_and_other_errors_stay_errors() {
        let statement = |message: &str| Error::Statement { statement: QUERY.into(), message: message.into() };
        let old =
            absent(statement("Code: 60. DB::Exception: Unknown table expression identifier 'system.server_settings'"));
        assert!(old.unwrap().missing.unwrap().contains("does not exist"));
        let denied = absent(statement("Code: 497. DB::Exception: default: Not enough privileges"));
        assert!(denied.unwrap().missing.unwrap().contains("may not read"));
        assert!(absent(statement("Code: 241. DB::Exception: Memory limit exceeded")).is_err());
        let down = Error::Unreachable { endpoint: "http://ch:8123".into(), message: "refused".into() };
        assert!(absent(down).is_err());
    }
}
