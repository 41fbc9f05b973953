//! Canary notifications: a run's milestones (started, stage advanced, check failed, rolled back, succeeded) posted
//! to the receivers a profile names (`canary.notifications`, the webhook URL in a Secret of its namespace) and to the
//! operator's cluster-wide one (`--notification-url-file`). Each is a POST with a short deadline, sent after the step
//! that made it is applied; a receiver that fails is reported as a Warning event on the profile, never in status
//! (the URL is a credential and is never shown). A profile sends at most [`QUOTA`] notices: past it they are dropped
//! and counted, and the next one sent says how many.

pub mod body;
pub mod hooks;

pub use body::{Notice, body};

use crate::controller::nonzero;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use perf_egress::{Egress, Kind};
use perf_operator_api::{NotificationEvent, NotificationFormat, NotificationTarget, PerformanceProfile};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// How long one receiver may take to answer.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Notices per profile: 10 at once, then one every 6 s.
pub const QUOTA: Quota = Quota::per_minute(nonzero(10)).allow_burst(nonzero(10));
/// Largest URL file read.
const MAX_URL_BYTES: u64 = 4096;

/// The operator's cluster-wide receiver: a file holding the URL (a mounted Secret, read at each notice so a
/// rotation applies) and its format.
#[derive(Clone, Debug)]
pub struct ClusterReceiver {
    pub url_file: PathBuf,
    pub format: NotificationFormat,
}

/// Why a receiver got nothing; never holds the URL.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error("Secret {namespace}/{name} {problem}")]
    Secret { namespace: String, name: String, problem: String },
    #[error("the webhook URL of {source_name} is not an http or https URL")]
    NotUrl { source_name: String },
    #[error("{source_name}: {reason}")]
    Refused { source_name: String, reason: String },
    #[error("{source_name}: HTTP {status}")]
    Status { source_name: String, status: u16 },
    #[error("{source_name}: {reason}")]
    Unreachable { source_name: String, reason: String },
}

/// Sends notices; one per process.
pub struct Notifier {
    client: reqwest::Client,
    egress: Egress,
    limiter: DefaultKeyedRateLimiter<String>,
    dropped: Mutex<HashMap<String, u32>>,
    cluster: Option<ClusterReceiver>,
}

/// Where one notice goes.
struct Receiver {
    url: reqwest::Url,
    format: NotificationFormat,
    /// e.g. `Secret shop/slack key address`, for messages.
    name: String,
    /// The tenant's: held to the administrator's allow-list.
    tenant: bool,
}

impl Notifier {
    /// A notifier reaching only what `egress` lets notifications reach; redirects are not followed.
    pub fn new(egress: Egress, cluster: Option<ClusterReceiver>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(DEADLINE)
            .connect_timeout(DEADLINE)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(perf_egress::http::Screened::new(egress.clone(), Kind::Notification))
            .user_agent("perf-operator")
            .build()?;
        Ok(Self { client, egress, limiter: RateLimiter::keyed(QUOTA), dropped: Mutex::default(), cluster })
    }

