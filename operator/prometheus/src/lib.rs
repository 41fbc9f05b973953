//! Client of the Prometheus HTTP API: instant queries (`/api/v1/query`) that answer one value, and a cache of
//! clients by base URL. Its own crate so that the canary analysis and the operator's other readers of Prometheus
//! share one client (and its connection pool) without depending on each other or on kube.

use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Errors of this crate (query failures are [`QueryError`]: data for the caller to judge, not errors of ours).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the Prometheus client")]
    HttpClient(#[source] reqwest::Error),
}

impl Error {
    /// Fixed label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::HttpClient(_) => "prometheus",
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Future returned by [`MetricsSource::query`]: `Ok(None)` is an empty result or NaN.
pub type QueryFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<f64>, QueryError>> + Send + 'a>>;

/// Where values come from; [`Prometheus`] in production, a stub in tests.
pub trait MetricsSource: Send + Sync {
    /// Runs an instant query that returns one value.
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a>;
}

/// Why a query gave no value.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("prometheus unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("prometheus answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("prometheus rejected the query: {0}")]
    Rejected(String),
    #[error("query returned {0} series, expected one (aggregate it, e.g. with sum())")]
    ManySeries(usize),
    #[error("unexpected answer from prometheus: {0}")]
    Decode(String),
}

impl QueryError {
    /// Prometheus itself is down or failing (not the query): callers hold rather than judge on it.
    pub fn is_outage(&self) -> bool {
        matches!(self, QueryError::Unreachable { .. })
            || matches!(self, QueryError::Http { status, .. } if *status >= 500)
    }
}

/// Client of the Prometheus HTTP API.
#[derive(Clone, Debug)]
pub struct Prometheus {
    client: reqwest::Client,
    base: String,
}

impl Prometheus {
    /// `base` is e.g. `http://prometheus:9090`; every request is bounded by `timeout`, so a hung Prometheus never
    /// stalls the caller longer than that.
    pub fn new(base: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self { client, base: base.trim_end_matches('/').to_string() })
    }

    /// Runs an instant query; see [`decode`] for what counts as one value.
    async fn instant(&self, promql: &str) -> Result<Option<f64>, QueryError> {
        let url = format!("{}/api/v1/query", self.base);
        let unreachable =
            |e: reqwest::Error| QueryError::Unreachable { url: self.base.clone(), message: e.to_string() };
        let response = self.client.get(&url).query(&[("query", promql)]).send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(unreachable)?;
        let json: Value = match serde_json::from_str(&body) {
            Ok(json) => json,
            Err(_) if status >= 400 => return Err(QueryError::Http { status, body: truncate(&body) }),
            Err(e) => return Err(QueryError::Decode(e.to_string())),
        };
        if json["status"] != "success" {
            let error = json["error"].as_str().unwrap_or("no error text");
            return Err(if status >= 500 {
                QueryError::Http { status, body: error.into() }
            } else {
                QueryError::Rejected(error.into())
            });
        }
        decode(&json["data"])
    }
}

impl MetricsSource for Prometheus {
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
        Box::pin(self.instant(promql))
    }
}

/// Keeps an error page from filling a status message.
fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Decodes `data` of an instant query: a scalar or a vector of at most one sample (several series would make the
/// verdict depend on which one came first).
fn decode(data: &Value) -> Result<Option<f64>, QueryError> {
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let result = data["result"].as_array().ok_or_else(|| QueryError::Decode("vector without result".into()))?;
            match result.as_slice() {
                [] => return Ok(None),
                [one] => &one["value"],
                many => return Err(QueryError::ManySeries(many.len())),
            }
        }
        other => return Err(QueryError::Decode(format!("result type {other:?}, expected vector or scalar"))),
    };
    let text = sample[1].as_str().ok_or_else(|| QueryError::Decode(format!("sample {sample} has no value")))?;
    let value: f64 = text.parse().map_err(|_| QueryError::Decode(format!("value {text:?} is not a number")))?;
    Ok(value.is_finite().then_some(value))
}

/// Timeout of each query made through [`Clients`].
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Prometheus clients by base URL, built once: each holds a connection pool, and profiles usually share one
/// Prometheus.
#[derive(Default)]
pub struct Clients(Mutex<HashMap<String, Arc<Prometheus>>>);

impl Clients {
    /// The client for `base`, built on first use (queries bounded by [`TIMEOUT`]).
    pub fn get(&self, base: &str) -> Result<Arc<Prometheus>> {
        // A panic elsewhere while holding the lock leaves the map intact: keep using it.
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(base) {
            return Ok(p.clone());
        }
        let p = Arc::new(Prometheus::new(base, TIMEOUT)?);
        map.insert(base.to_string(), p.clone());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vectors_scalars_and_nan() {
        let v = serde_json::json!({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.25"]}]});
        assert_eq!(decode(&v).ok(), Some(Some(0.25)));
        let s = serde_json::json!({"resultType": "scalar", "result": [1.0, "NaN"]});
        assert_eq!(decode(&s).ok(), Some(None));
        let two = serde_json::json!({"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]});
        assert!(matches!(decode(&two), Err(QueryError::ManySeries(2))));
        let empty = serde_json::json!({"resultType": "vector", "result": []});
        assert_eq!(decode(&empty).ok(), Some(None));
    }

    #[test]
    fn only_prometheus_itself_failing_is_an_outage() {
        let down = QueryError::Unreachable { url: "http://127.0.0.1:9".into(), message: "refused".into() };
        assert!(down.is_outage());
        assert!(QueryError::Http { status: 503, body: String::new() }.is_outage());
        assert!(!QueryError::Http { status: 404, body: String::new() }.is_outage());
        assert!(!QueryError::Rejected("parse error".into()).is_outage());
    }

    #[test]
    fn clients_are_built_once_per_base_url() {
        let clients = Clients::default();
        let a = clients.get("http://prometheus:9090").unwrap();
        assert!(Arc::ptr_eq(&a, &clients.get("http://prometheus:9090").unwrap()));
        assert!(!Arc::ptr_eq(&a, &clients.get("http://thanos:9090").unwrap()));
        assert_eq!(a.base, "http://prometheus:9090");
    }

    #[tokio::test]
    async fn a_closed_port_is_an_outage() {
        let prom = Prometheus::new("http://127.0.0.1:9/", Duration::from_millis(500)).unwrap();
        let answer = prom.query("up").await;
        assert!(matches!(&answer, Err(e @ QueryError::Unreachable { .. }) if e.is_outage()), "{answer:?}");
    }
}
