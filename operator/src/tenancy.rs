//! What the administrator lets a profile reach, judged on the spec before anything is sent: the servers it names
//! (the egress rule of [`perf_egress`], by kind) and the ClickHouse databases it may alter. Checked in each round
//! (an `InvalidSpec` naming the field), beside the spec's own checks; `validate` and `plan`, run by a user against
//! their own servers, apply no administrator's rule. The addresses a name resolves to are judged again at connect.

use crate::manifest::Finding;
use perf_egress::{Egress, Kind};
use perf_operator_api::PerformanceProfile;

/// The administrator's rules a profile is judged by.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub egress: &'a Egress,
    /// ClickHouse database patterns (`*` any characters, `{namespace}` the profile's); empty: any but the
    /// server's own.
    pub databases: &'a [String],
}

/// Every problem of `profile` under `rules`, each naming its field.
pub fn check(profile: &PerformanceProfile, rules: Rules<'_>, location: &str) -> Vec<Finding> {
    let namespace = profile.metadata.namespace.as_deref().unwrap_or("default");
    let finding = |field: String, message: String| Finding { location: location.to_string(), field, message };
    let mut findings: Vec<Finding> = endpoints(profile)
        .into_iter()
        .filter_map(|(field, kind, host)| {
            rules.egress.check(kind, namespace, &host).err().map(|refusal| finding(field, refusal.to_string()))
        })
        .collect();
    if let Some(ch) = &profile.spec.clickhouse
        && let Some(message) = database_problem(rules.databases, namespace, &ch.database)
    {
        findings.push(finding("spec.clickhouse.database".into(), message));
    }
    findings
}

/// The servers a profile names: (field, kind, host). A value that does not parse is left to the spec's own
/// validation, which names it.
pub fn endpoints(profile: &PerformanceProfile) -> Vec<(String, Kind, String)> {
    let spec = &profile.spec;
    let mut out = Vec::new();
    let mut url = |field: &str, kind: Kind, text: &str| {
        if let Some(host) = reqwest::Url::parse(text).ok().and_then(|u| u.host_str().map(str::to_string)) {
            out.push((field.to_string(), kind, host));
        }
    };
    if let Some(external) = spec.cache.as_ref().and_then(|c| c.redis.external.as_ref()) {
        url("spec.cache.redis.external.address", Kind::Redis, &external.address);
    }
    if let Some(ch) = &spec.clickhouse {
        url("spec.clickhouse.endpoint", Kind::ClickHouse, &ch.endpoint);
    }
    // Unset, the analysis asks the administrator's --default-prometheus, which no allow-list judges.
    if let Some(prometheus) = spec.canary.as_ref().and_then(|c| c.analysis.prometheus.as_ref()) {
        url("spec.canary.analysis.prometheus", Kind::Prometheus, prometheus);
    }
    if let Some(prometheus) = spec.rate_limit.as_ref().and_then(|r| r.prometheus.as_ref()) {
        url("spec.rateLimit.prometheus", Kind::Prometheus, prometheus);
    }
    for (field, policy) in spec.policy_refs() {
        if let Some(source) = &policy.url {
            url(&format!("{field}.url.url"), Kind::Policy, &source.url);
        }
        // The registry's API is asked over HTTPS at the reference's host.
        if let Some(source) = &policy.registry {
            let https = source.reference.replacen(perf_policy_host::registry::SCHEME, "https://", 1);
            url(&format!("{field}.registry.reference"), Kind::Policy, &https);
        }
    }
    if let Some(server) = spec.pools.as_ref().and_then(|p| p.postgres.as_ref()).and_then(|p| p.server.as_ref()) {
        out.push(("spec.pools.postgres.server.host".into(), Kind::Postgres, server.host.clone()));
    }
    out
}

/// Why `database` may not be named from `namespace` under the administrator's `patterns`, if it may not. The
/// server's own databases are refused by the spec's checks (`perf_clickhouse::validate`), for every profile.
pub fn database_problem(patterns: &[String], namespace: &str, database: &str) -> Option<String> {
    if perf_clickhouse::validate::is_server_database(database)
        || patterns.is_empty()
        || patterns.iter().any(|p| glob(&p.replace("{namespace}", &as_identifier(namespace)), database))
    {
        return None;
    }
    Some(format!(
        "`{database}` is not among the databases the operator's administrator allows namespace {namespace} \
         (--clickhouse-database: {})",
        patterns.join(", ")
    ))
}

/// The labels of `alerts` outside the administrator's lists (`alert` names, `rule` keys; an empty list allows any),
/// each with its field: an alert label routes the alert (`team: another-team` would page another team), a rule
/// label selects the Prometheus that loads the rule.
pub fn label_problems(alerts: &perf_operator_api::SloAlerts, alert: &[String], rule: &[String]) -> Vec<String> {
    let outside = |allowed: &[String], key: &str| !allowed.is_empty() && !allowed.iter().any(|a| a == key);
    let alert_problems = alerts.alert_labels.keys().filter(|k| outside(alert, k)).map(|k| {
        format!(
            "spec.slo.alerts.alertLabels.{k}: not among the alert labels the operator's administrator allows \
             (--alert-label: {})",
            alert.join(", ")
        )
    });
    let rule_problems = alerts.rule_labels.keys().filter(|k| outside(rule, k)).map(|k| {
        format!(
            "spec.slo.alerts.ruleLabels.{k}: not among the rule labels the operator's administrator allows \
             (--rule-label: {})",
            rule.join(", ")
        )
    });
    alert_problems.chain(rule_problems).collect()
}

/// `pattern` with `*` for any run of characters, matched whole.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut left) = text.strip_prefix(first) else { return false };
    let Some((last, middle)) = rest.split_last() else { return left.is_empty() };
    for part in middle {
        match left.find(part) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

/// A namespace as a database name can hold it: a database is an identifier, a namespace a DNS label, so `-` is
/// written `_` (`team-a` is `team_a`).
fn as_identifier(namespace: &str) -> String {
    namespace.replace('-', "_")
}

/// A `--clickhouse-database` value: database name characters, `*` and `{namespace}`.
pub fn database_pattern(text: &str) -> Result<String, String> {
    let bare = text.replace("{namespace}", "x").replace('*', "x");
    if bare.is_empty() || bare.len() > 200 || !bare.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
        return Err("expected a database name of letters, digits, _ and -, with `*` and `{namespace}` allowed".into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
#[path = "tenancy_tests.rs"]
mod tests;
