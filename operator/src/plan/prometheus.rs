//! `plan --prometheus URL`: the canary's `{{interval}}` (its step interval) against the scrape intervals of the
//! Prometheus it reads. A window shorter than two scrape intervals holds fewer than two samples of a series, so
//! `rate()` over it is empty (the stage holds as "no data") or noise.

use std::time::Duration;

use perf_operator_api::PerformanceProfile;
use perf_operator_api::duration::parse_duration;
use perf_prometheus::{Prometheus, ScrapeIntervals};

use crate::{Error, Result};

/// Reads the scrape intervals of the Prometheus at `url`.
pub async fn scrape_intervals(url: &str) -> Result<ScrapeIntervals> {
    let failed = |message: String| Error::Manifest { path: format!("--prometheus {url}"), message };
    let prometheus = Prometheus::new(url, perf_prometheus::TIMEOUT).map_err(|e| failed(e.to_string()))?;
    prometheus.scrape_intervals().await.map_err(|e| failed(e.to_string()))
}

/// Warnings for `profile`'s canary: every scrape interval (the global one, and each job's own) of which the step
/// interval is less than two. Empty when the profile has no canary or the interval is long enough.
pub fn interval_warnings(profile: &PerformanceProfile, scrape: &ScrapeIntervals) -> Vec<String> {
    let Some(canary) = &profile.spec.canary else { return Vec::new() };
    // A profile in a plan was validated, so its step interval parses; an unparsable one has nothing to compare.
    let Ok(step) = parse_duration(&canary.step_interval) else { return Vec::new() };
    let too_short = |every: Duration| step < every * 2;
    let advice = |every: Duration| {
        format!(
            "{{{{interval}}}} is the step interval {}, shorter than two scrape intervals of {}: rate() over it holds \
             fewer than two samples; make stepInterval at least {}",
            canary.step_interval,
            human(every),
            human(every * 2)
        )
    };
    let mut warnings = Vec::new();
    if too_short(scrape.global) {
        warnings.push(format!("global scrape interval: {}", advice(scrape.global)));
    }
    for (job, every) in scrape.jobs.iter().filter(|(_, every)| *every != scrape.global && too_short(*every)) {
        warnings.push(format!("job {job:?}, if it scrapes the app: {}", advice(*every)));
    }
    let quick = canary.analysis.check_interval.as_deref().and_then(|text| parse_duration(text).ok());
    if let Some(quick) = quick.filter(|q| !q.is_zero() && *q < scrape.global * 2) {
        warnings.push(format!(
            "analysis.checkInterval {} is shorter than two global scrape intervals ({}): the first quick checks of \
             each stage see fewer than two samples (no data), so a bad canary is caught no sooner",
            human(quick),
            human(scrape.global * 2)
        ));
    }
    warnings
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(step: &str) -> PerformanceProfile {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"targetRef": {"name": "web"},
                     "canary": {"stepInterval": step, "analysis": {"prometheus": "http://prometheus:9090"}}}
        }))
        .unwrap()
    }

    fn scrape(global: u64, jobs: &[(&str, u64)]) -> ScrapeIntervals {
        ScrapeIntervals {
            global: Duration::from_secs(global),
            jobs: jobs.iter().map(|(j, s)| (j.to_string(), Duration::from_secs(*s))).collect(),
        }
    }

    #[test]
    fn warns_below_two_scrape_intervals_only() {
        let cases: [(&str, ScrapeIntervals, usize); 7] = [
            ("30s", scrape(15, &[]), 0),
            ("29s", scrape(15, &[]), 1),
            ("1m", scrape(60, &[]), 1),
            ("2m", scrape(60, &[]), 0),
            ("30s", scrape(15, &[("app", 5), ("slow", 60)]), 1),
            ("10s", scrape(15, &[("app", 5), ("same", 15)]), 1),
            ("1s", scrape(15, &[("app", 5)]), 2),
        ];
        for (step, scrape, expected) in cases {
            let got = interval_warnings(&profile(step), &scrape);
            assert_eq!(got.len(), expected, "{step} vs {scrape:?}: {got:?}");
        }
        let got = interval_warnings(&profile("29s"), &scrape(15, &[]));
        assert!(got[0].contains("step interval 29s") && got[0].contains("at least 30s"), "{got:?}");
        let got = interval_warnings(&profile("30s"), &scrape(15, &[("slow", 60)]));
        assert!(got[0].starts_with("job \"slow\"") && got[0].contains("at least 2m"), "{got:?}");
    }

    #[test]
    fn warns_when_the_quick_check_cadence_is_below_two_scrapes() {
        let with = |check: &str| {
            let mut p = profile("1m");
            if let Some(c) = p.spec.canary.as_mut() {
                c.analysis.check_interval = Some(check.into());
            }
            interval_warnings(&p, &scrape(15, &[]))
        };
        assert!(with("10s")[0].contains("checkInterval 10s is shorter than two global scrape intervals (30s)"));
        assert!(with("30s").is_empty() && with("0s").is_empty());
        assert!(interval_warnings(&profile("1m"), &scrape(15, &[])).is_empty(), "the default follows the scrapes");
    }
}
