//! Webhooks: Flagger's payload, placeholders, which hooks a round calls, and the machine acting on the answers
//! through a whole run (gates hold, rollout hooks count as checks, pre-rollout and rollback, confirm-rollout waits).

use super::*;
use crate::analysis::{QueryContext, checks, evaluate};
use crate::machine::{Observed, Timing, Workload, step};
use jiff::SignedDuration;
use perf_operator_api::{Hook, HttpRouteRef, Slo};
use serde_json::json;
use std::sync::Mutex;

fn hook(name: &str, kind: HookType, url: &str) -> Hook {
    Hook { name: name.into(), kind, url: url.into(), timeout: None, metadata: BTreeMap::new() }
}

fn ctx(routing: &RoutingSpec) -> HookContext<'_> {
    HookContext { profile: "web-profile", namespace: "shop", target: "web", routing }
}

#[test]
fn the_payload_is_flaggers_with_metadata_passed_through_and_placeholders_rendered() {
    let mut spec = CanarySpec::default();
    spec.routing.canary_port = Some(8080);
    let mut load = hook("load", HookType::Rollout, "http://flagger-loadtester.{{namespace}}/");
    load.metadata.insert("type".into(), "cmd".into());
    load.metadata.insert("cmd".into(), "hey -z 1m -q 10 -c 2 http://{{canaryAddress}}/ # {{target}} {{canary}}".into());
    load.timeout = Some("15s".into());
    spec.analysis.webhooks = vec![load, hook("other", HookType::PreRollout, "http://x/")];
    let status = CanaryStatus { phase: CanaryPhase::Progressing, ..CanaryStatus::default() };
    let calls = calls(&spec, HookType::Rollout, &ctx(&spec.routing), &status, "abc123");
    assert_eq!(calls.len(), 1, "only the hooks of the type");
    let call = &calls[0];
    assert_eq!((call.url.as_str(), call.timeout), ("http://flagger-loadtester.shop/", Duration::from_secs(15)));
    // Flagger's CanaryWebhookPayload, field for field (docs: "name, namespace, phase, checksum, metadata").
    let golden = json!({
        "name": "web-profile",
        "namespace": "shop",
        "phase": "Progressing",
        "checksum": "abc123",
        "metadata": {"type": "cmd", "cmd": "hey -z 1m -q 10 -c 2 http://web-canary.shop.svc:8080/ # web web-canary"}
    });
    assert_eq!(serde_json::to_value(&call.payload).unwrap(), golden);
    let bare = calls_of_kind(&spec, HookType::PreRollout);
    assert_eq!(serde_json::to_value(&bare[0].payload).unwrap().get("metadata"), None, "no metadata: left out");
}

fn calls_of_kind(spec: &CanarySpec, kind: HookType) -> Vec<HookCall> {
    calls(spec, kind, &ctx(&spec.routing), &CanaryStatus::default(), "r")
}

#[test]
fn addresses_follow_the_routing_and_the_default_timeout_is_flaggers() {
    let by_route = RoutingSpec { http_route: Some(HttpRouteRef { name: "web".into(), port: 80 }), canary_port: None };
    let c = ctx(&by_route);
    assert_eq!(c.render("{{canaryAddress}} {{primaryAddress}}"), "web-canary.shop.svc:80 web-primary.shop.svc:80");
    let none = RoutingSpec::default();
    assert_eq!(
        ctx(&none).render("{{canaryAddress}}"),
        "{{canaryAddress}}",
        "validation refuses it; never rendered empty"
    );
    let mut spec = CanarySpec::default();
    spec.analysis.webhooks = vec![hook("h", HookType::Rollout, "http://x/")];
    assert_eq!(calls_of_kind(&spec, HookType::Rollout)[0].timeout, Duration::from_secs(10));
}

#[test]
fn flagger_phases_name_each_of_ours() {
    let phase = |phase, gate| flagger_phase(&CanaryStatus { phase, gate, ..CanaryStatus::default() });
    for (ours, gate, theirs) in [
        (CanaryPhase::Idle, None, "Initialized"),
        (CanaryPhase::Initializing, None, "Initializing"),
        (CanaryPhase::Waiting, Some(HookType::ConfirmRollout), "Waiting"),
        (CanaryPhase::WaitingForPods, None, "Progressing"),
        (CanaryPhase::Progressing, None, "Progressing"),
        (CanaryPhase::Progressing, Some(HookType::ConfirmTrafficIncrease), "Progressing"),
        (CanaryPhase::Progressing, Some(HookType::ConfirmPromotion), "WaitingPromotion"),
        (CanaryPhase::Promoting, None, "Promoting"),
        (CanaryPhase::Succeeded, None, "Succeeded"),
        (CanaryPhase::RolledBack, None, "Failed"),
        (CanaryPhase::Failed, None, "Failed"),
    ] {
        assert_eq!(phase(ours, gate), theirs, "{ours:?} {gate:?}");
    }
}

