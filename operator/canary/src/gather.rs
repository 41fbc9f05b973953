//! Asking Prometheus every check's query at once, under one deadline for the whole analysis: a slow Prometheus
//! costs one deadline, never queries x timeout. An empty answer is followed (within the same deadline) by one
//! query per selector, so the outcome can say which selector matched nothing. At most [`IN_FLIGHT`] of one
//! analysis's queries are in flight at a time: a profile with many checks and selectors waits its turn rather than
//! taking the shared Prometheus client's every slot.

use crate::analysis::Check;
use crate::selectors::{Selector, selectors};
use futures::future::join_all;
use perf_prometheus::{MetricsSource, QueryError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Queries of one analysis (checks and diagnosis) in flight at once.
pub const IN_FLIGHT: usize = 8;

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
/// A check names its Prometheus by index in `sources` (0 when it names none); every source shares the analysis's
/// turns.
pub async fn gather(sources: &[&dyn MetricsSource], checks: &[Check], asking: Asking<'_>) -> Vec<Answer> {
    let until = Instant::now() + asking.deadline;
    let turns = &Semaphore::new(IN_FLIGHT);
    let asked: Vec<Asked> =
        sources.iter().map(|&source| Asked { source, until, deadline: asking.deadline, turns }).collect();
    // A source out of range is a caller's mistake; it is answered as a query nobody could ask.
    let of = |check: &Check| asked.get(check.source).or(asked.first());
    let results = join_all(checks.iter().map(|c| async move {
        match of(c) {
            // A check that cannot be asked fails on its own reason (see `Check::broken`).
            _ if c.broken.is_some() => Ok(None),
            Some(asked) => asked.bounded(&c.query).await,
            None => Err(QueryError::Refused { at: "no Prometheus".into() }),
        }
    }))
    .await;
    let answers = results.into_iter().zip(checks).map(|(result, check)| {
        let asked = of(check);
        async move {
            let unmatched = match (&result, asked) {
                (Ok(None), Some(asked)) if check.broken.is_none() => unmatched(asked, &check.query, asking).await,
                _ => None,
            };
            Answer { result, unmatched }
        }
    });
    join_all(answers).await
}

/// One analysis's way of asking: its source, its deadline and its turns.
#[derive(Clone, Copy)]
struct Asked<'a> {
    source: &'a dyn MetricsSource,
    until: Instant,
    deadline: Duration,
    turns: &'a Semaphore,
}

impl Asked<'_> {
    /// `promql`'s answer once a turn is free, by the analysis's deadline (waiting for the turn included).
    async fn bounded(&self, promql: &str) -> Result<Option<f64>, QueryError> {
        let late = || QueryError::Timeout { at: self.source.at().to_string(), after: self.deadline };
        let asked = async {
            // The semaphore lives as long as the analysis and is never closed.
            let _turn = self.turns.acquire().await.ok();
            self.source.query(promql).await
        };
        tokio::time::timeout_at(self.until, asked).await.unwrap_or_else(|_| Err(late()))
    }
}

/// The first selector of `query` with no series in its range (or the window), said in a sentence; None when each
/// matched something or the diagnosis itself got no answer.
async fn unmatched(asked: &Asked<'_>, query: &str, asking: Asking<'_>) -> Option<String> {
    let found = selectors(query);
    let probes: Vec<String> = found.iter().map(|s| probe(s, asking.window)).collect();
    let counts = join_all(probes.iter().map(|p| asked.bounded(p))).await;
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
            source: 0,
            broken: None,
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
        let answers = gather(&[&source], &[check(query)], ASKING).await;
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
        let answers = gather(&[&source], &[check("fast"), check("slow"), check("slower")], ASKING).await;
        assert_eq!(started.elapsed(), ASKING.deadline, "one deadline for all, not one per query");
        assert_eq!(answers[0].result, Ok(Some(0.5)));
        let late = QueryError::Timeout { at: "the metrics source".into(), after: ASKING.deadline };
        assert_eq!((&answers[1].result, &answers[2].result), (&Err(late.clone()), &Err(late)));
    }

    /// Answers 1.0 after 10 ms and counts how many queries were in flight at once.
    #[derive(Default)]
    struct Counting {
        now: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl MetricsSource for Counting {
        fn query<'a>(&'a self, _: &'a str) -> QueryFuture<'a> {
            use std::sync::atomic::Ordering::SeqCst;
            Box::pin(async move {
                let now = self.now.fetch_add(1, SeqCst) + 1;
                self.most.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                self.now.fetch_sub(1, SeqCst);
                Ok(Some(1.0))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_analysis_keeps_at_most_its_share_of_queries_in_flight() {
        let source = Counting::default();
        let checks: Vec<Check> = (0..35).map(|i| check(&format!("q{i}"))).collect();
        let asking = Asking { deadline: Duration::from_secs(5), ..ASKING };
        let answers = gather(&[&source], &checks, asking).await;
        assert!(answers.iter().all(|a| a.result == Ok(Some(1.0))), "every check answered");
        assert_eq!(source.most.load(std::sync::atomic::Ordering::SeqCst), IN_FLIGHT);
    }
}
