//! Asking Prometheus every check's query at once, under one deadline for the whole analysis: a slow Prometheus
//! costs one deadline, never queries x timeout. An empty answer is followed (within the same deadline) by one
//! query per selector, so the outcome can say which selector matched nothing.

use crate::analysis::Check;
use crate::selectors::{Selector, selectors};
use futures::future::join_all;
use perf_prometheus::{MetricsSource, QueryError};
use std::time::Duration;
use tokio::time::Instant;

/// One check's answer: the query's result and, for an empty one, which selector matched nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub result: Result<Option<f64>, QueryError>,
    /// e.g. `no series match up{namespace="shop"} in the last 1m (namespace shop)`.
    pub unmatched: Option<String>,
}

impl From<Result<Option<f64>, QueryError>> for Answer {
    fn from(result: Result<Option<f64>, QueryError>) -> Self {
        Self { result, unmatched: None }
    }
}

/// Where the checks are asked: the namespace and window the placeholders stood for, and the deadline.
#[derive(Clone, Copy, Debug)]
pub struct Asking<'a> {
    pub namespace: &'a str,
    /// `{{interval}}`: the window a selector without a range is looked at over.
    pub window: &'a str,
    /// For the whole analysis, diagnosis included.
    pub deadline: Duration,
}

/// Runs every check's query concurrently; every answer is in by `asking.deadline` (a late one is a timeout).
pub async fn gather(source: &dyn MetricsSource, checks: &[Check], asking: Asking<'_>) -> Vec<Answer> {
    let until = Instant::now() + asking.deadline;
    let results = join_all(checks.iter().map(|c| bounded(source, &c.query, until, asking.deadline))).await;
    let answers = results.into_iter().zip(checks).map(|(result, check)| async move {
        let unmatched = match result {
            Ok(None) => unmatched(source, &check.query, asking, until).await,
            _ => None,
        };
        Answer { result, unmatched }
    });
    join_all(answers).await
}

async fn bounded(
    source: &dyn MetricsSource,
    promql: &str,
    until: Instant,
    deadline: Duration,
) -> Result<Option<f64>, QueryError> {
    let late = || QueryError::Timeout { at: source.at().to_string(), after: deadline };
    tokio::time::timeout_at(until, source.query(promql)).await.unwrap_or_else(|_| Err(late()))
}

/// The first selector of `query` with no series in its range (or the window), said in a sentence; None when each
/// matched something or the diagnosis itself got no answer.
async fn unmatched(source: &dyn MetricsSource, query: &str, asking: Asking<'_>, until: Instant) -> Option<String> {
    let found = selectors(query);
    let probes: Vec<String> = found.iter().map(|s| probe(s, asking.window)).collect();
    let counts = join_all(probes.iter().map(|p| bounded(source, p, until, asking.deadline))).await;
    let (selector, _) = found.iter().zip(counts).find(|(_, count)| matches!(count, Ok(None) | Ok(Some(0.0))))?;
    let range = selector.range.as_deref().unwrap_or(asking.window);
    Some(format!("no series match {} in the last {range} (namespace {})", selector.text, asking.namespace))
}

/// Counts the series of `selector` seen in its range.
fn probe(selector: &Selector, window: &str) -> String {
    format!("count(last_over_time({}[{}]))", selector.text, selector.range.as_deref().unwrap_or(window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_prometheus::QueryFuture;
    use std::collections::HashMap;

    /// Answers by query text; anything else never answers.
    struct Fixed(HashMap<String, Option<f64>>);

    impl MetricsSource for Fixed {
        fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
            match self.0.get(promql) {
                Some(v) => Box::pin(std::future::ready(Ok(*v))),
                None => Box::pin(std::future::pending()),
            }
        }
    }

    fn check(query: &str) -> Check {
        Check {
            name: "x".into(),
            query: query.into(),
            min: None,
            max: Some(1.0),
            strict_max: false,
            scale: 1.0,
            unit: "",
            on_no_data: Default::default(),
            needs_traffic: false,
        }
    }

    const ASKING: Asking = Asking { namespace: "shop", window: "1m", deadline: Duration::from_millis(300) };

    #[tokio::test]
    async fn an_empty_answer_names_the_selector_that_matched_nothing() {
        let query = r#"sum(a{ns="shop"}) / sum(b{ns="shop"}[5m])"#;
        let source = Fixed(HashMap::from([
            (query.to_string(), None),
            (r#"count(last_over_time(a{ns="shop"}[1m]))"#.to_string(), Some(3.0)),
            (r#"count(last_over_time(b{ns="shop"}[5m]))"#.to_string(), None),
        ]));
        let answers = gather(&source, &[check(query)], ASKING).await;
        assert_eq!(answers[0].result, Ok(None));
        assert_eq!(
            answers[0].unmatched.as_deref(),
            Some(r#"no series match b{ns="shop"} in the last 5m (namespace shop)"#)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn queries_share_one_deadline_and_a_late_one_times_out() {
        let source = Fixed(HashMap::from([("fast".to_string(), Some(0.5))]));
        let started = Instant::now();
        let answers = gather(&source, &[check("fast"), check("slow"), check("slower")], ASKING).await;
        assert_eq!(started.elapsed(), ASKING.deadline, "one deadline for all, not one per query");
        assert_eq!(answers[0].result, Ok(Some(0.5)));
        let late = QueryError::Timeout { at: "the metrics source".into(), after: ASKING.deadline };
        assert_eq!((&answers[1].result, &answers[2].result), (&Err(late.clone()), &Err(late)));
    }
}