#[test]
fn event_calls_carry_flaggers_event_metadata_over_the_hooks_own() {
    let mut spec = CanarySpec::default();
    let mut h = hook("audit", HookType::Event, "http://x/");
    h.metadata.insert("eventType".into(), "mine".into());
    h.metadata.insert("team".into(), "shop".into());
    spec.analysis.webhooks = vec![h];
    let status = CanaryStatus { phase: CanaryPhase::RolledBack, run_id: Some("r1".into()), ..CanaryStatus::default() };
    let event =
        crate::CanaryEvent { kind: crate::EventKind::Warning, reason: "RolledBack", message: "2/2 failed".into() };
    let at = Timestamp::from_millisecond(1_800_000_000_123).unwrap();
    let calls = event_calls(&spec, &ctx(&spec.routing), &status, &event, at);
    let m = &calls[0].payload.metadata;
    assert_eq!(m["eventMessage"], "RolledBack: 2/2 failed");
    assert_eq!(m["eventType"], "Warning", "Flagger's own keys win");
    assert_eq!(m["timestamp"], "1800000000123");
    assert_eq!(m["team"], "shop");
    assert_eq!((calls[0].payload.phase, calls[0].timeout), ("Failed", EVENT_TIMEOUT));
}

/// Answers by URL path: `/ok`, `/halt` (403), `/boom` (500 with a long multi-line body), `/hang`, `/refused`.
struct Fake {
    sent: Mutex<Vec<String>>,
}

