//! Client of the Prometheus HTTP API: instant queries (`/api/v1/query`) that answer one value, and a cache of
//! clients by base URL. Its own crate so that the canary analysis and the operator's other readers of Prometheus
//! share one client (and its connection pool) without depending on each other or on kube.

mod access;
mod answer;
pub mod config;
mod error;

pub use access::{Access, Auth, header, selects_tenant};
pub use config::ScrapeIntervals;
pub use error::{QueryError, Trouble};

use perf_egress::{Egress, Kind};
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
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid Prometheus access: {reason}")]
    InvalidAccess { reason: String },
    #[error("Prometheus URL {url:?} may not be reached: {reason}")]
    Refused { url: String, reason: String },
}

impl Error {
    /// Fixed label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::HttpClient(_) => "prometheus",
            Error::InvalidUrl { .. } | Error::InvalidAccess { .. } | Error::Refused { .. } => "input",
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Future returned by [`MetricsSource::query`]: `Ok(None)` is an empty result; NaN and ±Inf are values.
pub type QueryFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<f64>, QueryError>> + Send + 'a>>;

/// Future returned by [`MetricsSource::scrape_interval`].
pub type IntervalFuture<'a> = Pin<Box<dyn Future<Output = Option<Duration>> + Send + 'a>>;

/// Where values come from; [`Prometheus`] in production, a stub in tests.
pub trait MetricsSource: Send + Sync {
    /// Runs an instant query that returns one value.
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a>;

    /// The source's global scrape interval, when it can say (a default cadence is derived from it).
    fn scrape_interval(&self) -> IntervalFuture<'_> {
        Box::pin(std::future::ready(None))
    }

    /// How errors name this source when the caller gives up on it (a deadline): `host:port` for Prometheus.
    fn at(&self) -> &str {
        "the metrics source"
    }
}

/// Client of the Prometheus HTTP API.
#[derive(Clone, Debug)]
pub struct Prometheus {
    client: reqwest::Client,
    base: String,
    /// `host:port`, how errors name the server (the full request URL carries the encoded query).
    at: String,
    host: String,
    timeout: Duration,
    access: Access,
    /// The global scrape interval as last read (None: could not be read), and when: see [`SCRAPE_INTERVAL_KEPT`].
    scrape_interval: Arc<Mutex<Option<KeptInterval>>>,
    /// Requests in flight, shared by every client [`Clients`] built: see [`IN_FLIGHT`]. None: unbounded (the CLI).
    turns: Option<Arc<tokio::sync::Semaphore>>,
}

/// Requests in flight at once through the clients of one [`Clients`] (every profile's), each answer at most
/// [`MAX_ANSWER_BYTES`]: what all tenants' Prometheus answers can hold of the operator's memory at once is bounded
/// (32 x 4 MiB), and a tenant with many queries waits for turns instead of growing it.
pub const IN_FLIGHT: usize = 32;

/// A scrape interval as read (None: could not be read), and when it was read.
type KeptInterval = (std::time::Instant, Option<Duration>);

/// How long a scrape interval read from the configuration (or the failure to read it) is believed.
const SCRAPE_INTERVAL_KEPT: Duration = Duration::from_secs(600);
/// How long reading it may take.
const SCRAPE_INTERVAL_READ: Duration = Duration::from_secs(1);

impl Prometheus {
    /// `base` is e.g. `http://prometheus:9090` (a path prefix is kept); it is checked here, before any query.
    /// Every request is bounded by `timeout`, so a hung Prometheus never stalls the caller longer than that.
    pub fn new(base: &str, timeout: Duration) -> Result<Self> {
        Self::with_access(base, timeout, Access::default())
    }

    /// [`Prometheus::new`] for a Prometheus behind credentials, a private CA or a tenant header.
    pub fn with_access(base: &str, timeout: Duration, access: Access) -> Result<Self> {
        Self::reaching(base, timeout, access, &Egress::open())
    }

    /// [`Prometheus::with_access`] under the administrator's egress rule: an address in the URL is judged here, a
    /// name on what it resolves to at each connect.
    pub fn reaching(base: &str, timeout: Duration, access: Access, egress: &Egress) -> Result<Self> {
        let (url, host, at) = check_url(base)?;
        perf_egress::http::literal(egress, Kind::Prometheus, &url)
            .map_err(|r| Error::Refused { url: base.to_string(), reason: r.to_string() })?;
        // No redirects: a tenant's URL must not lead the operator (with the tenant's headers) somewhere else.
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(perf_egress::http::Screened::new(egress.clone(), Kind::Prometheus));
        let client = access.configure(builder)?.build().map_err(Error::HttpClient)?;
        let base = base.trim_end_matches('/').to_string();
        Ok(Self { client, base, at, host, timeout, access, scrape_interval: Arc::default(), turns: None })
    }

