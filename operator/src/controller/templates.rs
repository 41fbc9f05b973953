//! The analysis templates a profile's canary metrics name, read from the API server at each analysis (a template's
//! change applies at the next one; no watch, since nothing else depends on them) and resolved with
//! `perf_canary::templates`; then a Prometheus client per template that names its own. A namespaced template is
//! the tenant's and is judged as the profile is (egress allow-list, no tenant header); a cluster template is the
//! administrator's.

use std::sync::Arc;

use perf_canary::QueryContext;
use perf_canary::templates::{Resolved, Templates, references, resolve_each};
use perf_operator_api::{CanarySpec, TemplateKind};
use perf_prometheus::Prometheus;

use super::prometheus_access::{Owner, client, client_of};
use super::round::Round;
use crate::decide::{Read, Unread};

/// `spec` with its templates resolved, and its Prometheus clients: the analysis's own first, then one per template
/// endpoint (as `Resolved::endpoints` lists them). Templates are read only for an analysis (`analysing`): the rest
/// of a run never waits on them. A template that cannot be resolved, or whose Prometheus a tenant may not name,
/// fails the checks it backs (see `perf_canary::templates::resolve_each`); an unreadable Secret of a template's
/// access holds the analysis, as the profile's own does.
pub async fn sources(round: &Round<'_>, spec: &CanarySpec, analysing: bool) -> Read<(Resolved, Vec<Arc<Prometheus>>)> {
    let ctx = QueryContext { namespace: round.namespace(), target: round.profile.spec.target_ref.name.clone() };
    let url = spec.analysis.prometheus_url(round.ctx.scope.default_prometheus.as_deref());
    let access = spec.analysis.prometheus_access.as_ref();
    let mut clients = vec![client(round, url, access, "spec.canary.analysis").await?];
    if !analysing || references(spec).is_empty() {
        return Ok((Resolved::inline(spec), clients));
    }
    let templates = read(round, spec).await?;
    let mut resolved = resolve_each(spec, &templates, &ctx);
    for (i, endpoint) in resolved.endpoints.clone().iter().enumerate() {
        let field = format!("{} {}: spec", endpoint.template.kind, endpoint.template.name);
        let owner = match endpoint.template.kind {
            TemplateKind::AnalysisTemplate => Owner::Tenant,
            TemplateKind::ClusterAnalysisTemplate => Owner::Administrator,
        };
        if owner == Owner::Tenant
            && let Some(problem) = tenant_endpoint_problem(round, endpoint, &field)
        {
            resolved.break_source(i + 1, problem);
        }
        clients.push(client_of(round, &endpoint.url, endpoint.access.as_ref(), &field, owner).await?);
    }
    Ok((resolved, clients))
}

/// Why a namespaced template's Prometheus or headers break the rules a profile's own are held to, if they do.
fn tenant_endpoint_problem(
    round: &Round<'_>,
    endpoint: &perf_canary::templates::Endpoint,
    field: &str,
) -> Option<(String, String)> {
    let host = reqwest::Url::parse(&endpoint.url).ok().and_then(|u| u.host_str().map(str::to_string));
    if let Some(host) = host
        && let Err(refusal) = round.ctx.scope.egress.check(perf_egress::Kind::Prometheus, &round.namespace(), &host)
    {
        return Some((format!("{field}.prometheus"), refusal.to_string()));
    }
    let mut headers = endpoint.access.iter().flat_map(|a| a.headers.keys());
    let name = headers.find(|name| perf_prometheus::selects_tenant(name, None))?;
    Some((format!("{field}.prometheusAccess.headers"), crate::validate::tenant_header(name)))
}

/// The templates `spec` names that exist (see `perf_canary::template_source`).
async fn read(round: &Round<'_>, spec: &CanarySpec) -> Read<Templates> {
    let refused = (!round.ctx.scope.cluster_templates).then(|| {
        "ClusterAnalysisTemplates are off in this installation (the operator runs with \
         --cluster-analysis-templates=false, chart features.clusterAnalysisTemplates)"
            .to_string()
    });
    perf_canary::template_source::read(&round.ctx.client, &round.namespace(), spec, refused)
        .await
        .map_err(Unread::Canary)
}