impl HookCaller for Fake {
    fn call<'a>(&'a self, call: &'a HookCall) -> Pin<Box<dyn Future<Output = Result<HookAnswer, String>> + Send + 'a>> {
        self.sent.lock().unwrap().push(call.name.clone());
        Box::pin(async move {
            match call.url.rsplit('/').next().unwrap_or_default() {
                "ok" => Ok(HookAnswer { status: 202, body: String::new() }),
                "halt" => Ok(HookAnswer { status: 403, body: String::new() }),
                "boom" => Ok(HookAnswer { status: 500, body: format!("line one\nline\ttwo {}", "x".repeat(400)) }),
                "moved" => Ok(HookAnswer { status: 302, body: String::new() }),
                "hang" => std::future::pending().await,
                _ => Err("cannot connect: Connection refused".into()),
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_chain_calls_in_order_and_keeps_what_each_answered() {
    let fake = Fake { sent: Mutex::new(Vec::new()) };
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let call = |name: &str, path: &str| HookCall {
        name: name.into(),
        kind: HookType::Rollout,
        url: format!("http://h/{path}"),
        timeout: Duration::from_secs(3),
        payload: Payload {
            name: "p".into(),
            namespace: "n".into(),
            phase: "Progressing",
            checksum: "c".into(),
            metadata: BTreeMap::new(),
        },
    };
    let calls = [
        call("a", "ok"),
        call("b", "halt"),
        call("c", "boom"),
        call("d", "hang"),
        call("e", "refused"),
        call("f", "moved"),
    ];
    let records = run_chain(&fake, &calls, now).await;
    assert_eq!(
        *fake.sent.lock().unwrap(),
        ["a", "b", "c", "d", "e", "f"],
        "in order, a hung one does not stop the rest"
    );
    let got: Vec<(bool, Option<u16>, String)> =
        records.iter().map(|r| (r.succeeded, r.status_code, r.message.clone().unwrap_or_default())).collect();
    assert_eq!(got[0], (true, Some(202), String::new()));
    assert_eq!(got[1], (false, Some(403), "HTTP 403".into()));
    assert!(
        got[2].2.starts_with("HTTP 500: line one line two xxx") && got[2].2.ends_with("...") && got[2].2.len() < 300,
        "{}",
        got[2].2
    );
    assert_eq!(got[3], (false, None, "no answer within 3s".into()));
    assert_eq!(got[4], (false, None, "cannot connect: Connection refused".into()));
    assert_eq!(got[5], (false, Some(302), "HTTP 302".into()), "a redirect is not a success");
    assert_eq!(summary(&records[..2]), "webhook b: HTTP 403");
    assert!(!all_succeeded(&[]), "no answer is no approval");
}

/// A run driven through the machine, calling the hooks [`due`] says, each answering as `answer` says by type.
struct Run {
    spec: CanarySpec,
    timing: Timing,
    status: CanaryStatus,
    now: Timestamp,
    world: Observed,
    answer: fn(HookType, &str) -> bool,
    metrics_pass: bool,
    called: Vec<(HookType, String)>,
    events: Vec<&'static str>,
}

impl Run {
    fn new(hooks: Vec<Hook>, answer: fn(HookType, &str) -> bool) -> Self {
        let mut spec = CanarySpec::default();
        spec.analysis.webhooks = hooks;
        let mut run = Self {
            timing: Timing::from_spec(&spec).unwrap(),
            spec,
            status: CanaryStatus::default(),
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            world: Observed {
                target_hash: "v1".into(),
                primary: Some(Workload { hash: Some("v1".into()), ready: true }),
                ..Observed::default()
            },
            answer,
            metrics_pass: true,
            called: Vec::new(),
            events: Vec::new(),
        };
        run.step();
        run
    }

    fn step(&mut self) -> &mut Self {
        let full = crate::cadence::analysis_due(&self.timing, &self.status, self.now);
        let primary = self.world.primary.as_ref().unwrap();
        let ready = self.world.canary_ready && primary.ready;
        let seen = Seen {
            target: &self.world.target_hash,
            stable: primary.hash.as_deref(),
            primary: true,
            first_stage_ready: ready,
        };
        let due = due(&self.spec, self.timing.step_interval, &self.status, facts(&self.status, seen, full), self.now);
        let chain = |on: bool, kind: HookType, run: &mut Run| {
            on.then(|| {
                let calls = calls(&run.spec, kind, &ctx(&run.spec.routing), &run.status, "r");
                calls
                    .iter()
                    .map(|c| {
                        run.called.push((kind, c.name.clone()));
                        let ok = (run.answer)(kind, &c.name);
                        let answer = if ok {
                            Ok(HookAnswer { status: 200, body: String::new() })
                        } else {
                            Err("down".to_string())
                        };
                        record(c, answer, run.now)
                    })
                    .collect::<Vec<_>>()
            })
        };
        let results = Results {
            confirm_rollout: chain(due.confirm_rollout, HookType::ConfirmRollout, self),
            pre_rollout: chain(due.pre_rollout, HookType::PreRollout, self),
            rollout: chain(due.rollout, HookType::Rollout, self),
            gate: due.gate.and_then(|g| chain(true, g, self)),
            rollback: chain(due.rollback, HookType::Rollback, self),
        };
        self.world.analysis = full.then(|| {
            let q = QueryContext { namespace: "shop".into(), target: "web".into() };
            let latency = if self.metrics_pass { 0.05 } else { 0.5 };
            let a = evaluate(
                &checks(&self.spec, &Slo::default(), &q),
                [Ok(Some(1000.0)), Ok(Some(latency)), Ok(Some(0.0))],
            );
            let a = match &results.rollout {
                Some(records) => a.with_hooks(records),
                None => a,
            };
            a.record(self.status.stage_index.unwrap_or(0), self.status.weight, self.now)
        });
        self.world.hooks = results;
        let decision = step(&self.timing, &self.status, &self.world, self.now);
        self.events.extend(decision.events.iter().map(|e| e.reason));
        self.status = decision.status;
        self
    }

    fn deploy(&mut self, hash: &str) -> &mut Self {
        self.world.target_hash = hash.into();
        self.world.canary_ready = false;
        self.step()
    }

    fn pods_ready(&mut self) -> &mut Self {
        self.world.canary_ready = true;
        self.step()
    }

    fn wait(&mut self, seconds: i64) -> &mut Self {
        self.now = self.now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
        self.step()
    }

    fn count(&self, kind: HookType) -> usize {
        self.called.iter().filter(|(k, _)| *k == kind).count()
    }
}

fn all_ok(_: HookType, _: &str) -> bool {
    true
}

#[test]
fn without_hooks_nothing_is_called_and_the_run_walks_as_before() {
    let mut run = Run::new(Vec::new(), all_ok);
    run.deploy("v2").pods_ready().wait(60);
    assert_eq!((run.status.phase, run.status.stage_index), (CanaryPhase::WaitingForPods, Some(1)));
    assert!(run.called.is_empty());
}

#[test]
fn rollout_hooks_run_at_each_analysis_as_checks_and_a_failing_one_counts_toward_the_limit() {
    let mut run = Run::new(vec![hook("load", HookType::Rollout, "http://lt/")], |_, _| false);
    run.deploy("v2").pods_ready();
    assert_eq!(run.count(HookType::Rollout), 0, "not before the first analysis");
    run.wait(60);
    assert_eq!(run.count(HookType::Rollout), 1);
    let checks = &run.status.analyses[0].checks;
    let check = checks.iter().find(|c| c.name == "webhook/load").expect("a check of the analysis");
    assert_eq!((check.verdict, check.reason.as_deref()), (perf_operator_api::CheckVerdict::Fail, Some("down")));
    assert_eq!(run.status.failed_checks, 1);
    run.wait(60);
    assert_eq!(run.status.phase, CanaryPhase::RolledBack, "failureLimit 2: {:?}", run.status.message);
    assert!(run.status.message.as_deref().unwrap_or_default().contains("webhook/load: down"));
    let mut good = Run::new(vec![hook("load", HookType::Rollout, "http://lt/")], all_ok);
    good.deploy("v2").pods_ready().wait(60);
    assert_eq!(good.status.stage_index, Some(1), "a passing hook passes with the metrics");
}

#[test]
fn a_confirm_promotion_gate_holds_the_last_stage_with_no_deadline_while_checks_run() {
    fn halted(kind: HookType, _: &str) -> bool {
        kind != HookType::ConfirmPromotion
    }
    let mut run = Run::new(vec![hook("approve", HookType::ConfirmPromotion, "http://lt/gate/halt")], halted);
    run.deploy("v2");
    for _ in 0..3 {
        run.pods_ready().wait(60);
    }
    assert_eq!(run.status.stage_index, Some(3), "traffic increases need no gate here");
    assert_eq!(run.count(HookType::ConfirmPromotion), 0, "only the last stage's gate is asked");
    run.pods_ready();
    for _ in 0..15 {
        run.wait(60);
    }
    assert_eq!((run.status.phase, run.status.gate), (CanaryPhase::Progressing, Some(HookType::ConfirmPromotion)));
    assert_eq!(run.count(HookType::ConfirmPromotion), 15, "polled at each analysis, past the 10m deadline");
    assert_eq!(run.events.iter().filter(|e| **e == "GateHeld").count(), 1, "told once");
    assert_eq!(crate::hooks::flagger_phase(&run.status), "WaitingPromotion");
    run.metrics_pass = false;
    run.wait(60);
    assert_eq!(run.status.failed_checks, 1, "the checks keep running while held");
    run.metrics_pass = true;
    run.answer = all_ok;
    run.wait(60);
    assert_eq!((run.status.phase, run.status.gate), (CanaryPhase::Promoting, None));
    assert!(run.events.contains(&"GateOpened"));
}

#[test]
fn a_confirm_traffic_increase_gate_holds_every_stage_until_it_answers() {
    fn halted(kind: HookType, _: &str) -> bool {
        kind != HookType::ConfirmTrafficIncrease
    }
    let mut run = Run::new(vec![hook("step", HookType::ConfirmTrafficIncrease, "http://g/")], halted);
    run.deploy("v2").pods_ready().wait(60).wait(60);
    assert_eq!((run.status.stage_index, run.status.gate), (Some(0), Some(HookType::ConfirmTrafficIncrease)));
    run.answer = all_ok;
    run.wait(60);
    assert_eq!((run.status.stage_index, run.status.gate), (Some(1), None));
}

#[test]
fn a_manual_promote_passes_a_held_gate() {
    let mut run = Run::new(vec![hook("step", HookType::ConfirmTrafficIncrease, "http://g/")], |_, _| false);
    run.deploy("v2").pods_ready().wait(60);
    assert_eq!(run.status.gate, Some(HookType::ConfirmTrafficIncrease));
    run.world.command = Some(crate::machine::parse_command("promote@1"));
    run.step();
    assert_eq!((run.status.stage_index, run.status.gate), (Some(1), None));
}

#[test]
fn confirm_rollout_keeps_a_new_template_waiting_and_polls_once_a_step() {
    let mut run = Run::new(vec![hook("ok-to-start", HookType::ConfirmRollout, "http://g/")], |_, _| false);
    run.deploy("v2");
    assert_eq!((run.status.phase, run.status.weight, run.status.deadline.is_none()), (CanaryPhase::Waiting, 0, true));
    assert_eq!(run.status.gate, Some(HookType::ConfirmRollout));
    run.wait(10).wait(10);
    assert_eq!(run.count(HookType::ConfirmRollout), 1, "polled once per step interval");
    run.wait(60);
    assert_eq!(run.count(HookType::ConfirmRollout), 2);
    assert_eq!(run.status.phase, CanaryPhase::Waiting);
    run.answer = all_ok;
    run.wait(60);
    assert_eq!((run.status.phase, run.status.stage_index), (CanaryPhase::WaitingForPods, Some(0)));
    assert!(run.events.contains(&"GateOpened") && run.events.contains(&"RunStarted"));
    run.deploy("v1");
    assert_eq!(run.status.phase, CanaryPhase::Idle, "back to the stable template");
}

#[test]
fn a_new_template_while_waiting_is_asked_at_once() {
    let mut run = Run::new(vec![hook("ok-to-start", HookType::ConfirmRollout, "http://g/")], |_, _| false);
    run.deploy("v2").wait(5).deploy("v3");
    assert_eq!(run.count(HookType::ConfirmRollout), 2);
    assert_eq!((run.status.phase, run.status.run_id.as_deref()), (CanaryPhase::Waiting, Some("v3")));
}

#[test]
fn pre_rollout_runs_once_the_first_pods_are_ready_and_a_failure_counts_and_is_retried_a_step_later() {
    let mut run = Run::new(vec![hook("smoke", HookType::PreRollout, "http://t/")], |_, _| false);
    run.deploy("v2");
    assert_eq!(run.count(HookType::PreRollout), 0, "not before the pods are ready");
    run.pods_ready();
    assert_eq!((run.count(HookType::PreRollout), run.status.failed_checks), (1, 1));
    assert_eq!(run.status.phase, CanaryPhase::WaitingForPods, "the hold has not begun");
    run.wait(10);
    assert_eq!(run.count(HookType::PreRollout), 1, "retried a step later, not at every poll");
    run.answer = all_ok;
    run.wait(60);
    assert_eq!((run.count(HookType::PreRollout), run.status.phase), (2, CanaryPhase::Progressing));
    run.wait(60).pods_ready().wait(60);
    assert_eq!(run.count(HookType::PreRollout), 2, "once per run");
    let mut failing = Run::new(vec![hook("smoke", HookType::PreRollout, "http://t/")], |_, _| false);
    failing.deploy("v2").pods_ready().wait(60);
    assert_eq!(failing.status.phase, CanaryPhase::RolledBack, "failureLimit 2");
}

#[test]
fn a_rollback_hook_that_answers_rolls_the_run_back() {
    fn open_at_second(kind: HookType, _: &str) -> bool {
        kind == HookType::Rollback
    }
    let mut run = Run::new(vec![hook("manual", HookType::Rollback, "http://lt/rollback/check")], |_, _| false);
    run.deploy("v2").pods_ready().wait(60);
    assert_eq!((run.status.phase, run.status.stage_index), (CanaryPhase::WaitingForPods, Some(1)), "403: go on");
    run.answer = open_at_second;
    run.pods_ready().wait(60);
    assert_eq!(run.status.phase, CanaryPhase::RolledBack);
    assert!(run.status.message.as_deref().unwrap_or_default().contains("webhook manual"));
}

#[test]
fn results_are_kept_in_status_by_name_and_cleared_by_a_new_run() {
    let mut run = Run::new(vec![hook("load", HookType::Rollout, "http://lt/")], all_ok);
    run.deploy("v2").pods_ready().wait(60).pods_ready().wait(60);
    assert_eq!(run.status.hooks.len(), 1, "the latest call of each hook");
    assert!(run.status.hooks[0].succeeded);
    run.deploy("v3");
    assert!(run.status.hooks.is_empty());
}

#[test]
fn a_waiting_run_starts_on_promote_and_ends_on_abort() {
    let mut run = Run::new(vec![hook("ok-to-start", HookType::ConfirmRollout, "http://g/")], |_, _| false);
    run.deploy("v2");
    run.world.command = Some(crate::machine::parse_command("promote@1"));
    run.step();
    assert_eq!(
        (run.status.phase, run.status.stage_index, run.status.gate),
        (CanaryPhase::WaitingForPods, Some(0), None)
    );
    let mut aborted = Run::new(vec![hook("ok-to-start", HookType::ConfirmRollout, "http://g/")], |_, _| false);
    aborted.deploy("v2");
    aborted.world.command = Some(crate::machine::parse_command("abort@1"));
    aborted.step().wait(60);
    assert_eq!((aborted.status.phase, aborted.status.run_id.as_deref()), (CanaryPhase::RolledBack, Some("v2")));
    assert_eq!(aborted.count(HookType::ConfirmRollout), 1, "an aborted template is not asked again");
}
