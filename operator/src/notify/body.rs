//! What a notification says, in each format. Pure: [`Notice`] in, JSON body out.

use perf_operator_api::{CheckRecord, CheckVerdict, NotificationEvent, NotificationFormat};
use serde::Serialize;
use serde_json::{Value, json};

/// One milestone of a run, with the values that explain it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub namespace: String,
    pub profile: String,
    pub target: String,
    #[serde(serialize_with = "event_name")]
    pub event: NotificationEvent,
    /// The canary event's reason, e.g. `RolledBack`, `Aborted`, `StagePromoted`.
    pub reason: String,
    pub message: String,
    pub phase: String,
    pub stage: Option<String>,
    pub weight: u32,
    pub failed_checks: u32,
    /// The latest analysis's checks, for a failed check or a rollback.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// Earlier notices of this profile the rate limit dropped.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u32,
}

fn event_name<S: serde::Serializer>(event: &NotificationEvent, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(event.name())
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Notice {
    /// e.g. `shop/checkout: rolled back`.
    fn title(&self) -> String {
        let what = match self.event {
            NotificationEvent::Started => "canary run started",
            NotificationEvent::StageAdvanced => "stage advanced",
            NotificationEvent::CheckFailed => "check failed",
            NotificationEvent::RolledBack => "rolled back",
            NotificationEvent::Succeeded => "promoted",
        };
        format!("{}/{}: {what}", self.namespace, self.profile)
    }

    /// The message, the checks that did not pass with their values, and what the rate limit dropped.
    fn text(&self) -> String {
        let mut text = self.message.clone();
        for check in self.checks.iter().filter(|c| c.verdict != CheckVerdict::Pass) {
            let value = check.value.map_or_else(|| "no value".to_string(), |v| format!("{v}"));
            text.push_str(&format!("\n• {}: {value} (wanted {})", check.name, check.threshold));
            if let Some(reason) = &check.reason {
                text.push_str(&format!(": {reason}"));
            }
        }
        if self.dropped > 0 {
            text.push_str(&format!("\n({} earlier notifications dropped by the rate limit)", self.dropped));
        }
        text
    }

    /// Good, warning or danger, as chat colours.
    fn colour(&self) -> &'static str {
        match self.event {
            NotificationEvent::Started | NotificationEvent::StageAdvanced => "#2f81f7",
            NotificationEvent::Succeeded => "good",
            NotificationEvent::CheckFailed => "warning",
            NotificationEvent::RolledBack => "danger",
        }
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Target", self.target.clone()),
            ("Phase", self.phase.clone()),
            ("Stage", self.stage.clone().unwrap_or_else(|| "-".into())),
            ("Weight", format!("{}%", self.weight)),
            ("Failed checks", self.failed_checks.to_string()),
        ]
    }
}

/// The body posted for `notice` in `format`.
pub fn body(format: NotificationFormat, notice: &Notice) -> Value {
    match format {
        NotificationFormat::Slack => slack(notice),
        NotificationFormat::Msteams => teams(notice),
        NotificationFormat::Generic => serde_json::to_value(notice).unwrap_or(Value::Null),
    }
}

/// Slack's incoming-webhook message: a fallback `text` and one attachment with the facts.
fn slack(n: &Notice) -> Value {
    let fields: Vec<Value> =
        n.facts().into_iter().map(|(title, value)| json!({"title": title, "value": value, "short": true})).collect();
    json!({
        "username": "perf-operator",
        "text": n.title(),
        "attachments": [{
            "color": n.colour(),
            "title": n.title(),
            "text": n.text(),
            "fields": fields,
            "footer": format!("reason {}", n.reason),
        }],
    })
}

/// An Office 365 connector card, which Teams incoming webhooks take.
fn teams(n: &Notice) -> Value {
    let facts: Vec<Value> = n.facts().into_iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
    let colour = match n.event {
        NotificationEvent::RolledBack => "d73a49",
        NotificationEvent::CheckFailed => "dbab09",
        NotificationEvent::Succeeded => "28a745",
        _ => "2f81f7",
    };
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": colour,
        "summary": n.title(),
        "sections": [{"activityTitle": n.title(), "activitySubtitle": format!("reason {}", n.reason), "text": n.text(), "facts": facts}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: NotificationEvent) -> Notice {
        Notice {
            namespace: "shop".into(),
            profile: "checkout".into(),
            target: "checkout".into(),
            event,
            reason: "RolledBack".into(),
            message: "2/2 failed checks, last: p99-latency".into(),
            phase: "RolledBack".into(),
            stage: Some("2/4".into()),
            weight: 0,
            failed_checks: 2,
            checks: vec![
                CheckRecord {
                    name: "p99-latency".into(),
                    value: Some(212.5),
                    threshold: "< 150 ms".into(),
                    verdict: CheckVerdict::Fail,
                    reason: None,
                },
                CheckRecord {
                    name: "error-rate".into(),
                    value: Some(0.0),
                    threshold: "< 0.1 %".into(),
                    verdict: CheckVerdict::Pass,
                    reason: None,
                },
            ],
            dropped: 3,
        }
    }

    #[test]
    fn each_format_carries_the_reason_and_the_values() {
        let n = notice(NotificationEvent::RolledBack);
        let text = "2/2 failed checks, last: p99-latency\n• p99-latency: 212.5 (wanted < 150 ms)\n(3 earlier notifications dropped by the rate limit)";
        let slack = body(NotificationFormat::Slack, &n);
        assert_eq!(slack["text"], "shop/checkout: rolled back");
        assert_eq!(slack["attachments"][0]["text"], text);
        assert_eq!(slack["attachments"][0]["color"], "danger");
        assert_eq!(slack["attachments"][0]["fields"][2], json!({"title": "Stage", "value": "2/4", "short": true}));
        assert_eq!(slack["attachments"][0]["footer"], "reason RolledBack");
        let teams = body(NotificationFormat::Msteams, &n);
        assert_eq!(
            (teams["@type"].as_str(), teams["summary"].as_str()),
            (Some("MessageCard"), Some("shop/checkout: rolled back"))
        );
        assert_eq!(teams["sections"][0]["text"], text);
        assert_eq!(teams["sections"][0]["facts"][3], json!({"name": "Weight", "value": "0%"}));
        let generic = body(NotificationFormat::Generic, &n);
        assert_eq!(generic["event"], "rolledBack");
        assert_eq!(generic["checks"][0]["value"], 212.5);
        assert_eq!(generic["dropped"], 3);
        assert_eq!(generic["failedChecks"], 2);
        // The message passes checks that passed and what was not dropped over.
        let quiet = Notice { checks: Vec::new(), dropped: 0, ..notice(NotificationEvent::Succeeded) };
        assert_eq!(
            body(NotificationFormat::Slack, &quiet)["attachments"][0]["text"],
            "2/2 failed checks, last: p99-latency"
        );
        assert!(body(NotificationFormat::Generic, &quiet).get("dropped").is_none());
    }
}
