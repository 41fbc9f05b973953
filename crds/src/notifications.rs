//! `canary.notifications`: where a run's milestones are posted (chat incoming webhooks or any HTTP receiver).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// One receiver of a run's notifications.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTarget {
    /// The key of a Secret in the profile's namespace holding the webhook URL (a chat's incoming-webhook address
    /// carries its credential, so it is never written in the spec), e.g. `{name: slack, key: address}`.
    pub secret_ref: crate::SecretKeyRef,
    /// The body posted: `slack` (Slack's incoming-webhook JSON, also read by Mattermost and Rocket.Chat), `msteams`
    /// (an Office 365 connector card), or `generic` (the operator's own JSON: profile, event, reason, message,
    /// stage, weight and the latest analysis's checks).
    #[serde(default)]
    pub format: NotificationFormat,
    /// The milestones posted; empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub events: Vec<NotificationEvent>,
}

/// The body a receiver takes.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotificationFormat {
    #[default]
    Slack,
    Msteams,
    Generic,
}

/// A milestone of a run.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// A new template's run started (or was retried).
    Started,
    /// A stage passed (its analysis, or a `promote`); also the start of the promotion.
    StageAdvanced,
    /// A check failed, short of the failure limit.
    CheckFailed,
    /// The run rolled back (failed checks, an abort) or failed (its deadline).
    RolledBack,
    /// The new template was promoted.
    Succeeded,
}

impl NotificationEvent {
    pub const ALL: [NotificationEvent; 5] = [
        NotificationEvent::Started,
        NotificationEvent::StageAdvanced,
        NotificationEvent::CheckFailed,
        NotificationEvent::RolledBack,
        NotificationEvent::Succeeded,
    ];

    /// The milestone a canary event of `reason` is, if it is one.
    pub fn of_reason(reason: &str) -> Option<Self> {
        Some(match reason {
            "RunStarted" | "Retried" => NotificationEvent::Started,
            "StageAdvanced" | "StagePromoted" | "Promoting" => NotificationEvent::StageAdvanced,
            "CheckFailed" => NotificationEvent::CheckFailed,
            "RolledBack" | "Aborted" | "DeadlineExceeded" => NotificationEvent::RolledBack,
            "Promoted" => NotificationEvent::Succeeded,
            _ => return None,
        })
    }

    /// The name in the spec and in generic payloads.
    pub fn name(self) -> &'static str {
        match self {
            NotificationEvent::Started => "started",
            NotificationEvent::StageAdvanced => "stageAdvanced",
            NotificationEvent::CheckFailed => "checkFailed",
            NotificationEvent::RolledBack => "rolledBack",
            NotificationEvent::Succeeded => "succeeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_events_that_are_milestones() {
        let table = [
            ("RunStarted", Some(NotificationEvent::Started)),
            ("Retried", Some(NotificationEvent::Started)),
            ("StageAdvanced", Some(NotificationEvent::StageAdvanced)),
            ("StagePromoted", Some(NotificationEvent::StageAdvanced)),
            ("Promoting", Some(NotificationEvent::StageAdvanced)),
            ("CheckFailed", Some(NotificationEvent::CheckFailed)),
            ("RolledBack", Some(NotificationEvent::RolledBack)),
            ("Aborted", Some(NotificationEvent::RolledBack)),
            ("DeadlineExceeded", Some(NotificationEvent::RolledBack)),
            ("Promoted", Some(NotificationEvent::Succeeded)),
            ("Paused", None),
            ("Resumed", None),
            ("Initialized", None),
            ("UnknownCommand", None),
            ("RetryIgnored", None),
            ("AbortRefused", None),
            ("RunCancelled", None),
        ];
        for (reason, milestone) in table {
            assert_eq!(NotificationEvent::of_reason(reason), milestone, "{reason}");
        }
        let names: Vec<&str> = NotificationEvent::ALL.map(NotificationEvent::name).to_vec();
        let spelled: Vec<String> = NotificationEvent::ALL
            .iter()
            .map(|e| serde_json::to_value(e).unwrap().as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, spelled, "the spec's names and the payloads' agree");
    }
}
