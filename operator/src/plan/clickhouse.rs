//! The ClickHouse section of `plan`: offline against declared tables, or against a live server (`--clickhouse`)
//! with credentials from a flag and a file or the environment, never echoed.

use crate::{Error, Result};
use perf_clickhouse::{Credentials, LiveSchema};
use perf_operator_api::ClickHouseSpec;
use std::path::Path;

/// Environment variable holding the password for `plan --clickhouse` (a flag would show in `ps`).
pub const PASSWORD_ENV: &str = "PERF_CLICKHOUSE_PASSWORD";

/// A server to plan against: its URL without credentials, and the credentials.
#[derive(Debug)]
pub struct Server {
    /// Safe to print.
    pub url: String,
    pub credentials: Option<Credentials>,
    /// Strings that must never be printed (the password, the URL as given).
    secrets: Vec<String>,
}

impl Server {
    /// From `--clickhouse URL` (credentials in it are taken out of it), `--clickhouse-user`, and the password from
    /// `--clickhouse-password-file` or [`PASSWORD_ENV`]; flags win over the URL's.
    pub fn new(url: &str, user: Option<&str>, password_file: Option<&Path>) -> Result<Self> {
        let invalid = |m: &str| Error::InvalidSpec(format!("--clickhouse: {m}"));
        let mut parsed = url::Url::parse(url).map_err(|e| invalid(&format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(invalid("expected an http:// or https:// URL with a host"));
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let url_user = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let url_password = parsed.password().map(decode);
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let password = match password_file {
            Some(path) => Some(read_password(path)?),
            None => std::env::var(PASSWORD_ENV).ok().or(url_password),
        };
        let user = user.map(str::to_string).or(url_user);
        let mut secrets = vec![url.to_string()];
        secrets.extend(password.iter().filter(|p| !p.is_empty()).cloned());
        let credentials = match (user, password) {
            (None, None) => None,
            (user, password) => Some(Credentials {
                user: user.unwrap_or_else(|| "default".into()),
                password: password.unwrap_or_default(),
            }),
        };
        Ok(Server { url: parsed.as_str().trim_end_matches('/').to_string(), credentials, secrets })
    }

    /// `message` with every secret replaced.
    pub fn redact(&self, message: &str) -> String {
        self.secrets.iter().fold(message.to_string(), |m, s| m.replace(s.as_str(), "<redacted>"))
    }

    /// Reads the live schema for `spec` on this server.
    pub async fn observe(&self, spec: &ClickHouseSpec) -> Result<LiveSchema> {
        let spec = ClickHouseSpec { endpoint: self.url.clone(), ..spec.clone() };
        perf_clickhouse::observe_live(&perf_clickhouse::Http::open(), &spec, self.credentials.clone()).await.map_err(
            |e| Error::Component { component: "clickhouse", message: self.redact(&format!("{}: {e}", self.url)) },
        )
    }
}

/// The file's content without the final line break (size-capped: a device is refused, not read forever).
fn read_password(path: &Path) -> Result<String> {
    Ok(crate::manifest::read_capped(path)?.trim_end_matches(['\n', '\r']).to_string())
}

/// The section: the DDL against `live` when given, else against the declared tables.
pub fn section(spec: &ClickHouseSpec, live: Option<&LiveSchema>) -> (serde_json::Value, usize) {
    let against =
        if live.is_some() { "live schema" } else { "declared tables (offline: columns as named, types unknown)" };
    match perf_clickhouse::plan_ddl(spec, live) {
        Ok(plan) => {
            let refused = plan.refused.len();
            (serde_json::json!({ "against": against, "plan": plan }), refused)
        }
        Err(e) => (serde_json::json!({ "against": against, "error": e.to_string() }), 1),
    }
}

/// The EXPLAIN reports of the live schema, by table and query.
pub fn explains(spec: &ClickHouseSpec, live: &LiveSchema) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for t in &spec.tables {
        let Some(table) = live.tables.get(&t.name) else { continue };
        if !table.explains.is_empty() {
            out.insert(t.name.clone(), serde_json::to_value(&table.explains).unwrap_or_default());
        }
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_never_reach_a_message() {
        let s = Server::new("http://ops:s%40cret@ch.db:8123/", None, None).unwrap();
        assert_eq!(s.url, "http://ch.db:8123");
        let c = s.credentials.as_ref().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("ops", "s@cret"));
        let message = s.redact("connect to http://ops:s%40cret@ch.db:8123/ failed, password s@cret");
        assert!(!message.contains("s@cret") && !message.contains("s%40cret"), "{message}");
        let flag = Server::new("http://u:p@h:1", Some("admin"), None).unwrap();
        assert_eq!(flag.credentials.unwrap().user, "admin");
        assert!(Server::new("not a url", None, None).unwrap_err().to_string().contains("not a URL"));
        assert!(Server::new("ftp://h", None, None).is_err());
        assert!(Server::new("http://h:8123", None, None).unwrap().credentials.is_none());
    }
}
