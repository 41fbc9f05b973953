//! `kubectl perf canary get NAME [-w]`: one view of a run, as `kubectl argo rollouts get rollout` gives one: where it
//! is (phase, stage, weights wanted and achieved, failed checks, deadline), what each side runs (Deployment, image,
//! pods wanted and ready), the strategy, and the latest analyses check by check. Read from the profile and the two
//! Deployments; [`render`] is pure.

use crate::objects;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use perf_operator_api::{AnalysisRecord, CanaryPhase, CanaryStatus, CheckVerdict, PerformanceProfile};
use serde::Serialize;
use std::fmt::Write;

/// Everything `get` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    pub name: String,
    pub namespace: String,
    pub target: String,
    /// e.g. `10 → 25 → 50 → 100, step 1m, deadline 10m, replica ratio`.
    pub strategy: String,
    /// `spec.suspend`: the run stands still until the profile is resumed.
    pub suspended: bool,
    pub status: CanaryStatus,
    pub primary: Side,
    pub canary: Side,
}

/// One side of the run: its Deployment as the API server holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    pub deployment: String,
    /// False when the Deployment does not exist (yet).
    pub exists: bool,
    /// Images of its pod template, in container order.
    pub images: Vec<String>,
    pub replicas: i32,
    pub ready: i32,
}

impl Side {
    /// The side `deployment` describes (None: not found).
    pub fn of(name: String, deployment: Option<&Deployment>) -> Self {
        let Some(d) = deployment else { return Side { deployment: name, ..Side::default() } };
        let spec = d.spec.as_ref();
        let images = spec
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| p.containers.iter().filter_map(|c| c.image.clone()).collect())
            .unwrap_or_default();
        Side {
            deployment: name,
            exists: true,
            images,
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            ready: d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        }
    }
}

impl View {
    /// The view of `profile` with its two Deployments (read by the caller).
    pub fn of(profile: &PerformanceProfile, primary: Option<&Deployment>, canary: Option<&Deployment>) -> Self {
        let target = profile.spec.target_ref.name.clone();
        let strategy = match &profile.spec.canary {
            Some(spec) => {
                let stages: Vec<String> = spec.stages.iter().map(u32::to_string).collect();
                let routing = match &spec.routing.http_route {
                    Some(route) => format!("HTTPRoute {}", route.name),
                    None => "replica ratio".into(),
                };
                format!(
                    "{}, step {}, deadline {}, {routing}, rollback after {} failed checks",
                    stages.join(" → "),
                    spec.step_interval,
                    spec.progress_deadline,
                    spec.analysis.failure_limit
                )
            }
            None => "no canary section".into(),
        };
        View {
            name: profile.metadata.name.clone().unwrap_or_default(),
            namespace: profile.metadata.namespace.clone().unwrap_or_default(),
            strategy,
            suspended: profile.spec.suspend,
            status: profile.status.as_ref().and_then(|s| s.canary.clone()).unwrap_or_default(),
            primary: Side::of(objects::primary_name(&target), primary),
            canary: Side::of(objects::canary_name(&target), canary),
            target,
        }
    }

    /// True once the run needs nothing more (no run, or one that ended).
    pub fn settled(&self) -> bool {
        settled(self.status.phase)
    }
}

/// True for a phase nothing more happens in until a new template: a watch may stop.
pub fn settled(phase: CanaryPhase) -> bool {
    !matches!(phase, CanaryPhase::Initializing | CanaryPhase::Waiting) && !crate::machine::is_active(phase)
}

