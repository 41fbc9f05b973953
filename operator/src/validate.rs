//! `perf-operator validate`: the CRD's rules (schema and CEL) and their Rust twins, on files, without a cluster.

use crate::Result;
use crate::manifest::{self, Finding};
use perf_operator_api::PerformanceProfile;
use perf_operator_api::validation::validate_spec;
use std::path::PathBuf;

/// Problems the controller checks before acting: the Rust twins of the CRD rules (the agreement test in `crds/`
/// proves they refuse what the CRD refuses; the API server already ran the CEL rules on admission).
pub fn check_spec(profile: &PerformanceProfile, location: &str) -> Vec<Finding> {
    validate_spec(&profile.spec)
        .into_iter()
        .map(|e| Finding { location: location.to_string(), field: e.field, message: e.message })
        .collect()
}

/// Problems of one profile for `validate` and `plan`: the Rust rules, then any CEL rule of the CRD that fails
/// (deduplicated by field), then metadata.
pub fn check_profile(profile: &PerformanceProfile, location: &str) -> Vec<Finding> {
    let mut findings = check_spec(profile, location);
    if let Err(errors) = perf_operator_api::validation::validate_cel(profile) {
        for e in errors.iter() {
            let field = if e.field_path.is_empty() { "spec".to_string() } else { e.field_path.clone() };
            if !findings.iter().any(|f| f.field == field) {
                findings.push(Finding { location: location.to_string(), field, message: e.message.clone() });
            }
        }
    }
    if profile.metadata.name.as_deref().unwrap_or_default().is_empty() {
        findings.push(Finding {
            location: location.into(),
            field: "metadata.name".into(),
            message: "is required".into(),
        });
    }
    findings
}

/// Outcome of validating a set of paths.
#[derive(Debug, Default)]
pub struct Report {
    pub profiles: usize,
    pub findings: Vec<Finding>,
}

/// Validates every PerformanceProfile document under `paths`.
pub fn validate_paths(paths: &[PathBuf]) -> Result<Report> {
    let mut report = Report::default();
    for path in manifest::expand(paths)? {
        let docs = match manifest::read_documents(&path) {
            Ok(docs) => docs,
            Err(e) => {
                report.findings.push(Finding {
                    location: format!("{}:0", path.display()),
                    field: "(file)".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        for doc in docs.iter().filter(|d| manifest::is_profile(&d.value)) {
            report.profiles += 1;
            match manifest::parse_profile(doc) {
                Ok(profile) => {
                    report.findings.extend(check_profile(&profile, &format!("{}:{}", doc.path.display(), doc.index)))
                }
                Err(finding) => report.findings.push(finding),
            }
        }
    }
    Ok(report)
}
