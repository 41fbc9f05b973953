//! Run history, as Argo Rollouts keeps AnalysisRuns: every analysis of a run (status keeps the last 5 of all runs)
//! in a ConfigMap `<profile>-run-<run id>` the profile owns, newest first; past `canary.analysis.runHistoryLimit`
//! runs (default 10) the oldest runs' ConfigMaps are deleted. Written after the step that analysed is applied; a
//! failure to write is reported as an event and never fails the round. The record itself is pure ([`record`]).

use super::Context;
use super::apply::apply_if_changed;
use crate::Result;
use crate::components::labels;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use perf_operator_api::{AnalysisRecord, DEFAULT_RUN_HISTORY, PerformanceProfile};
use std::collections::BTreeMap;

/// Component label of the history ConfigMaps.
pub const COMPONENT: &str = "canary-run";
/// Key holding the analyses (a JSON array, newest first).
pub const ANALYSES_KEY: &str = "analyses.json";
/// Key holding the run id (the template hash).
pub const RUN_KEY: &str = "run";
/// A run's record stays well under a ConfigMap's 1 MiB: its oldest analyses are dropped past this.
const MAX_BYTES: usize = 768 << 10;

/// The ConfigMap name of run `run` of `profile` (a DNS subdomain at most 253 long).
pub fn name(profile: &str, run: &str) -> String {
    let short: String = run.chars().take(10).collect();
    let suffix = format!("-run-{short}");
    let room = 253usize.saturating_sub(suffix.len());
    format!("{}{suffix}", profile.chars().take(room).collect::<String>().trim_end_matches(['-', '.']))
}

/// The run's ConfigMap with `analysis` added in front of what `live` holds. Pure.
pub fn record(
    profile: &PerformanceProfile,
    run: &str,
    live: Option<&ConfigMap>,
    analysis: &AnalysisRecord,
) -> ConfigMap {
    let held: Vec<AnalysisRecord> = live
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(ANALYSES_KEY))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let mut analyses = vec![analysis.clone()];
    analyses.extend(held);
    let mut text = serde_json::to_string(&analyses).unwrap_or_default();
    while text.len() > MAX_BYTES && analyses.len() > 1 {
        analyses.pop();
        text = serde_json::to_string(&analyses).unwrap_or_default();
    }
    ConfigMap {
        metadata: labels::meta(profile, name(&profile.name_any(), run), COMPONENT),
        data: Some(BTreeMap::from([(RUN_KEY.to_string(), run.to_string()), (ANALYSES_KEY.to_string(), text)])),
        ..ConfigMap::default()
    }
}

/// Records the step's analysis in its run's ConfigMap, then deletes the oldest runs past the limit.
pub async fn keep(ctx: &Context, profile: &PerformanceProfile, step: &perf_canary::Step) -> Result<()> {
    let (Some(analysis), Some(run)) = (step.status.analyses.first(), step.status.run_id.as_deref()) else {
        return Ok(());
    };
    // Only an analysis the step kept (a quick check that passed is not kept in status, nor here).
    let before = profile.status.as_ref().and_then(|s| s.canary.as_ref()).and_then(|c| c.analyses.first());
    if step.analysis.is_none() || before == Some(analysis) {
        return Ok(());
    }
    let limit = profile.spec.canary.as_ref().and_then(|c| c.analysis.run_history_limit).unwrap_or(DEFAULT_RUN_HISTORY);
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    if limit > 0 {
        let live = ctx.caches.get_or_read(&api, &namespace, &name(&profile.name_any(), run)).await?;
        apply_if_changed(ctx, &record(profile, run, live.as_deref(), analysis)).await?;
    }
    // Runs only grow in number at a run's first analysis (a run starts with none): the one time to prune, so
    // later analyses cost no LIST.
    if step.status.analyses.len() == 1 {
        prune(&api, profile, limit as usize).await?;
    }
    Ok(())
}

/// Deletes this profile's run ConfigMaps past the newest `limit` (by creation).
async fn prune(api: &Api<ConfigMap>, profile: &PerformanceProfile, limit: usize) -> Result<()> {
    let selector = format!("{}={},app.kubernetes.io/name={COMPONENT}", labels::PROFILE_LABEL, profile.name_any());
    let mut runs = api.list_metadata(&ListParams::default().labels(&selector)).await?.items;
    // Only those this profile controls (a same-named profile recreated since owns none of the old ones).
    let uid = profile.uid().unwrap_or_default();
    runs.retain(|m| super::apply::controlled_by(&m.metadata, &uid));
    runs.sort_by(|a, b| {
        b.creation_timestamp().cmp(&a.creation_timestamp()).then_with(|| a.name_any().cmp(&b.name_any()))
    });
    for old in runs.iter().skip(limit) {
        api.delete(&old.name_any(), &DeleteParams::default()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_operator_api::CheckVerdict;

    fn analysis(stage: u32) -> AnalysisRecord {
        AnalysisRecord { at: None, stage_index: stage, weight: 10, verdict: CheckVerdict::Pass, checks: Vec::new() }
    }

    fn profile(name: &str) -> PerformanceProfile {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": name, "namespace": "shop", "uid": "u1"}, "spec": {"targetRef": {"name": "web"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_run_keeps_every_analysis_newest_first_within_a_configmaps_size() {
        let p = profile("web");
        let first = record(&p, "abcdef0123456789", None, &analysis(0));
        assert_eq!(first.metadata.name.as_deref(), Some("web-run-abcdef0123"));
        assert_eq!(first.metadata.owner_references.as_ref().map(|o| o[0].uid.as_str()), Some("u1"));
        let second = record(&p, "abcdef0123456789", Some(&first), &analysis(1));
        let kept: Vec<AnalysisRecord> = serde_json::from_str(&second.data.as_ref().unwrap()[ANALYSES_KEY]).unwrap();
        assert_eq!(kept.iter().map(|a| a.stage_index).collect::<Vec<_>>(), [1, 0]);
        // Past the size bound the oldest go; the newest stays.
        let mut big = analysis(9);
        big.checks = (0..40)
            .map(|i| perf_operator_api::CheckRecord {
                name: format!("c{i}"),
                value: Some(1.0),
                threshold: "x".repeat(200),
                verdict: CheckVerdict::Pass,
                reason: Some("y".repeat(200)),
            })
            .collect();
        let mut cm = record(&p, "r", None, &big);
        for _ in 0..80 {
            cm = record(&p, "r", Some(&cm), &big);
        }
        let text = &cm.data.as_ref().unwrap()[ANALYSES_KEY];
        assert!(text.len() <= MAX_BYTES, "{}", text.len());
        assert!(serde_json::from_str::<Vec<AnalysisRecord>>(text).unwrap().len() > 10);
        // A held record that does not parse is started afresh, not an error.
        let mut broken = first.clone();
        broken.data.as_mut().unwrap().insert(ANALYSES_KEY.into(), "{".into());
        let fresh = record(&p, "abcdef0123456789", Some(&broken), &analysis(2));
        assert_eq!(serde_json::from_str::<Vec<AnalysisRecord>>(&fresh.data.unwrap()[ANALYSES_KEY]).unwrap().len(), 1);
    }

    #[test]
    fn names_are_dns_subdomains_within_253() {
        assert_eq!(name("web", "0123456789abcdef"), "web-run-0123456789");
        let long = "a".repeat(253);
        assert!(name(&long, "0123456789abcdef").len() <= 253);
        assert_eq!(name(&format!("{}-", "b".repeat(238)), "0123456789"), format!("{}-run-0123456789", "b".repeat(238)));
    }
}
