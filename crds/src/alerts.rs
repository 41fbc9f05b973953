//! `spec.slo.alerts`: the PrometheusRule the operator generates from the SLO (recording rules and multi-window,
//! multi-burn-rate alerts), and the labels that let a Prometheus select and route it.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Prometheus label names: what an alert label may be called.
pub const LABEL_NAME_PATTERN: &str = "^[a-zA-Z_][a-zA-Z0-9_]*$";
/// Alert labels the operator sets itself; a profile cannot override them.
pub const RESERVED_ALERT_LABELS: [&str; 4] = ["severity", "namespace", "perf_profile", "service"];

/// SLO alerts: a `PrometheusRule` (`monitoring.coreos.com/v1`, applied only when the Prometheus Operator's CRD is
/// installed) with the service's error ratio and p99 latency recorded over 5m to 3d, and error-budget burn alerts
/// on the SRE-workbook window pairs (1h/5m at 14.4x and 6h/30m at 6x page; 1d/2h at 3x and 3d/6h at 1x ticket).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
// Label names are not checked by CEL (a regex over map keys, whose length the schema cannot bound, exceeds the API
// server's CEL cost budget), so the API server takes any: a bad one is refused by the alerts component alone
// (`AlertsReady=False`), never by freezing the whole profile as an invalid spec.
pub struct SloAlerts {
    /// Generate and apply the rule. When set to false, a rule applied before is deleted.
    #[serde(default = "crate::cache::default_true")]
    pub enabled: bool,
    /// Labels of the PrometheusRule object, for the Prometheus's `ruleSelector` (e.g. `release: prometheus` with
    /// kube-prometheus-stack).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    pub rule_labels: BTreeMap<String, String>,
    /// Extra labels on every alert, for Alertmanager routing (e.g. `team: risk`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    pub alert_labels: BTreeMap<String, String>,
}

impl Default for SloAlerts {
    fn default() -> Self {
        Self { enabled: true, rule_labels: BTreeMap::new(), alert_labels: BTreeMap::new() }
    }
}

impl SloAlerts {
    /// Problems with the labels, as (field under `spec.slo.alerts`, message): alert labels must be Prometheus label
    /// names the operator does not set itself, rule labels Kubernetes label keys and values.
    pub fn label_problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (key, value) in &self.alert_labels {
            let field = format!("alertLabels.{key}");
            if !is_prometheus_label(key) {
                problems.push((field, format!("{key:?} is not a Prometheus label name ({LABEL_NAME_PATTERN})")));
            } else if RESERVED_ALERT_LABELS.contains(&key.as_str()) {
                problems.push((field, format!("{key:?} is set by the operator on every alert")));
            } else if value.chars().count() > 1024 {
                problems.push((field, "value longer than 1024 characters".into()));
            }
        }
        for (key, value) in &self.rule_labels {
            let field = format!("ruleLabels.{key}");
            if !is_label_key(key) {
                problems.push((field, format!("{key:?} is not a Kubernetes label key ([prefix/]name)")));
            } else if !value.is_empty() && !is_label_name(value) {
                problems.push((
                    field,
                    format!("{value:?} is not a Kubernetes label value (63 characters: alphanumerics, '-', '_', '.')"),
                ));
            }
        }
        problems
    }
}

fn is_prometheus_label(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

/// A label name or value: 63 characters at most, alphanumerics at both ends, `-`, `_` and `.` between.
fn is_label_name(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `[prefix/]name`, the prefix a DNS subdomain.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        None => is_label_name(s),
        Some((prefix, name)) => {
            let label = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            prefix.len() <= 253 && prefix.split('.').all(label) && is_label_name(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        let alerts = |alert: &[(&str, &str)], rule: &[(&str, &str)]| SloAlerts {
            alert_labels: alert.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            rule_labels: rule.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..SloAlerts::default()
        };
        let ok = alerts(&[("team", "risk"), ("_x", "")], &[("release", "prometheus"), ("example.com/tier", "")]);
        assert_eq!(ok.label_problems(), vec![]);
        for (alert, rule, field) in [
            (("9team", "x"), ("a", "b"), "alertLabels.9team"),
            (("severity", "low"), ("a", "b"), "alertLabels.severity"),
            (("team-name", "x"), ("a", "b"), "alertLabels.team-name"),
            (("a", "b"), ("-x", "b"), "ruleLabels.-x"),
            (("a", "b"), ("Example.com/x", "b"), "ruleLabels.Example.com/x"),
            (("a", "b"), ("x", "has space"), "ruleLabels.x"),
            (("a", "b"), ("x", &"v".repeat(64)), "ruleLabels.x"),
        ] {
            let problems = alerts(&[alert], &[rule]).label_problems();
            assert_eq!(problems.len(), 1, "{alert:?} {rule:?}: {problems:?}");
            assert_eq!(problems[0].0, field);
        }
    }
}