    /// Posts each of `notices` (one profile's, in order) to every receiver that wants it; returns what failed, for
    /// the caller to report. A notice past the profile's quota is dropped and counted.
    pub async fn send(&self, kube: &kube::Client, profile: &PerformanceProfile, notices: Vec<Notice>) -> Vec<Failed> {
        let targets = profile.spec.canary.as_ref().map(|c| c.notifications.as_slice()).unwrap_or_default();
        if notices.is_empty() || (targets.is_empty() && self.cluster.is_none()) {
            return Vec::new();
        }
        let namespace = profile.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{namespace}/{}", profile.metadata.name.clone().unwrap_or_default());
        let mut failed = Vec::new();
        let receivers = self.receivers(kube, &namespace, targets, &mut failed).await;
        for mut notice in notices {
            let wanted: Vec<&(Receiver, Vec<NotificationEvent>)> =
                receivers.iter().filter(|(_, events)| events.is_empty() || events.contains(&notice.event)).collect();
            if wanted.is_empty() {
                continue;
            }
            if self.limiter.check_key(&key).is_err() {
                *self.lock().entry(key.clone()).or_default() += 1;
                continue;
            }
            notice.dropped = self.lock().remove(&key).unwrap_or(0);
            let sent = futures::future::join_all(wanted.iter().map(|(r, _)| self.post(r, &notice))).await;
            failed.extend(sent.into_iter().filter_map(Result::err));
        }
        failed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.dropped.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The profile's receivers (URLs read from their Secrets) and the cluster's, with the events each wants.
    async fn receivers(
        &self,
        kube: &kube::Client,
        namespace: &str,
        targets: &[NotificationTarget],
        failed: &mut Vec<Failed>,
    ) -> Vec<(Receiver, Vec<NotificationEvent>)> {
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
        let mut out = Vec::new();
        for t in targets {
            let r = &t.secret_ref;
            let name = format!("Secret {namespace}/{} key {}", r.name, r.key);
            let problem =
                |problem: String| Failed::Secret { namespace: namespace.into(), name: r.name.clone(), problem };
            let text = match secrets.get_opt(&r.name).await {
                Ok(Some(secret)) => secret.data.and_then(|d| d.get(&r.key).cloned()).map(|v| v.0),
                Ok(None) => {
                    failed.push(problem("not found".into()));
                    continue;
                }
                Err(e) => {
                    failed.push(problem(format!("could not be read: {e}")));
                    continue;
                }
            };
            let Some(bytes) = text else {
                failed.push(problem(format!("has no key {:?}", r.key)));
                continue;
            };
            match url(&bytes, &name) {
                Ok(url) => out.push((Receiver { url, format: t.format, name, tenant: true }, t.events.clone())),
                Err(e) => failed.push(e),
            }
        }
        if let Some(cluster) = &self.cluster {
            let name = format!("the operator's receiver ({})", cluster.url_file.display());
            match read_capped(&cluster.url_file)
                .map_err(|reason| Failed::Unreachable { source_name: name.clone(), reason })
            {
                Ok(bytes) => match url(&bytes, &name) {
                    Ok(url) => out.push((Receiver { url, format: cluster.format, name, tenant: false }, Vec::new())),
                    Err(e) => failed.push(e),
                },
                Err(e) => failed.push(e),
            }
        }
        out
    }

    async fn post(&self, receiver: &Receiver, notice: &Notice) -> Result<(), Failed> {
        let source_name = receiver.name.clone();
        let host = receiver.url.host_str().unwrap_or_default();
        if receiver.tenant
            && let Err(refusal) = self.egress.check(Kind::Notification, &notice.namespace, host)
        {
            return Err(Failed::Refused { source_name, reason: refusal.to_string() });
        }
        if let Err(refusal) = perf_egress::http::literal(&self.egress, Kind::Notification, &receiver.url) {
            return Err(Failed::Refused { source_name, reason: refusal.to_string() });
        }
        let json = serde_json::to_vec(&body(receiver.format, notice)).unwrap_or_default();
        let request =
            self.client.post(receiver.url.clone()).header(reqwest::header::CONTENT_TYPE, "application/json").body(json);
        // Without the URL: reqwest's errors name it, and it is a credential.
        let response = request.send().await.map_err(|e| Failed::Unreachable {
            source_name: source_name.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(Failed::Status { source_name, status: status.as_u16() }) }
    }
}

/// The URL in a Secret's value or a file (trimmed): http or https only.
fn url(bytes: &[u8], source_name: &str) -> Result<reqwest::Url, Failed> {
    let not_url = || Failed::NotUrl { source_name: source_name.to_string() };
    let text = std::str::from_utf8(bytes).map_err(|_| not_url())?.trim();
    let url = reqwest::Url::parse(text).map_err(|_| not_url())?;
    if matches!(url.scheme(), "http" | "https") && url.has_host() { Ok(url) } else { Err(not_url()) }
}

fn read_capped(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the URL file: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_URL_BYTES).read_to_end(&mut bytes).map_err(|e| format!("cannot read the URL file: {e}"))?;
    Ok(bytes)
}

/// The notices of a step's events: one per milestone, with the step's status and latest analysis.
pub fn notices(profile: &PerformanceProfile, step: &perf_canary::Step) -> Vec<Notice> {
    let s = &step.status;
    step.events
        .iter()
        .filter_map(|event| {
            let milestone = NotificationEvent::of_reason(event.reason)?;
            let explained = matches!(milestone, NotificationEvent::CheckFailed | NotificationEvent::RolledBack);
            let checks =
                if explained { s.analyses.first().map(|a| a.checks.clone()).unwrap_or_default() } else { Vec::new() };
            Some(Notice {
                namespace: profile.metadata.namespace.clone().unwrap_or_default(),
                profile: profile.metadata.name.clone().unwrap_or_default(),
                target: profile.spec.target_ref.name.clone(),
                event: milestone,
                reason: event.reason.to_string(),
                message: event.message.clone(),
                phase: format!("{:?}", s.phase),
                stage: s.stage.clone(),
                weight: s.weight,
                failed_checks: s.failed_checks,
                checks,
                dropped: 0,
            })
        })
        .collect()
}