/// The view as text, at `now` (for the deadline), with at most `analyses` analyses.
pub fn render(view: &View, now: Timestamp, analyses: usize) -> String {
    let s = &view.status;
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    };
    line("Name", format!("{} (namespace {}, target {})", view.name, view.namespace, view.target));
    let paused = if s.paused { " (paused)" } else { "" };
    let suspended = if view.suspended { " (profile suspended: spec.suspend)" } else { "" };
    line("Status", format!("{:?}{paused}{suspended}", s.phase));
    if let Some(message) = &s.message {
        line("Message", message.clone());
    }
    line("Strategy", view.strategy.clone());
    let mut stage = s.stage.clone().unwrap_or_else(|| "-".into());
    stage.push_str(&format!("  weight {}%", s.weight));
    if let Some(achieved) = s.achieved_weight {
        stage.push_str(&format!(" (achieved {achieved}%)"));
    }
    stage.push_str(&format!("  failed checks {}", s.failed_checks));
    if let Some(deadline) = &s.deadline {
        stage.push_str(&format!("  deadline in {}s", deadline.0.duration_since(now).as_secs().max(0)));
    }
    line("Stage", stage);
    line("Run", format!("{} (stable {})", short(s.run_id.as_deref()), short(s.stable_id.as_deref())));
    if let Some(gate) = s.gate {
        line("Gate", format!("held by its {} webhooks", gate.name()));
    }
    if let Some(command) = &s.last_command {
        line("Last command", command.clone());
    }
    let _ = writeln!(out, "\n{:<9}{:<28}{:>9}  IMAGE", "SIDE", "DEPLOYMENT", "READY");
    for (role, side) in [("primary", &view.primary), ("canary", &view.canary)] {
        let ready = if side.exists { format!("{}/{}", side.ready, side.replicas) } else { "absent".into() };
        let images = if side.images.is_empty() { "-".into() } else { side.images.join(", ") };
        let _ = writeln!(out, "{role:<9}{:<28}{ready:>9}  {images}", side.deployment);
    }
    if !s.hooks.is_empty() {
        let _ = writeln!(out, "\n{:<26}{:<26}{:<8}RESULT", "WEBHOOK", "TYPE", "AT");
    }
    for h in &s.hooks {
        let at = h.at.as_ref().map_or_else(|| "-".into(), |t| ago(t.0, now));
        let result = if h.succeeded {
            format!("ok ({})", h.status_code.unwrap_or(200))
        } else {
            format!("failed: {}", h.message.as_deref().unwrap_or("-"))
        };
        let _ = writeln!(out, "{:<26}{:<26}{at:<8}{result}", h.name, h.kind.name());
    }
    if !s.analyses.is_empty() {
        let _ = writeln!(out, "\nANALYSES (newest first)");
    }
    for record in s.analyses.iter().take(analyses) {
        analysis(&mut out, record);
    }
    out
}

fn analysis(out: &mut String, record: &AnalysisRecord) {
    let at = record.at.as_ref().map_or_else(|| "-".to_string(), |t| t.0.strftime("%H:%M:%S").to_string());
    let _ =
        writeln!(out, "{at}  stage {} weight {}%  {}", record.stage_index + 1, record.weight, verdict(record.verdict));
    for check in &record.checks {
        let value = check.value.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let _ = writeln!(out, "  {:<16}{value:>14}  {:<22}{}", check.name, check.threshold, verdict(check.verdict));
        if let Some(reason) = &check.reason {
            let _ = writeln!(out, "    {reason}");
        }
    }
}

fn verdict(v: CheckVerdict) -> &'static str {
    match v {
        CheckVerdict::Pass => "pass",
        CheckVerdict::Fail => "FAIL",
        CheckVerdict::NoData => "no data",
    }
}