    /// The global scrape interval from `/api/v1/status/config`, read at most every [`SCRAPE_INTERVAL_KEPT`]
    /// (Thanos and Mimir do not serve the configuration: then None, believed as long).
    async fn cached_scrape_interval(&self) -> Option<Duration> {
        let now = std::time::Instant::now();
        let kept = *self.scrape_interval.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, interval)) = kept
            && now.duration_since(at) < SCRAPE_INTERVAL_KEPT
        {
            return interval;
        }
        // A short bound: this only picks a default cadence, and a failure is believed as long as a success.
        let interval = self.scrape_intervals_within(SCRAPE_INTERVAL_READ).await.ok().map(|s| s.global);
        *self.scrape_interval.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, interval));
        interval
    }

    /// Runs an instant query; see [`answer::read_data`] and [`answer::decode`] for how the answer is judged.
    async fn instant(&self, promql: &str) -> Result<Option<f64>, QueryError> {
        let data = self.api("query", &[("query", promql)]).await?;
        answer::decode(&self.at, &data)
    }

    /// GETs `/api/v1/<path>` and returns the `data` of a successful answer; see [`answer::read_data`] for how the
    /// status, content type and body are judged.
    pub(crate) async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<serde_json::Value, QueryError> {
        self.api_within(path, query, self.timeout).await
    }

    /// [`Prometheus::api`] bounded by `timeout` (at most the client's own) instead of the client's.
    pub(crate) async fn api_within(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<serde_json::Value, QueryError> {
        let url = format!("{}/api/v1/{path}", self.base);
        let timeout = timeout.min(self.timeout);
        let transport = |e: reqwest::Error| error::transport(&e, &self.at, &self.host, timeout);
        let _turn = match &self.turns {
            // Waiting for a turn counts toward the request's time; the semaphore is never closed.
            Some(turns) => match tokio::time::timeout(timeout, turns.acquire()).await {
                Ok(turn) => turn.ok(),
                Err(_) => return Err(QueryError::Timeout { at: self.at.clone(), after: timeout }),
            },
            None => None,
        };
        let request = self.access.apply(self.client.get(&url).query(query).timeout(timeout));
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        let body = match bounded_body(response, MAX_ANSWER_BYTES).await {
            Ok(body) => body,
            Err(Cut::TooLarge) => return Err(QueryError::TooLarge { at: self.at.clone(), limit: MAX_ANSWER_BYTES }),
            Err(Cut::Transport(e)) => return Err(transport(e)),
        };
        answer::read_data(&self.at, status, html, &String::from_utf8_lossy(&body))
    }
}

/// Bytes of one answer read at most. An instant query's answer of one series is under a kilobyte and a
/// configuration some hundreds; a server streaming more (a hostile or wrong endpoint) is cut off here instead of
/// growing the operator's memory, which every tenant shares.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why a body was not read whole.
enum Cut {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body of `response`, read chunk by chunk up to `limit` bytes; past it (or a declared length past it) the
/// read stops there.
async fn bounded_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Cut> {
    if response.content_length().is_some_and(|declared| declared > limit as u64) {
        return Err(Cut::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Cut::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(Cut::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Checks `base` is an http(s) URL with a host and nothing after the path; returns it parsed, its host and `host:port`.
fn check_url(base: &str) -> Result<(reqwest::Url, String, String)> {
    let invalid = |reason: &str| Error::InvalidUrl { url: base.to_string(), reason: reason.to_string() };
    let url = reqwest::Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("expected an http:// or https:// URL"));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host"))?.to_string();
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("expected a base URL without ?query or #fragment"));
    }
    let at = url.port_or_known_default().map_or_else(|| host.clone(), |port| format!("{host}:{port}"));
    Ok((url, host, at))
}

impl MetricsSource for Prometheus {
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
        Box::pin(self.instant(promql))
    }

    fn scrape_interval(&self) -> IntervalFuture<'_> {
        Box::pin(self.cached_scrape_interval())
    }

    fn at(&self) -> &str {
        &self.at
    }
}

/// Timeout of each query made through [`Clients`].
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Prometheus clients by base URL and access, built once: each holds a connection pool, and profiles usually share
/// one Prometheus. Keyed by a digest of the access, so a rotated credential gets a new client and two tenants with
/// their own credentials for one URL never share one.
pub struct Clients {
    built: Mutex<HashMap<(String, String), Arc<Prometheus>>>,
    /// The turns every client built here shares ([`IN_FLIGHT`]).
    turns: Arc<tokio::sync::Semaphore>,
    /// The rule every client is built under; the default denies the reserved ranges.
    egress: Egress,
}

