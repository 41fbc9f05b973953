//! The canary section's rules, and the analysis templates'.

use super::*;

pub(super) fn check_canary(c: &mut Check, canary: &CanarySpec) {
    let stages = &canary.stages;
    c.ensure(!stages.is_empty() && stages.len() <= 20, "spec.canary.stages", || "must list 1 to 20 stages".into());
    for (i, s) in stages.iter().enumerate() {
        c.range(*s, 1, 100, &format!("spec.canary.stages[{i}]"));
    }
    c.ensure(stages.windows(2).all(|w| w[0] < w[1]), "spec.canary.stages", || {
        format!("canary.stages must be strictly increasing, got {stages:?}")
    });
    c.ensure(stages.last() == Some(&100), "spec.canary.stages", || {
        format!("canary.stages must end at 100, got {stages:?}")
    });
    for (value, field) in [
        (&canary.step_interval, "spec.canary.stepInterval"),
        (&canary.progress_deadline, "spec.canary.progressDeadline"),
    ] {
        if let Err(e) = parse_duration(value) {
            c.fail(field, e);
        }
    }
    if let Ok(step) = parse_duration(&canary.step_interval) {
        c.ensure(step >= MIN_INTERVAL, "spec.canary.stepInterval", || {
            format!("canary.stepInterval must be at least 2s, got {}", canary.step_interval)
        });
    }
    if let (Ok(step), Ok(deadline)) = (parse_duration(&canary.step_interval), parse_duration(&canary.progress_deadline))
    {
        c.ensure(step < deadline, "spec.canary.stepInterval", || {
            format!(
                "canary.stepInterval must be shorter than canary.progressDeadline, got {} >= {}",
                canary.step_interval, canary.progress_deadline
            )
        });
    }
    let a = &canary.analysis;
    if let Some(url) = &a.prometheus {
        prometheus_url(c, url, "spec.canary.analysis.prometheus");
    }
    if let Some(access) = &a.prometheus_access {
        check_prometheus_access(c, access, "spec.canary.analysis.prometheusAccess");
    }
    match a.check_interval.as_deref().map(parse_duration) {
        Some(Err(e)) => c.fail("spec.canary.analysis.checkInterval", e),
        Some(Ok(check)) => {
            c.ensure(check.is_zero() || check >= MIN_INTERVAL, "spec.canary.analysis.checkInterval", || {
                format!(
                    "canary.analysis.checkInterval must be 0s (off) or at least 2s, got {}",
                    a.check_interval.as_deref().unwrap_or_default()
                )
            })
        }
        None => {}
    }
    c.range(a.failure_limit, 1, 100, "spec.canary.analysis.failureLimit");
    c.range(a.min_requests, 0, 100_000_000, "spec.canary.analysis.minRequests");
    if let Some(limit) = a.run_history_limit {
        c.range(limit, 0, 100, "spec.canary.analysis.runHistoryLimit");
    }
    if let Some(p99) = a.max_p99_latency_ms {
        c.range(p99, 1, 600_000, "spec.canary.analysis.maxP99LatencyMs");
    }
    if let Some(e) = a.max_error_rate_percent {
        percent(c, e, "spec.canary.analysis.maxErrorRatePercent");
    }
    c.unique(a.metrics.iter().map(|m| m.name.as_str()), "spec.canary.analysis.metrics", "metric");
    for (i, m) in a.metrics.iter().enumerate() {
        let f = format!("spec.canary.analysis.metrics[{i}]");
        let mut chars = m.name.chars();
        let name_ok = matches!(chars.next(), Some(ch) if ch.is_ascii_lowercase())
            && chars.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && m.name.len() <= 63;
        c.pattern(name_ok, &m.name, &format!("{f}.name"), "a metric name (lower-case letters, digits, -)");
        check_metric_source(c, m, &f);
        c.ensure(m.min.is_some() || m.max.is_some() || m.template_ref.is_some(), &f, || {
            "metric needs min or max".into()
        });
        if let (Some(lo), Some(hi)) = (m.min, m.max) {
            c.ensure(lo <= hi, &f, || format!("metric min must be <= max, got {lo} > {hi}"));
        }
    }
    if let Some(r) = &canary.routing.http_route {
        c.object_name(&r.name, "spec.canary.routing.httpRoute.name");
        c.range(r.port, 1, 65_535, "spec.canary.routing.httpRoute.port");
    }
    if let Some(port) = canary.routing.canary_port {
        c.range(port, 1, 65_535, "spec.canary.routing.canaryPort");
        if let Some(r) = canary.routing.http_route.as_ref().filter(|r| r.port != port) {
            c.fail(
                "spec.canary.routing",
                format!("routing.canaryPort must be httpRoute.port when both are set, got {port} and {}", r.port),
            );
        }
    }
    check_notifications(c, &canary.notifications);
    super::hooks::check_hooks(c, canary);
}

