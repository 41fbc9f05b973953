//! `canary.analysis.webhooks`: hooks called during a run, with Flagger's webhook contract (the same types, JSON
//! payload and status-code meaning), so Flagger's load tester and existing gate services work unchanged.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A webhook the run calls: a POST of `{name, namespace, phase, checksum, metadata}` (Flagger's payload); an answer
/// in 200-299 is a success, anything else (or no answer within `timeout`) is not.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Hook name, used in status and events.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,62}$"))]
    pub name: String,
    /// When it is called and what its answer means (Flagger's types):
    /// `confirm-rollout` gates the start of a run (polled until it succeeds, with no deadline);
    /// `pre-rollout` runs once the first stage's pods are ready, before its hold (a failure counts toward
    /// `failureLimit` and is retried a step later); `rollout` runs at every analysis, as one of its checks (load
    /// tests: Flagger's load tester); `confirm-traffic-increase` gates each next stage and `confirm-promotion` the
    /// promotion, while the checks keep running; `post-rollout` runs after a run ends (promoted or rolled back);
    /// `rollback` is polled while a run is analysed or waits, and a success rolls the run back; `event` receives
    /// every event of the run (`metadata.eventMessage`, `eventType`, `timestamp`).
    #[serde(rename = "type", default)]
    pub kind: HookType,
    /// Where the POST goes, e.g. `http://flagger-loadtester.test/` (the administrator's egress allow-list for
    /// `hook` applies). Placeholders: `{{namespace}}`, `{{target}}`, `{{canary}}` (the canary Deployment),
    /// `{{canaryAddress}}` (`<target>-canary.<namespace>.svc:<port>`, which needs `routing.canaryPort` or
    /// `routing.httpRoute`) and `{{primaryAddress}}` (the same for `<target>-primary`, with `routing.httpRoute`).
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s@]+$"))]
    pub url: String,
    /// How long the receiver may take, e.g. `30s`; 1s to 60s, default `10s` (Flagger's). Hooks of one type are
    /// called in order, so their timeouts add up: at most 60s per type, and the `rollout` hooks' below
    /// `stepInterval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::duration_schema")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('60s')").message("webhook timeout must be 1s to 60s"))]
    pub timeout: Option<String>,
    /// Passed through in the payload's `metadata`, with the same placeholders as `url` in the values (e.g. the load
    /// tester's `{type: cmd, cmd: "hey -z 1m -q 10 -c 2 http://{{canaryAddress}}/"}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    pub metadata: BTreeMap<String, String>,
}

/// Default and bounds of a hook's timeout.
pub const HOOK_TIMEOUT_DEFAULT: &str = "10s";
/// Longest the hooks of one type may take together (and one hook alone).
pub const HOOK_TYPE_BUDGET_SECS: u64 = 60;

/// When a hook is called (Flagger's webhook types).
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    ConfirmRollout,
    PreRollout,
    #[default]
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl HookType {
    pub const ALL: [HookType; 8] = [
        HookType::ConfirmRollout,
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmTrafficIncrease,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Rollback,
        HookType::Event,
    ];

    /// The name in the spec.
    pub fn name(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm-rollout",
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Rollback => "rollback",
            HookType::Event => "event",
        }
    }

    /// A gate: the run waits until it succeeds.
    pub fn is_gate(self) -> bool {
        matches!(self, HookType::ConfirmRollout | HookType::ConfirmTrafficIncrease | HookType::ConfirmPromotion)
    }
}

/// The placeholders a hook's URL and metadata values may use.
pub const HOOK_PLACEHOLDERS: [&str; 5] =
    ["{{namespace}}", "{{target}}", "{{canary}}", "{{canaryAddress}}", "{{primaryAddress}}"];

// The CEL rules on the webhooks list (see `CanarySpec`): per type, the timeouts add up to at most 60s; the rollout
// hooks' stay below the step interval (they run at every analysis, which comes one step after the last). Sums are in
// whole seconds (`getSeconds`): kube's CEL sums an empty list to the integer 0, which no duration compares with, and
// a duration built from a string the rule makes costs the API server's estimate too much.
pub(crate) const HOOK_TYPE_BUDGET_RULE: &str = "['confirm-rollout', 'pre-rollout', 'rollout', 'confirm-traffic-increase', 'confirm-promotion', 'post-rollout', 'rollback', 'event'].all(t, self.filter(h, (has(h.type) ? h.type : 'rollout') == t).map(h, (has(h.timeout) ? duration(h.timeout) : duration('10s')).getSeconds()).sum() <= 60)";
