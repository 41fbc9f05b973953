//! A profile's metrics that name an analysis template, resolved against the templates read (from the cluster at each
//! analysis, or from files for `validate`, `plan` and `canary analyze`): the query with its arguments filled in, the
//! bounds and `onNoData` (the metric's, else the template's), and the Prometheus it is asked on. Pure.
//!
//! The tenant passes arguments; the template's author wrote the query. An argument is a plain token (see
//! [`perf_operator_api::is_arg_value`]), so the query keeps its shape whatever is passed. A namespaced template is
//! the tenant's own text and is held to the profile's namespace as an inline query is ([`crate::scope`]); a cluster
//! template is the administrator's, and may read beyond it.

use crate::analysis::{Check, QueryContext, render};
use perf_operator_api::{
    AnalysisTemplate, CanarySpec, ClusterAnalysisTemplate, MetricCheck, PrometheusAccess, Slo, TemplateBody,
    TemplateKind, TemplateRef, is_arg_value,
};
use std::collections::BTreeMap;

/// The templates a profile's metrics may name: its namespace's and the cluster's, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Templates {
    pub namespaced: BTreeMap<String, TemplateBody>,
    pub cluster: BTreeMap<String, TemplateBody>,
    /// Why no cluster template may be named here, when none may (the operator's `--cluster-analysis-templates`).
    pub cluster_refused: Option<String>,
}

impl Templates {
    /// The template `r` names, if it was read.
    pub fn get(&self, r: &TemplateRef) -> Option<&TemplateBody> {
        match r.kind {
            TemplateKind::AnalysisTemplate => self.namespaced.get(&r.name),
            TemplateKind::ClusterAnalysisTemplate => self.cluster.get(&r.name),
        }
    }
}

impl Templates {
    /// The templates among `docs` (parsed YAML or JSON documents) that a profile of `namespace` may name: every
    /// `ClusterAnalysisTemplate`, and the `AnalysisTemplate`s of `namespace` (or of none: `kubectl apply -n` would
    /// put them there). Other documents are skipped; a template that does not parse is an error naming it.
    pub fn from_documents<'a>(
        docs: impl IntoIterator<Item = &'a serde_json::Value>,
        namespace: &str,
    ) -> Result<Self, String> {
        let mut templates = Self::default();
        for doc in docs {
            let Some(kind) = template_kind(doc) else { continue };
            let name = doc.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let parsed = |e: serde_json::Error| format!("{kind} {name:?}: {e}");
            match kind {
                TemplateKind::AnalysisTemplate => {
                    let t: AnalysisTemplate = serde_json::from_value(doc.clone()).map_err(parsed)?;
                    if t.metadata.namespace.as_deref().is_none_or(|ns| ns == namespace) {
                        templates.namespaced.insert(name, t.spec.template);
                    }
                }
                TemplateKind::ClusterAnalysisTemplate => {
                    let t: ClusterAnalysisTemplate = serde_json::from_value(doc.clone()).map_err(parsed)?;
                    templates.cluster.insert(name, t.spec.template);
                }
            }
        }
        Ok(templates)
    }
}

/// What can be checked of a template without the profile that uses it: its query, with every argument at its
/// default (or `x`) and the profile's placeholders at stand-ins, must be PromQL with no placeholder unknown, and
/// every `{{args.NAME}}` it uses must be declared. Fields under `spec`.
pub fn check_template(body: &TemplateBody) -> Vec<(String, String)> {
    let mut query = body.query.clone();
    for arg in &body.args {
        query = query.replace(&format!("{{{{args.{}}}}}", arg.name), arg.default.as_deref().unwrap_or("x"));
    }
    let ctx = QueryContext { namespace: "namespace".into(), target: "target".into() };
    let rendered = render(&query, &ctx, "1m");
    let field = "spec.query".to_string();
    if let Some(unknown) = crate::scope::unknown_placeholder(&rendered) {
        let known = crate::scope::PLACEHOLDERS;
        let declared: Vec<String> = body.args.iter().map(|a| format!("{{{{args.{}}}}}", a.name)).collect();
        let declared = if declared.is_empty() { String::new() } else { format!("{}, ", declared.join(", ")) };
        return vec![(field, format!("unknown placeholder {unknown}: known are {declared}{known}"))];
    }
    match crate::scope::check(&rendered, &ctx.namespace) {
        Err(crate::scope::Unscoped::NotPromql(e)) => vec![(field, format!("not PromQL: {e}"))],
        _ => Vec::new(),
    }
}

