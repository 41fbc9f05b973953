//! Which namespace a query may read. A profile's PromQL runs on a Prometheus many tenants share, and its values come
//! back in status and on `/metrics`: every selector must be pinned to the profile's namespace
//! (`namespace="<ns>"`), checked on the parsed query, so that no tenant reads another's series one number at a time.
//! The canary's gates and custom metrics and the SLO rules are held to the same check.

use crate::analysis::{QueryContext, render};
use perf_operator_api::CanarySpec;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};

/// Why a query may not run for a namespace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unscoped {
    #[error("not PromQL: {0}")]
    NotPromql(String),
    #[error(
        "selector {selector} is not limited to namespace=\"{namespace}\": a profile may only read its own namespace"
    )]
    Selector { selector: String, namespace: String },
}

/// Checks that every selector of `query` (already rendered) is pinned to `namespace`; returns how many selectors it
/// has (a query of none reads no series).
pub fn check(query: &str, namespace: &str) -> Result<usize, Unscoped> {
    let expr = parser::parse(query).map_err(|e| Unscoped::NotPromql(one_line(&e)))?;
    let mut visitor = Pinned { namespace, selectors: 0, unscoped: None };
    let _ = walk_expr(&mut visitor, &expr);
    match visitor.unscoped {
        Some(selector) => Err(Unscoped::Selector { selector, namespace: namespace.to_string() }),
        None => Ok(visitor.selectors),
    }
}

/// Every gate and custom metric of `spec` that, rendered for `ctx`, could read outside `ctx.namespace`: the field
/// and why. Checked before any query is asked, by `validate`, `plan`, `canary analyze` and each reconcile alike.
pub fn canary_problems(spec: &CanarySpec, ctx: &QueryContext) -> Vec<(String, String)> {
    let a = &spec.analysis;
    let field = |name: &str| format!("spec.canary.analysis.{name}");
    let mut queries = vec![
        (field("queries.requests"), a.queries.requests()),
        (field("queries.p99LatencySeconds"), a.queries.p99_latency_seconds()),
        (field("queries.errorRatio"), a.queries.error_ratio()),
    ];
    // A templated metric has no query of its own: it is checked where it is resolved (crate::templates).
    let inline = a.metrics.iter().enumerate().filter(|(_, m)| m.template_ref.is_none());
    queries.extend(inline.map(|(i, m)| (field(&format!("metrics[{i}].query")), m.query.as_str())));
    // The step interval stands for `{{interval}}`: a quick check's window is another duration, the same shape.
    let rendered = |template: &str| render(template, ctx, &spec.step_interval);
    queries
        .into_iter()
        .filter_map(|(field, template)| {
            let text = rendered(template);
            if let Some(unknown) = unknown_placeholder(&text) {
                return Some((field, format!("unknown placeholder {unknown}: known are {PLACEHOLDERS}")));
            }
            check(&text, &ctx.namespace).err().map(|e| (field, e.to_string()))
        })
        .collect()
}

/// The placeholders a canary query may use.
pub(crate) const PLACEHOLDERS: &str = "{{namespace}}, {{target}}, {{canary}}, {{interval}}";

/// The first `{{...}}` left in a rendered query: a placeholder this version does not know (a typo, or one of
/// another tool's), which would otherwise reach Prometheus as text and fail every analysis.
pub(crate) fn unknown_placeholder(rendered: &str) -> Option<String> {
    let start = rendered.find("{{")?;
    let end = rendered[start..].find("}}").map_or(rendered.len(), |e| start + e + 2);
    Some(one_line(&rendered[start..end]))
}

/// `text` on one line, at most 200 characters: for messages in status.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// Finds the first selector that can match series outside `namespace`.
struct Pinned<'a> {
    namespace: &'a str,
    selectors: usize,
    unscoped: Option<String>,
}