/// Clients kept at most; past that the map starts again (rotated credentials leave old entries behind).
const MAX_CLIENTS: usize = 256;

impl Default for Clients {
    /// Clients under the default egress rule (reserved ranges denied).
    fn default() -> Self {
        Self::new(Egress::default())
    }
}

impl Clients {
    /// Clients built under `egress`.
    pub fn new(egress: Egress) -> Self {
        Self { built: Mutex::default(), turns: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)), egress }
    }

    /// The client for an open Prometheus at `base`, built on first use (queries bounded by [`TIMEOUT`]).
    pub fn get(&self, base: &str) -> Result<Arc<Prometheus>> {
        self.get_with(base, Access::default())
    }

    /// The client for `base` reached with `access`, built on first use.
    pub fn get_with(&self, base: &str, access: Access) -> Result<Arc<Prometheus>> {
        let key = (base.to_string(), access.fingerprint());
        // A panic elsewhere while holding the lock leaves the map intact: keep using it.
        let mut map = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(&key) {
            return Ok(p.clone());
        }
        let mut p = Prometheus::reaching(base, TIMEOUT, access, &self.egress)?;
        p.turns = Some(self.turns.clone());
        let p = Arc::new(p);
        if map.len() >= MAX_CLIENTS {
            map.clear();
        }
        map.insert(key, p.clone());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_any_query() {
        for bad in ["not a url", "ftp://prometheus:9090", "http://", "http://p:9090/?x=1", "prometheus:9090"] {
            let built = Prometheus::new(bad, TIMEOUT);
            assert!(matches!(&built, Err(e @ Error::InvalidUrl { .. }) if e.category() == "input"), "{bad}: {built:?}");
        }
        let p = Prometheus::new("https://thanos.example/prometheus/", TIMEOUT).unwrap();
        assert_eq!((p.base.as_str(), p.at.as_str()), ("https://thanos.example/prometheus", "thanos.example:443"));
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
    async fn a_closed_port_is_a_refused_connection() {
        let prom = Prometheus::new("http://127.0.0.1:9/", Duration::from_millis(500)).unwrap();
        let answer = prom.query("up").await;
        assert_eq!(answer, Err(QueryError::Refused { at: "127.0.0.1:9".into() }));
    }

    #[tokio::test]
    async fn an_unknown_host_is_a_dns_failure() {
        // `.invalid` never resolves (RFC 6761).
        let prom = Prometheus::new("http://prometheus.invalid:9090", Duration::from_secs(5)).unwrap();
        let answer = prom.query("up").await;
        assert_eq!(answer, Err(QueryError::Dns { host: "prometheus.invalid".into() }));
    }

    #[tokio::test]
    async fn tls_to_a_plain_http_port_is_a_tls_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let prom = Prometheus::new(&format!("https://127.0.0.1:{port}"), Duration::from_secs(5)).unwrap();
        let answer = prom.query("up").await;
        assert!(matches!(&answer, Err(QueryError::Tls { .. })), "{answer:?}");
        let message = answer.unwrap_err().to_string();
        assert!(message.len() < 200 && !message.contains("query="), "{message}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and keeps the connections open without a byte: a black hole behind a live port.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let after = Duration::from_millis(300);
        let prom = Prometheus::new(&format!("http://127.0.0.1:{port}"), after).unwrap();
        assert_eq!(prom.query("up").await, Err(QueryError::Timeout { at: format!("127.0.0.1:{port}"), after }));
    }

    #[tokio::test]
    async fn every_client_of_one_cache_shares_its_turns() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        // Accepts and holds every connection without a byte.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let loopback = Egress::new(&[], &["127.0.0.0/8".into()], vec![]).unwrap();
        let clients = Clients::new(loopback);
        // Two tenants' clients (different credentials) of one server: one budget of turns.
        let a = clients.get(&format!("http://127.0.0.1:{port}")).unwrap();
        let header = Access { headers: vec![("X-Team".into(), "b".into())], ..Access::default() };
        let b = clients.get_with(&format!("http://127.0.0.1:{port}"), header).unwrap();
        let asking: Vec<_> = (0..IN_FLIGHT + 8)
            .map(|i| {
                let p = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { p.query("up").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), IN_FLIGHT, "the rest wait for a turn");
        asking.iter().for_each(tokio::task::JoinHandle::abort);
    }
}