/// The template kind a document is (our group, either kind), if it is one.
pub fn template_kind(doc: &serde_json::Value) -> Option<TemplateKind> {
    let group = doc.get("apiVersion").and_then(|v| v.as_str())?.split('/').next()?;
    if group != perf_operator_api::GROUP {
        return None;
    }
    match doc.get("kind").and_then(|v| v.as_str())? {
        "AnalysisTemplate" => Some(TemplateKind::AnalysisTemplate),
        "ClusterAnalysisTemplate" => Some(TemplateKind::ClusterAnalysisTemplate),
        _ => None,
    }
}

/// The distinct templates `spec`'s metrics name, in order: what the controller reads.
pub fn references(spec: &CanarySpec) -> Vec<TemplateRef> {
    let mut out: Vec<TemplateRef> = Vec::new();
    for r in spec.analysis.metrics.iter().filter_map(|m| m.template_ref.as_ref()) {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

/// A Prometheus a template names for its own query.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub template: TemplateRef,
    pub url: String,
    /// Its Secret and ConfigMap are in the template's namespace: the profile's for an `AnalysisTemplate`, the
    /// operator's for a `ClusterAnalysisTemplate`.
    pub access: Option<PrometheusAccess>,
}

/// A canary spec with its templates resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The spec with every templated metric's query, bounds and `onNoData` filled in.
    pub spec: CanarySpec,
    /// The Prometheus endpoints of templates that name their own, in order; source `i + 1` of a check is the `i`th
    /// (source 0 is the analysis's own Prometheus).
    pub endpoints: Vec<Endpoint>,
    /// Per metric of `spec.analysis.metrics`: the index of its source.
    sources: Vec<usize>,
    /// Per metric: why its template could not be resolved, if it could not.
    pub broken: Vec<Option<Broken>>,
}

impl Resolved {
    /// A spec whose metrics name no template.
    pub fn inline(spec: &CanarySpec) -> Self {
        let n = spec.analysis.metrics.len();
        Self { spec: spec.clone(), endpoints: Vec::new(), sources: vec![0; n], broken: vec![None; n] }
    }

    /// The source of `endpoint`: its template's, added when new.
    fn endpoint_source(&mut self, endpoint: Endpoint) -> usize {
        let at = match self.endpoints.iter().position(|e| e.template == endpoint.template) {
            Some(at) => at,
            None => {
                self.endpoints.push(endpoint);
                self.endpoints.len() - 1
            }
        };
        at + 1
    }

    /// Marks every metric asked on `source` as broken by `problem` (its Prometheus may not be asked), and asks
    /// them nowhere.
    pub fn break_source(&mut self, source: usize, problem: (String, String)) {
        for i in 0..self.sources.len() {
            if self.sources[i] == source && source != 0 {
                self.broken[i] = Some(Broken { problems: vec![problem.clone()] });
            }
        }
    }

    /// The source (see [`Resolved::endpoints`]) metric `i` is asked on.
    pub fn source_of(&self, metric: usize) -> usize {
        self.sources.get(metric).copied().unwrap_or(0)
    }

    /// The checks of a stage ([`crate::analysis::checks`]), each metric on its source.
    pub fn checks(&self, slo: &Slo, ctx: &QueryContext) -> Vec<Check> {
        let mut all = crate::analysis::checks(&self.spec, slo, ctx);
        let builtin = all.len().saturating_sub(self.spec.analysis.metrics.len());
        for (i, check) in all.iter_mut().skip(builtin).enumerate() {
            check.source = self.source_of(i);
            check.broken = self.broken.get(i).cloned().flatten().map(|b| b.reason());
        }
        all
    }
}

/// Resolves `spec`'s templated metrics against `templates` for the profile `ctx` describes. Every problem names its
/// field: a template not read, an argument missing, unknown or not a plain token, a placeholder left, a namespaced
/// template's query that reads beyond the namespace, a metric left without bounds. For `validate`, `plan` and
/// `canary analyze`, where any problem is bad input.
pub fn resolve(
    spec: &CanarySpec,
    templates: &Templates,
    ctx: &QueryContext,
) -> Result<Resolved, Vec<(String, String)>> {
    let resolved = resolve_each(spec, templates, ctx);
    let problems: Problems = resolved.broken.iter().flatten().flat_map(|b| b.problems.clone()).collect();
    if problems.is_empty() { Ok(resolved) } else { Err(problems) }
}

