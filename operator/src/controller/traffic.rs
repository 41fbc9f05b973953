//! The Prometheus queries that give a rate-limit policy its per-route traffic (label `route`, last minute).

use perf_policy_host::RouteTraffic;

/// Queries per route.
pub const QUERIES: usize = 4;

/// Traffic queries of one profile in flight at once: a profile with hundreds of routes waits its turn rather than
/// taking every slot of the shared Prometheus client.
pub const IN_FLIGHT: usize = 8;

/// Requests/s, p99 latency (ms), error percent and rejected requests/s of `route` in `namespace`; the rejections
/// come from `rejected` (the enforcer's query, see [`crate::enforcement`]), none read as 0.
pub fn queries(namespace: &str, route: &str, rejected: Option<String>) -> [String; QUERIES] {
    let route = route.replace('\\', "\\\\").replace('"', "\\\"");
    let sel = format!(r#"namespace="{namespace}", route="{route}""#);
    [
        format!("sum(rate(http_requests_total{{{sel}}}[1m]))"),
        format!(
            "1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[1m])))"
        ),
        // An app exports a 5xx series after its first error: none yet is a measured 0 %, not a route without data.
        format!(
            r#"100 * (sum(rate(http_requests_total{{{sel}, code=~"5.."}}[1m])) or vector(0)) / sum(rate(http_requests_total{{{sel}}}[1m]))"#
        ),
        rejected.unwrap_or_else(|| "vector(0)".into()),
    ]
}

/// The answers of [`queries`], in order.
pub fn from_values(values: &[f64]) -> RouteTraffic {
    let at = |i: usize| values.get(i).copied().unwrap_or(0.0);
    RouteTraffic { requests_per_second: at(0), p99_latency_ms: at(1), error_percent: at(2), rejected_per_second: at(3) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_escaped_inside_the_selector() {
        let q = queries("shop", r#"/a"b\c"#, Some("sum(r{namespace=\"shop\"})".into()));
        assert!(q[0].contains(r#"route="/a\"b\\c""#), "{}", q[0]);
        assert!(q.iter().all(|q| q.contains(r#"namespace="shop""#)));
        assert_eq!(queries("shop", "/a", None)[3], "vector(0)");
    }
}