/// How long before `now`, e.g. `42s`, `3m`, `2h`.
fn ago(at: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(at).as_secs().max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// The first 12 characters of a template hash, or `-`.
fn short(id: Option<&str>) -> String {
    id.map_or_else(|| "-".into(), |id| id.chars().take(12).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use perf_operator_api::CheckRecord;
    use serde_json::json;

    fn deployment(image: &str, replicas: i32, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"replicas": replicas, "selector": {}, "template": {"spec": {"containers": [
                {"name": "app", "image": image}, {"name": "sidecar", "image": "envoy:1"}]}}},
            "status": {"readyReplicas": ready}
        }))
        .unwrap()
    }

    fn profile(status: serde_json::Value) -> PerformanceProfile {
        serde_json::from_value(json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"targetRef": {"name": "web"}, "canary": {"stepInterval": "30s",
                     "routing": {"httpRoute": {"name": "web", "port": 80}}}},
            "status": {"canary": status}
        }))
        .unwrap()
    }

    #[test]
    fn a_run_shows_its_stage_both_sides_and_its_analyses_check_by_check() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut p = profile(json!({"phase": "Progressing", "stage": "2/4", "stageIndex": 1, "weight": 25,
            "achievedWeight": 25, "failedChecks": 1, "paused": true, "runId": "abcdef0123456789",
            "stableId": "0123456789abcdef", "lastCommand": "pause@x", "message": "paused by command"}));
        let status = p.status.as_mut().unwrap().canary.as_mut().unwrap();
        status.deadline = Some(Time(now + jiff::SignedDuration::from_secs(90)));
        status.analyses = vec![AnalysisRecord {
            at: Some(Time(now)),
            stage_index: 0,
            weight: 10,
            verdict: CheckVerdict::Fail,
            checks: vec![CheckRecord {
                name: "p99-latency".into(),
                value: Some(212.5),
                threshold: "< 150 ms".into(),
                verdict: CheckVerdict::Fail,
                reason: None,
            }],
        }];
        let view = View::of(&p, Some(&deployment("web:1", 3, 3)), Some(&deployment("web:2", 1, 0)));
        let text = render(&view, now, 5);
        for expected in [
            "Name:         web (namespace shop, target web)",
            "Status:       Progressing (paused)",
            "Message:      paused by command",
            "Strategy:     10 → 25 → 50 → 100, step 30s, deadline 10m, HTTPRoute web, rollback after 2 failed checks",
            "Stage:        2/4  weight 25% (achieved 25%)  failed checks 1  deadline in 90s",
            "Run:          abcdef012345 (stable 0123456789ab)",
            "primary  web-primary                       3/3  web:1, envoy:1",
            "canary   web-canary                        0/1  web:2, envoy:1",
            "stage 1 weight 10%  FAIL",
            "  p99-latency           212.5000  < 150 ms              FAIL",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert!(!view.settled());
    }

    #[test]
    fn a_profile_without_a_run_or_deployments_says_so() {
        let p = profile(json!(null));
        let view = View::of(&p, None, None);
        let text = render(&view, Timestamp::UNIX_EPOCH, 5);
        assert!(text.contains("Status:       Idle\n") && text.contains("Run:          - (stable -)"), "{text}");
        assert!(text.contains("canary   web-canary                     absent  -"), "{text}");
        assert!(!text.contains("ANALYSES") && !text.contains("Message:"), "{text}");
        assert!(view.settled());
        let mut suspended = p.clone();
        suspended.spec.suspend = true;
        let text = render(&View::of(&suspended, None, None), Timestamp::UNIX_EPOCH, 5);
        assert!(text.contains("Status:       Idle (profile suspended: spec.suspend)\n"), "{text}");
    }

    #[test]
    fn webhook_results_and_a_held_gate_are_shown() {
        use perf_operator_api::{HookRecord, HookType};
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut p = profile(json!({"phase": "Progressing", "stage": "4/4", "stageIndex": 3, "weight": 100,
            "gate": "confirm-promotion"}));
        let status = p.status.as_mut().unwrap().canary.as_mut().unwrap();
        let at = |secs: i64| Some(Time(now - jiff::SignedDuration::from_secs(secs)));
        status.hooks = vec![
            HookRecord {
                name: "load".into(),
                kind: HookType::Rollout,
                at: at(4),
                succeeded: true,
                status_code: Some(202),
                message: None,
            },
            HookRecord {
                name: "approve".into(),
                kind: HookType::ConfirmPromotion,
                at: at(300),
                succeeded: false,
                status_code: Some(403),
                message: Some("HTTP 403: Forbidden".into()),
            },
        ];
        let text = render(&View::of(&p, None, None), now, 5);
        for expected in [
            "Gate:         held by its confirm-promotion webhooks",
            "load                      rollout                   4s      ok (202)",
            "approve                   confirm-promotion         5m      failed: HTTP 403: Forbidden",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        let waiting = profile(json!({"phase": "Waiting", "gate": "confirm-rollout"}));
        assert!(!View::of(&waiting, None, None).settled(), "a watch goes on while a gate holds the run");
    }
}