/// [`resolve`] metric by metric, for the operator: a metric whose template cannot be resolved becomes a check
/// that fails with the reason (it can never pass as written, like a query Prometheus rejects), and the rest of the
/// analysis runs. Only an analysis reads templates, so a missing one never stops the rest of the run's work.
pub fn resolve_each(spec: &CanarySpec, templates: &Templates, ctx: &QueryContext) -> Resolved {
    let mut resolved = Resolved::inline(spec);
    for (i, metric) in spec.analysis.metrics.iter().enumerate() {
        let Some(r) = &metric.template_ref else { continue };
        let field = format!("spec.canary.analysis.metrics[{i}]");
        match resolve_metric(metric, r, templates, ctx, &spec.step_interval, &field) {
            Ok((filled, endpoint)) => {
                resolved.spec.analysis.metrics[i] = filled;
                if let Some(endpoint) = endpoint {
                    resolved.sources[i] = resolved.endpoint_source(endpoint);
                }
            }
            Err(problems) => resolved.broken[i] = Some(Broken { problems }),
        }
    }
    resolved
}

/// Why a metric's template could not be resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Broken {
    /// (field, message), at least one.
    pub problems: Problems,
}

impl Broken {
    /// The reason its check fails with.
    pub fn reason(&self) -> String {
        self.problems.iter().map(|(field, message)| format!("{field}: {message}")).collect::<Vec<_>>().join("; ")
    }
}

type Problems = Vec<(String, String)>;

fn resolve_metric(
    metric: &MetricCheck,
    r: &TemplateRef,
    templates: &Templates,
    ctx: &QueryContext,
    interval: &str,
    field: &str,
) -> Result<(MetricCheck, Option<Endpoint>), Problems> {
    let named = format!("{} {}", r.kind, r.name);
    let refused = templates.cluster_refused.as_ref().filter(|_| r.kind == TemplateKind::ClusterAnalysisTemplate);
    if let Some(why) = refused {
        return Err(vec![(format!("{field}.templateRef"), why.clone())]);
    }
    let Some(template) = templates.get(r) else {
        let where_ = match r.kind {
            TemplateKind::AnalysisTemplate => format!(" in namespace {}", ctx.namespace),
            TemplateKind::ClusterAnalysisTemplate => String::new(),
        };
        return Err(vec![(format!("{field}.templateRef"), format!("{named} not found{where_}"))]);
    };
    let query = fill_args(metric, template, field, &named)?;
    let rendered = render(&query, ctx, interval);
    let query_field = format!("{field}.templateRef");
    if let Some(unknown) = crate::scope::unknown_placeholder(&rendered) {
        let message = format!(
            "{named}: query: unknown placeholder {unknown}: known are {{{{args.NAME}}}}, {}",
            crate::scope::PLACEHOLDERS
        );
        return Err(vec![(query_field, message)]);
    }
    if r.kind == TemplateKind::AnalysisTemplate
        && let Err(e) = crate::scope::check(&rendered, &ctx.namespace)
    {
        return Err(vec![(query_field, format!("{named}: query: {e}"))]);
    }
    let own_bounds = metric.min.is_some() || metric.max.is_some();
    let (min, max) = if own_bounds { (metric.min, metric.max) } else { (template.min, template.max) };
    if min.is_none() && max.is_none() {
        return Err(vec![(field.to_string(), format!("metric needs min or max: neither it nor {named} sets one"))]);
    }
    let filled =
        MetricCheck { query, min, max, on_no_data: metric.on_no_data.or(template.on_no_data), ..metric.clone() };
    let endpoint = template.prometheus.as_ref().map(|url| Endpoint {
        template: r.clone(),
        url: url.clone(),
        access: template.prometheus_access.clone(),
    });
    Ok((filled, endpoint))
}

/// The template's query with `{{args.NAME}}` replaced: each declared argument by the metric's value or its default.
fn fill_args(metric: &MetricCheck, template: &TemplateBody, field: &str, named: &str) -> Result<String, Problems> {
    let mut problems = Vec::new();
    for (name, value) in &metric.args {
        let arg_field = format!("{field}.args.{name}");
        if !template.args.iter().any(|a| &a.name == name) {
            let known: Vec<&str> = template.args.iter().map(|a| a.name.as_str()).collect();
            let known =
                if known.is_empty() { "it takes none".to_string() } else { format!("it takes {}", known.join(", ")) };
            problems.push((arg_field, format!("{named} has no argument {name:?}: {known}")));
        } else if !is_arg_value(value) {
            problems.push((arg_field, format!("{value:?} is not {}", perf_operator_api::validation::ARG_VALUE)));
        }
    }
    let mut query = template.query.clone();
    for arg in &template.args {
        match metric.args.get(&arg.name).or(arg.default.as_ref()) {
            Some(value) => query = query.replace(&format!("{{{{args.{}}}}}", arg.name), value),
            None => problems
                .push((format!("{field}.args"), format!("{named} needs argument {:?} (it has no default)", arg.name))),
        }
    }
    if problems.is_empty() { Ok(query) } else { Err(problems) }
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
