//! The run's webhooks over HTTP (`canary.analysis.webhooks`, Flagger's contract): a POST of the payload to the
//! tenant's URL, held to the administrator's egress allow-list for `hook` (by name before the call, by address as
//! it connects), no redirects followed, within the hook's timeout, reading at most [`MAX_BODY`] bytes of the answer.
//! The hooks sent after a step (`post-rollout`, `event`) share the notifications' per-profile quota.

use super::QUOTA;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use perf_canary::hooks::{HookAnswer, HookCall, HookCaller, run_chain};
use perf_egress::{Egress, Kind};
use perf_operator_api::{HookRecord, PerformanceProfile};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The most of a receiver's answer read (for the message kept in status).
pub const MAX_BODY: usize = 512;

/// Sends the webhooks of every profile; one per process.
pub struct HookSender {
    client: reqwest::Client,
    egress: Egress,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// The sender on behalf of one namespace's profile.
pub struct TenantHooks<'a> {
    sender: &'a HookSender,
    namespace: String,
}

impl HookSender {
    pub fn new(egress: Egress) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(perf_egress::http::Screened::new(egress.clone(), Kind::Hook))
            .user_agent("perf-operator")
            .build()?;
        Ok(Self { client, egress, limiter: RateLimiter::keyed(QUOTA) })
    }

    /// The caller for a profile of `namespace`.
    pub fn tenant(&self, namespace: &str) -> TenantHooks<'_> {
        TenantHooks { sender: self, namespace: namespace.to_string() }
    }

    /// Sends a step's after-hooks (in order) within the profile's quota; returns the records of those that failed.
    /// Calls past the quota are dropped: they report what already happened, and the Events hold the same.
    pub async fn send_after(&self, profile: &PerformanceProfile, calls: &[HookCall]) -> Vec<HookRecord> {
        let namespace = profile.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{namespace}/{}", profile.metadata.name.clone().unwrap_or_default());
        let allowed: Vec<HookCall> = calls.iter().filter(|_| self.limiter.check_key(&key).is_ok()).cloned().collect();
        let records = run_chain(&self.tenant(&namespace), &allowed, jiff::Timestamp::now()).await;
        records.into_iter().filter(|r| !r.succeeded).collect()
    }
}

impl HookCaller for TenantHooks<'_> {
    fn call<'a>(&'a self, call: &'a HookCall) -> Pin<Box<dyn Future<Output = Result<HookAnswer, String>> + Send + 'a>> {
        Box::pin(self.post(call))
    }
}

impl TenantHooks<'_> {
    async fn post(&self, call: &HookCall) -> Result<HookAnswer, String> {
        let egress = &self.sender.egress;
        let url = reqwest::Url::parse(&call.url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err("not an http or https URL".into());
        }
        let host = url.host_str().unwrap_or_default();
        egress.check(Kind::Hook, &self.namespace, host).map_err(|refusal| refusal.to_string())?;
        perf_egress::http::literal(egress, Kind::Hook, &url).map_err(|refusal| refusal.to_string())?;
        let body = serde_json::to_vec(&call.payload).map_err(|e| format!("cannot encode the payload: {e}"))?;
        let request = self
            .sender
            .client
            .post(url)
            .timeout(call.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let mut response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let mut text = Vec::new();
        while text.len() < MAX_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - text.len())]),
                // The status is the answer; a body cut short only shortens the message.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(HookAnswer { status, body: String::from_utf8_lossy(&text).into_owned() })
    }
}

/// Why a call got no answer, without the URL (it is in the spec, and the record names the hook).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirected (redirects are not followed)"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { kind.to_string() } else { format!("{kind}: {cause}") }
}
