//! `perf-operator validate`: on files, without a cluster, what `kubectl apply` would refuse (strict field validation,
//! see [`crate::strict`]) and the CRD's rules (schema and CEL) with their Rust twins.

use crate::Result;
use crate::manifest::{self, Document, Finding, Identity};
use crate::strict;
use perf_operator_api::PerformanceProfile;
use perf_operator_api::validation::validate_spec;
use std::path::PathBuf;

/// Problems the controller checks before acting: the Rust twins of the CRD rules (the agreement test in `crds/`
/// proves they refuse what the CRD refuses; the API server already ran the CEL rules on admission).
pub fn check_spec(profile: &PerformanceProfile, location: &str) -> Vec<Finding> {
    let mut findings: Vec<Finding> = validate_spec(&profile.spec)
        .into_iter()
        .map(|e| Finding { location: location.to_string(), field: e.field, message: e.message })
        .collect();
    // What the CRD cannot say: projection queries, index expressions, representative queries and codec chains
    // through the ClickHouse check library (a SQL parser and allow-lists), the one the reconcile sends through.
    if let Some(ch) = &profile.spec.clickhouse {
        for problem in perf_clickhouse::validate::problems(ch) {
            if let perf_clickhouse::Error::Invalid { field, message } = problem
                && !findings.iter().any(|f| f.field == field)
            {
                findings.push(Finding { location: location.to_string(), field, message });
            }
        }
    }
    for (field, access) in prometheus_accesses(profile) {
        for name in access.headers.keys().filter(|name| perf_prometheus::selects_tenant(name, None)) {
            let field = format!("{field}.headers");
            if !findings.iter().any(|f| f.field == field) {
                findings.push(Finding { location: location.to_string(), field, message: tenant_header(name) });
            }
        }
    }
    // Canary PromQL runs on a shared Prometheus and its values come back in status: only the profile's namespace.
    if let Some(canary) = &profile.spec.canary {
        let namespace = profile.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let ctx = perf_canary::QueryContext { namespace, target: profile.spec.target_ref.name.clone() };
        for (field, message) in perf_canary::scope::canary_problems(canary, &ctx) {
            if !findings.iter().any(|f| f.field == field) {
                findings.push(Finding { location: location.to_string(), field, message });
            }
        }
    }
    if let Some((field, message)) = crate::enforcement::rejections_problem(profile) {
        findings.push(Finding { location: location.to_string(), field, message });
    }
    for (field, message) in registry_problems(profile) {
        if !findings.iter().any(|f| f.field == field) {
            findings.push(Finding { location: location.to_string(), field, message });
        }
    }
    findings
}

/// What the CRD's pattern cannot say of a registry source: the reference read by the OCI grammar (a host written
/// out, a valid repository, tag and digest) and the cosign key read as a P-256 public key.
fn registry_problems(profile: &PerformanceProfile) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (field, policy) in profile.spec.policy_refs() {
        let Some(registry) = &policy.registry else { continue };
        if let Err(e) = perf_policy_host::registry::RegistryRef::parse(&registry.reference) {
            problems.push((format!("{field}.registry.reference"), e.to_string()));
        }
        if let Some(pem) = &registry.cosign_public_key {
            let key_field = format!("{field}.registry.cosignPublicKey");
            if let Err(e) = perf_policy_host::registry::cosign::PublicKey::from_pem(pem, &key_field) {
                problems.push((key_field, e.to_string()));
            }
        }
    }
    problems
}

/// The `prometheusAccess` sections of a profile, with their fields.
fn prometheus_accesses(profile: &PerformanceProfile) -> Vec<(&'static str, &perf_operator_api::PrometheusAccess)> {
    let canary = profile.spec.canary.as_ref().and_then(|c| c.analysis.prometheus_access.as_ref());
    let rate_limit = profile.spec.rate_limit.as_ref().and_then(|r| r.prometheus_access.as_ref());
    let fields = ["spec.canary.analysis.prometheusAccess", "spec.rateLimit.prometheusAccess"];
    fields.into_iter().zip([canary, rate_limit]).filter_map(|(field, access)| Some((field, access?))).collect()
}