fn check_notifications(c: &mut Check, targets: &[NotificationTarget]) {
    let n = targets.len();
    c.ensure(n <= 4, "spec.canary.notifications", || format!("at most 4 receivers, got {n}"));
    for (i, t) in targets.iter().enumerate() {
        let f = format!("spec.canary.notifications[{i}]");
        c.object_name(&t.secret_ref.name, &format!("{f}.secretRef.name"));
        c.len(&t.secret_ref.key, 1, 253, &format!("{f}.secretRef.key"));
        let events = t.events.len();
        c.ensure(events <= 5, &format!("{f}.events"), || format!("at most 5 events, got {events}"));
        c.unique(t.events.iter().map(|e| e.name()), &format!("{f}.events"), "event");
    }
}

fn prometheus_url(c: &mut Check, url: &str, field: &str) {
    c.pattern(is_url(url, HTTP) && !url.contains('@'), url, field, "an http:// or https:// URL without credentials");
}

/// A metric's query, or its template and arguments: exactly one of the two sources.
fn check_metric_source(c: &mut Check, m: &MetricCheck, f: &str) {
    let inline = !m.query.is_empty();
    c.ensure(inline != m.template_ref.is_some(), f, || "metric needs exactly one of query or templateRef".into());
    if inline {
        c.len(&m.query, 1, 4096, &format!("{f}.query"));
    }
    if let Some(r) = &m.template_ref {
        c.object_name(&r.name, &format!("{f}.templateRef.name"));
    }
    c.ensure(m.args.is_empty() || m.template_ref.is_some(), f, || "metric args need a templateRef".into());
    c.ensure(m.args.len() <= 16, &format!("{f}.args"), || format!("at most 16 arguments, got {}", m.args.len()));
    for (name, value) in &m.args {
        c.pattern(is_arg_value(value), value, &format!("{f}.args.{name}"), ARG_VALUE);
    }
}

/// What an argument value may be, for messages.
pub const ARG_VALUE: &str = "an argument value (1 to 253 letters, digits, '_', '.', ':', '/' and '-')";

/// Validates a template's body (either kind). `field` is its path, `spec` for a template document.
pub fn validate_template(body: &TemplateBody, field: &str) -> Vec<FieldError> {
    let mut c = Check { errors: Vec::new() };
    c.len(&body.query, 1, 4096, &format!("{field}.query"));
    c.ensure(body.args.len() <= 16, &format!("{field}.args"), || {
        format!("at most 16 arguments, got {}", body.args.len())
    });
    c.unique(body.args.iter().map(|a| a.name.as_str()), &format!("{field}.args"), "argument");
    for (i, arg) in body.args.iter().enumerate() {
        let f = format!("{field}.args[{i}]");
        c.pattern(
            is_arg_name(&arg.name),
            &arg.name,
            &format!("{f}.name"),
            "an argument name (a letter, then letters, digits or '_', at most 63)",
        );
        if let Some(value) = &arg.default {
            c.pattern(is_arg_value(value), value, &format!("{f}.default"), ARG_VALUE);
        }
    }
    if let Some(url) = &body.prometheus {
        prometheus_url(&mut c, url, &format!("{field}.prometheus"));
    }
    if let Some(access) = &body.prometheus_access {
        check_prometheus_access(&mut c, access, &format!("{field}.prometheusAccess"));
        c.ensure(body.prometheus.is_some(), &format!("{field}.prometheusAccess"), || {
            "template prometheusAccess needs prometheus".into()
        });
    }
    if let (Some(lo), Some(hi)) = (body.min, body.max) {
        c.ensure(lo <= hi, field, || format!("template min must be <= max, got {lo} > {hi}"));
    }
    c.errors
}