impl ExprVisitor for Pinned<'_> {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        self.selectors += 1;
        let pinned = |group: &[Matcher]| {
            group.iter().any(|m| m.name == "namespace" && matches!(m.op, MatchOp::Equal) && m.value == self.namespace)
        };
        // `{a="x" or b="y"}`: every alternative must be pinned.
        let scoped = if vs.matchers.or_matchers.is_empty() {
            pinned(&vs.matchers.matchers)
        } else {
            vs.matchers.or_matchers.iter().all(|g| pinned(g))
        };
        if !scoped {
            self.unscoped = Some(one_line(&expr.to_string()));
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queries_pinned_to_the_namespace_pass() {
        let ok = [
            (r#"sum(rate(http_requests_total{namespace="shop"}[1m]))"#, 1),
            (r#"sum(rate(a{namespace="shop"}[1m])) / sum(rate(b{namespace="shop", code=~"5.."}[1m]))"#, 2),
            (r#"histogram_quantile(0.99, sum by (le) (rate(h_bucket{namespace="shop"}[5m])))"#, 1),
            (r#"max_over_time(up{namespace="shop"}[10m:1m])"#, 1),
            (r#"{__name__="up", namespace="shop"}"#, 1),
            (r#"up{namespace="shop" or namespace="shop", job="x"}"#, 1),
            ("vector(1)", 0),
            ("time() - 1", 0),
        ];
        for (query, selectors) in ok {
            assert_eq!(check(query, "shop"), Ok(selectors), "{query}");
        }
        let refused = [
            r#"sum(rate(http_requests_total[1m]))"#,
            r#"up{namespace="other"}"#,
            r#"up{namespace=~"shop|other"}"#,
            r#"up{namespace=~"shop"}"#,
            r#"up{namespace!="shop"}"#,
            r#"up{namespace="shop"} + on() group_left up{job="db"}"#,
            r#"up{namespace="shop"} or absent(secret_metric)"#,
            r#"up{namespace="shop" or job="x"}"#,
            r#"count(up{namespace="shop"}) * count(kube_pod_info{namespace="tenant-b"})"#,
            r#"sum(rate(x{namespace="shop"}[1m] offset 1h)) + sum_over_time(y[5m:])"#,
            r#"{__name__=~".+"}"#,
        ];
        for query in refused {
            assert!(matches!(check(query, "shop"), Err(Unscoped::Selector { .. })), "{query}");
        }
        assert!(matches!(check("sum(", "shop"), Err(Unscoped::NotPromql(_))));
        assert!(matches!(check(r#"up{namespace="shop"} @ end()"#, "shop"), Ok(1)));
        let message = check("up", "shop").unwrap_err().to_string();
        assert!(message.contains("not limited to namespace=\"shop\""), "{message}");
    }

    #[test]
    fn a_canary_is_checked_gate_by_gate_and_metric_by_metric_after_rendering() {
        let ctx = QueryContext { namespace: "shop".into(), target: "web".into() };
        let mut spec = CanarySpec::default();
        assert_eq!(canary_problems(&spec, &ctx), Vec::<(String, String)>::new(), "the default gates are scoped");
        spec.analysis.queries.requests =
            Some(r#"sum(increase(http_requests_total{pod=~"{{canary}}-.*"}[{{interval}}]))"#.into());
        spec.analysis.metrics = vec![
            perf_operator_api::MetricCheck {
                name: "ok".into(),
                query: r#"avg(x{namespace="{{namespace}}"})"#.into(),
                ..Default::default()
            },
            perf_operator_api::MetricCheck {
                name: "peek".into(),
                query: r#"sum(kube_secret_info{namespace="tenant-b"})"#.into(),
                ..Default::default()
            },
            perf_operator_api::MetricCheck { name: "broken".into(), query: "sum(".into(), ..Default::default() },
        ];
        let fields: Vec<String> = canary_problems(&spec, &ctx).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "spec.canary.analysis.queries.requests",
                "spec.canary.analysis.metrics[1].query",
                "spec.canary.analysis.metrics[2].query"
            ]
        );
    }

    #[test]
    fn an_unknown_placeholder_is_refused_with_the_known_ones() {
        let mut spec = perf_operator_api::CanarySpec::default();
        spec.analysis.metrics = vec![perf_operator_api::MetricCheck {
            name: "typo".into(),
            query: r#"sum(rate(x{namespace="{{namespace}}", pod=~"{{canary_pod}}.*"}[1m]))"#.into(),
            max: Some(1.0),
            ..Default::default()
        }];
        let ctx = QueryContext { namespace: "shop".into(), target: "web".into() };
        let problems = canary_problems(&spec, &ctx);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "spec.canary.analysis.metrics[0].query");
        assert!(
            problems[0].1.starts_with("unknown placeholder {{canary_pod}}: known are {{namespace}}"),
            "{problems:?}"
        );
    }
}
