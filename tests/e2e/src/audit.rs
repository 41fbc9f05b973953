//! The API server's audit log (`--audit-log-path`, JSON lines, level Metadata): the ground truth of who wrote
//! what. A window starts at the log's current end, so only requests made after it are counted.

use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// One audit event, the fields the tests read.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub stage: String,
    pub verb: String,
    pub user: User,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    #[serde(default)]
    pub request_u_r_i: String,
    /// When the server answered (RFC 3339, microseconds).
    #[serde(default)]
    pub stage_timestamp: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl User {
    /// The id of the ServiceAccount token used (`JTI=<jti>` in the audit log).
    pub fn credential_id(&self) -> Option<&str> {
        self.extra.get("authentication.kubernetes.io/credential-id")?.first()?.strip_prefix("JTI=")
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub subresource: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: u16,
}

impl Event {
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }
    /// When the server answered.
    pub fn at(&self) -> Option<jiff::Timestamp> {
        self.stage_timestamp.as_deref()?.parse().ok()
    }
    pub fn namespace(&self) -> &str {
        self.object_ref.as_ref().map_or("", |o| o.namespace.as_str())
    }
    /// `verb resource[/subresource] name -> code`, for failure messages.
    pub fn describe(&self) -> String {
        let o = self.object_ref.clone().unwrap_or_default();
        let sub = if o.subresource.is_empty() { String::new() } else { format!("/{}", o.subresource) };
        let code = self.response_status.as_ref().map_or(0, |s| s.code);
        format!("{} {}{} {} -> {}", self.verb, o.resource, sub, o.name, code)
    }
}

/// Where the audit log is, when the cluster has one (ours does; a user's kind cluster may not).
pub fn log_path() -> Option<PathBuf> {
    std::env::var_os("PERF_AUDIT_LOG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A window of the audit log from the moment it was opened.
pub struct Window {
    path: PathBuf,
    start: u64,
}

impl Window {
    /// Opens a window at the log's current end; None when there is no audit log.
    pub fn open() -> Option<Self> {
        let path = log_path()?;
        let start = std::fs::metadata(&path).map(|m| m.len()).expect("audit log readable");
        Some(Self { path, start })
    }

    /// Completed requests since the window opened.
    pub fn events(&self) -> Vec<Event> {
        let mut file = std::fs::File::open(&self.path).expect("audit log");
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        assert!(
            len >= self.start,
            "the audit log was rotated under the window: start it with a larger --audit-log-maxsize"
        );
        file.seek(SeekFrom::Start(self.start)).expect("seek audit log");
        let mut text = String::new();
        file.read_to_string(&mut text).expect("read audit log");
        text.lines()
            .filter_map(|l| serde_json::from_str::<Event>(l).ok())
            .filter(|e| e.stage == "ResponseComplete")
            .collect()
    }

    /// Writes by `user` to objects in `namespace` since the window opened (requests the server answered,
    /// refused ones included: a refused write is still a write attempt).
    pub fn writes(&self, user: &str, namespace: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.user.username == user && e.namespace() == namespace && e.is_write())
            .collect()
    }

    /// Writes made with one token (one operator process), anywhere, since the window opened.
    pub fn writes_by_credential(&self, credential_id: &str) -> Vec<Event> {
        self.events().into_iter().filter(|e| e.user.credential_id() == Some(credential_id) && e.is_write()).collect()
    }

    /// Requests other than watches made with one token (one operator process), since the window opened.
    pub fn requests_by_credential(&self, credential_id: &str) -> Vec<Event> {
        let events = self.events().into_iter();
        events.filter(|e| e.user.credential_id() == Some(credential_id) && e.verb != "watch").collect()
    }

    /// All requests by `user` since the window opened.
    pub fn requests(&self, user: &str) -> Vec<Event> {
        self.events().into_iter().filter(|e| e.user.username == user).collect()
    }
}
