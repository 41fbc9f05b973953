//! The scrape intervals a Prometheus is configured with (`/api/v1/status/config`): a rate window shorter than two
//! scrape intervals holds fewer than two samples of a series, so `rate()` over it is empty or noise.

use std::time::Duration;

use serde::Deserialize;

use crate::{Prometheus, QueryError};

/// Prometheus's default when `global.scrape_interval` is not set.
const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);

/// The global scrape interval and every job that sets its own.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeIntervals {
    pub global: Duration,
    pub jobs: Vec<(String, Duration)>,
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    global: Global,
    #[serde(default)]
    scrape_configs: Vec<Job>,
}

#[derive(Deserialize, Default)]
struct Global {
    scrape_interval: Option<String>,
}

#[derive(Deserialize)]
struct Job {
    job_name: String,
    scrape_interval: Option<String>,
}

impl Prometheus {
    /// Reads the configuration Prometheus runs with.
    pub async fn scrape_intervals(&self) -> Result<ScrapeIntervals, QueryError> {
        self.scrape_intervals_within(self.timeout).await
    }

    /// [`Prometheus::scrape_intervals`] within `timeout`.
    pub async fn scrape_intervals_within(&self, timeout: std::time::Duration) -> Result<ScrapeIntervals, QueryError> {
        let data = self.api_within("status/config", &[], timeout).await?;
        let unexpected = |what: String| QueryError::NotPrometheus { at: self.at.clone(), what };
        let yaml = data["yaml"].as_str().ok_or_else(|| unexpected("a config answer without yaml".into()))?;
        parse(yaml).map_err(unexpected)
    }
}

/// Scrape intervals from a Prometheus configuration (YAML).
pub fn parse(yaml: &str) -> Result<ScrapeIntervals, String> {
    let config: Config =
        serde_saphyr::from_str(yaml).map_err(|e| format!("a configuration that does not parse: {e}"))?;
    let global = match &config.global.scrape_interval {
        Some(text) => duration(text)?,
        None => DEFAULT_SCRAPE_INTERVAL,
    };
    let jobs = config
        .scrape_configs
        .iter()
        .filter_map(|job| job.scrape_interval.as_ref().map(|text| (job, text)))
        .map(|(job, text)| duration(text).map(|d| (job.job_name.clone(), d)))
        .collect::<Result<_, _>>()?;
    Ok(ScrapeIntervals { global, jobs })
}

/// A Prometheus duration: `1d2h`, `30s`, `500ms` (units y, w, d, h, m, s, ms).
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("scrape interval {text:?} is not a Prometheus duration");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let units: [(&str, u64); 7] = [
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("y", 31_536_000_000),
        ];
        let (unit, millis) = units.iter().find(|(u, _)| rest.starts_with(u)).ok_or_else(bad)?;
        rest = &rest[unit.len()..];
        total += Duration::from_millis(value.checked_mul(*millis).ok_or_else(bad)?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_prometheus_units() {
        let cases = [
            ("15s", 15_000),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1d", 86_400_000),
            ("2w", 1_209_600_000),
        ];
        for (text, millis) in cases {
            assert_eq!(duration(text), Ok(Duration::from_millis(millis)), "{text}");
        }
        for bad in ["", "15", "s", "1x", "-1s", "99999999999999999999s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn global_default_and_per_job_intervals() {
        let yaml = "global:\n  scrape_interval: 15s\n  evaluation_interval: 1m\nscrape_configs:\n- job_name: app\n  scrape_interval: 5s\n- job_name: slow\n  scrape_interval: 2m\n- job_name: plain\n";
        let got = parse(yaml).unwrap();
        assert_eq!(got.global, Duration::from_secs(15));
        assert_eq!(got.jobs, vec![("app".into(), Duration::from_secs(5)), ("slow".into(), Duration::from_secs(120))]);
        assert_eq!(parse("scrape_configs: []\n").unwrap().global, Duration::from_secs(60), "Prometheus's default");
        assert!(parse("global: [").unwrap_err().contains("does not parse"));
        assert!(parse("global:\n  scrape_interval: soon\n").unwrap_err().contains("soon"));
    }
}