/// Why a profile may not set header `name`.
pub fn tenant_header(name: &str) -> String {
    format!(
        "header {name:?} selects a tenant of a multi-tenant Prometheus (Mimir, Cortex, Loki, Thanos): a profile may \
         not choose one; the operator's --prometheus-tenant-header (chart controller.prometheusTenantHeader) sets it \
         to the profile's namespace"
    )
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
    for (field, message) in crate::enforcement::offline_problems(profile) {
        if !findings.iter().any(|f| f.field == field) {
            findings.push(Finding { location: location.to_string(), field, message });
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
    /// (namespace, target Deployment) -> the profile that names it first, and where: one profile per target.
    targets: std::collections::HashMap<(String, String), (String, String)>,
}

/// Validates every document under `paths` that is, or tries to be, a PerformanceProfile (see
/// [`manifest::identify`]); other resources are skipped.
/// Profiles are resolved against the analysis templates of every file given (as the operator resolves them against
/// the cluster's).
pub fn validate_paths(paths: &[PathBuf]) -> Result<Report> {
    let mut report = Report::default();
    let mut docs = Vec::new();
    for path in manifest::expand(paths)? {
        match manifest::load_documents(&path) {
            Ok(found) => docs.extend(found),
            Err(e) => report.findings.push(Finding {
                location: format!("{}:0", path.display()),
                field: "(file)".into(),
                message: e.to_string(),
            }),
        }
    }
    report.add_documents(&docs);
    Ok(report)
}

impl Report {
    /// Adds the findings of `docs`; profiles among them are resolved against the templates among them.
    pub fn add_documents(&mut self, docs: &[Document]) {
        for doc in docs {
            match manifest::identify(&doc.value) {
                Identity::Profile => {
                    self.profiles += 1;
                    let found = check_document(doc);
                    let parsed = manifest::parse_profile(doc).ok().filter(|_| found.is_empty());
                    self.findings.extend(found);
                    if let Some(profile) = parsed {
                        self.findings.extend(template_findings(&profile, &doc.location(), docs));
                        let taken = self.second_on_target(&profile, &doc.location());
                        self.findings.extend(taken);
                    }
                }
                Identity::Template => self.findings.extend(check_template_document(doc)),
                Identity::Incomplete => self.findings.extend(check_incomplete(doc)),
                Identity::Foreign => {}
            }
        }
    }
}

impl Report {
    /// A profile naming a Deployment another profile of its namespace already names: both would write its replicas,
    /// its template's checksum and its copies. Profiles without a namespace count as `default`'s.
    fn second_on_target(&mut self, profile: &PerformanceProfile, location: &str) -> Option<Finding> {
        let namespace = profile.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = profile.metadata.name.clone().unwrap_or_default();
        let target = profile.spec.target_ref.name.clone();
        let key = (namespace.clone(), target.clone());
        let Some((first, first_at)) = self.targets.get(&key) else {
            self.targets.insert(key, (name, location.to_string()));
            return None;
        };
        Some(Finding {
            location: location.to_string(),
            field: "spec.targetRef.name".into(),
            message: format!(
                "Deployment {namespace}/{target} is already the target of profile {first} ({first_at}): one profile per target"
            ),
        })
    }
}

/// The problems of `profile`'s templated metrics, resolved against the templates among `docs` (those of the
/// profile's namespace, or of none, and every cluster template), as the operator resolves them in the cluster.
pub fn template_findings(profile: &PerformanceProfile, location: &str, docs: &[Document]) -> Vec<Finding> {
    let Some(canary) = &profile.spec.canary else { return Vec::new() };
    let finding = |(field, message): (String, String)| Finding { location: location.to_string(), field, message };
    match resolve_in(profile, canary, docs) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(finding).collect(),
    }
}

/// `canary` with its templates resolved against those among `docs`.
pub fn resolve_in(
    profile: &PerformanceProfile,
    canary: &perf_operator_api::CanarySpec,
    docs: &[Document],
) -> std::result::Result<perf_canary::templates::Resolved, Vec<(String, String)>> {
    let namespace = profile.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let ctx = perf_canary::QueryContext { namespace, target: profile.spec.target_ref.name.clone() };
    if perf_canary::templates::references(canary).is_empty() {
        return Ok(perf_canary::templates::Resolved::inline(canary));
    }
    let values = docs.iter().map(|d| &d.value);
    // A template that does not parse is reported on its own document; here it is only absent.
    let templates = perf_canary::templates::Templates::from_documents(values, &ctx.namespace).unwrap_or_default();
    perf_canary::templates::resolve(canary, &templates, &ctx)
}

/// Every problem of one template document: strict fields, repeated keys, types, the kind's rules, what the query
/// must be whoever uses it, and for a namespaced (the tenant's) template the tenant headers a profile may not set.
pub fn check_template_document(doc: &Document) -> Vec<Finding> {
    let location = doc.location();
    let finding = |field: String, message: String| Finding { location: location.clone(), field, message };
    let mut findings: Vec<Finding> =
        strict::check(&doc.value).into_iter().map(|e| finding(e.field, e.message)).collect();
    findings.extend(doc.duplicates.iter().map(|path| finding(path.clone(), DUPLICATE.into())));
    let kind = perf_canary::templates::template_kind(&doc.value);
    let parsed = match kind {
        Some(perf_operator_api::TemplateKind::AnalysisTemplate) => {
            manifest::parse_as::<perf_operator_api::AnalysisTemplate>(doc).map(|t| (t.metadata, t.spec.template))
        }
        _ => {
            manifest::parse_as::<perf_operator_api::ClusterAnalysisTemplate>(doc).map(|t| (t.metadata, t.spec.template))
        }
    };
    let (metadata, body) = match parsed {
        Ok(parsed) => parsed,
        Err(parse) => {
            findings.push(parse);
            return findings;
        }
    };
    let mut push = |field: String, message: String| {
        if !findings.iter().any(|f| f.field == field) {
            findings.push(finding(field, message));
        }
    };
    for e in perf_operator_api::validation::validate_template(&body, "spec") {
        push(e.field, e.message);
    }
    for (field, message) in perf_canary::templates::check_template(&body) {
        push(field, message);
    }
    if kind == Some(perf_operator_api::TemplateKind::AnalysisTemplate) {
        let headers = body.prometheus_access.iter().flat_map(|a| a.headers.keys());
        for name in headers.filter(|name| perf_prometheus::selects_tenant(name, None)) {
            push("spec.prometheusAccess.headers".into(), tenant_header(name));
        }
    }
    if metadata.name.as_deref().unwrap_or_default().is_empty() {
        push("metadata.name".into(), "is required".into());
    }
    findings
}

/// Every problem of one profile document: what `kubectl apply` refuses (version and kind, unknown fields), repeated
/// keys, then the schema's types and the CRD's rules. Unknown fields are looked for in the document itself because
/// typed parsing drops them silently.
pub fn check_document(doc: &Document) -> Vec<Finding> {
    let location = doc.location();
    let finding = |field: String, message: String| Finding { location: location.clone(), field, message };
    let mut findings: Vec<Finding> =
        strict::check(&doc.value).into_iter().map(|e| finding(e.field, e.message)).collect();
    findings.extend(doc.duplicates.iter().map(|path| finding(path.clone(), DUPLICATE.into())));
    match manifest::parse_profile(doc) {
        Ok(profile) => findings.extend(check_profile(&profile, &location)),
        Err(parse) => findings.push(parse),
    }
    findings
}

/// kubectl refuses a document without `apiVersion` or `kind` whatever else it holds; only that is reported, since
/// nothing says what the document was meant to be.
fn check_incomplete(doc: &Document) -> Vec<Finding> {
    let finding =
        |field: &str, message: &str| Finding { location: doc.location(), field: field.into(), message: message.into() };
    if !doc.value.is_object() {
        return vec![finding("(document)", "expected an object with apiVersion and kind")];
    }
    let missing = |name: &str| doc.value.get(name).and_then(|v| v.as_str()).is_none_or(str::is_empty);
    ["apiVersion", "kind"].into_iter().filter(|name| missing(name)).map(|name| finding(name, "is required")).collect()
}

/// Message for a key given twice in one mapping. The API server never sees the repeat (kubectl converts YAML to
/// JSON keeping the last value), so this is the one refusal stricter than `kubectl apply`: a repeated key silently
/// drops a value, the very mistake `validate` is for.
const DUPLICATE: &str = "duplicate field; only the last value would be applied (kubectl drops the others silently)";
