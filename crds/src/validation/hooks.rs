//! The webhooks' rules (`canary.analysis.webhooks`): the CEL rules' twin, plus what CEL cannot say (placeholders).

use super::*;
use std::time::Duration;

pub(super) fn check_hooks(c: &mut Check, canary: &CanarySpec) {
    let hooks = &canary.analysis.webhooks;
    let field = "spec.canary.analysis.webhooks";
    c.ensure(hooks.len() <= 16, field, || format!("at most 16 webhooks, got {}", hooks.len()));
    c.unique(hooks.iter().map(|h| h.name.as_str()), field, "webhook");
    for (i, h) in hooks.iter().enumerate() {
        let f = format!("{field}[{i}]");
        c.pattern(is_name(&h.name), &h.name, &format!("{f}.name"), "a webhook name (lower-case letters, digits, -)");
        c.len(&h.url, 1, 2048, &format!("{f}.url"));
        c.pattern(
            is_url(&h.url, HTTP) && !h.url.contains('@'),
            &h.url,
            &format!("{f}.url"),
            "an http:// or https:// URL without credentials",
        );
        if let Err(e) = timeout(h) {
            c.fail(format!("{f}.timeout"), e);
        }
        c.ensure(h.metadata.len() <= 16, &format!("{f}.metadata"), || {
            format!("at most 16 entries, got {}", h.metadata.len())
        });
        for (key, value) in &h.metadata {
            c.len(value, 0, 4096, &format!("{f}.metadata.{key}"));
        }
        for (text, at) in std::iter::once((&h.url, format!("{f}.url")))
            .chain(h.metadata.iter().map(|(k, v)| (v, format!("{f}.metadata.{k}"))))
        {
            check_placeholders(c, canary, text, &at);
        }
    }
    let budget = Duration::from_secs(HOOK_TYPE_BUDGET_SECS);
    for kind in HookType::ALL {
        let total = whole_seconds(hooks, kind);
        c.ensure(total <= budget, field, || {
            format!("the {} webhooks' timeouts add up to {total:?}: at most 60s per type", kind.name())
        });
    }
    if let Ok(step) = parse_duration(&canary.step_interval) {
        let total = whole_seconds(hooks, HookType::Rollout);
        let step_seconds = Duration::from_secs(step.as_secs());
        c.ensure(hooks.iter().all(|h| h.kind != HookType::Rollout) || total < step_seconds, field, || {
            format!(
                "the rollout webhooks' timeouts must add up to less than canary.stepInterval ({}), got {total:?}",
                canary.step_interval
            )
        });
    }
}

/// A webhook's timeout, its default when unset.
pub fn timeout(hook: &Hook) -> Result<Duration, String> {
    let text = hook.timeout.as_deref().unwrap_or(HOOK_TIMEOUT_DEFAULT);
    let d = parse_duration(text)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(HOOK_TYPE_BUDGET_SECS) {
        return Err(format!("webhook timeout must be 1s to 60s, got {text}"));
    }
    Ok(d)
}

/// The timeouts of the webhooks of `kind`, added (a bad one counts as its default: it is reported on its own).
pub fn total_timeout(hooks: &[Hook], kind: HookType) -> Duration {
    timeouts(hooks, kind).sum()
}

fn timeouts(hooks: &[Hook], kind: HookType) -> impl Iterator<Item = Duration> + '_ {
    let default = Duration::from_secs(10);
    hooks.iter().filter(move |h| h.kind == kind).map(move |h| timeout(h).unwrap_or(default))
}

/// As the CEL rules add them: each timeout in whole seconds.
fn whole_seconds(hooks: &[Hook], kind: HookType) -> Duration {
    timeouts(hooks, kind).map(|d| Duration::from_secs(d.as_secs())).sum()
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(ch) if ch.is_ascii_lowercase())
        && chars.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && name.len() <= 63
}

/// Every `{{...}}` must be a known placeholder, and the addresses need the Service they name.
fn check_placeholders(c: &mut Check, canary: &CanarySpec, text: &str, field: &str) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return c.fail(field, format!("unclosed placeholder in {text:?}"));
        };
        let token = &rest[start..start + len + 2];
        if !HOOK_PLACEHOLDERS.contains(&token) {
            c.fail(field, format!("unknown placeholder {token}: known are {}", HOOK_PLACEHOLDERS.join(", ")));
        }
        let routing = &canary.routing;
        if token == "{{canaryAddress}}" && routing.canary_port.is_none() && routing.http_route.is_none() {
            c.fail(field, "{{canaryAddress}} needs spec.canary.routing.canaryPort (or routing.httpRoute): without it there is no canary-only Service".to_string());
        }
        if token == "{{primaryAddress}}" && routing.http_route.is_none() {
            c.fail(
                field,
                "{{primaryAddress}} needs spec.canary.routing.httpRoute: without it there is no primary-only Service"
                    .to_string(),
            );
        }
        rest = &rest[start + len + 2..];
    }
}

#[cfg(test)]
mod tests {
    use crate::validation::validate_spec;
    use crate::{Hook, HookType, PerformanceProfileSpec};

    fn spec(hooks: Vec<Hook>, canary_port: Option<u32>) -> PerformanceProfileSpec {
        let mut canary = crate::CanarySpec::default();
        canary.routing.canary_port = canary_port;
        canary.analysis.webhooks = hooks;
        let target_ref = crate::TargetRef { name: "web".into(), ..crate::TargetRef::default() };
        PerformanceProfileSpec { canary: Some(canary), target_ref, ..PerformanceProfileSpec::default() }
    }

    fn hook(url: &str, cmd: &str) -> Hook {
        let metadata = [("cmd".to_string(), cmd.to_string())].into();
        Hook { name: "load".into(), kind: HookType::Rollout, url: url.into(), timeout: None, metadata }
    }

    fn errors(spec: &PerformanceProfileSpec) -> Vec<String> {
        validate_spec(spec).into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn placeholders_must_be_known_and_their_service_must_exist() {
        let ok = spec(
            vec![hook("http://lt.{{namespace}}/", "hey http://{{canaryAddress}}/ {{target}} {{canary}}")],
            Some(80),
        );
        assert_eq!(errors(&ok), Vec::<String>::new());
        for (url, cmd, port, expected) in [
            (
                "http://lt/",
                "hey http://{{canaryAddress}}/",
                None,
                "metadata.cmd: {{canaryAddress}} needs spec.canary.routing.canaryPort",
            ),
            (
                "http://lt/",
                "hey http://{{primaryAddress}}/",
                Some(80),
                "metadata.cmd: {{primaryAddress}} needs spec.canary.routing.httpRoute",
            ),
            ("http://lt/{{pod}}", "", Some(80), "url: unknown placeholder {{pod}}: known are {{namespace}}"),
            ("http://lt/", "hey {{ canary }}", Some(80), "metadata.cmd: unknown placeholder {{ canary }}"),
            ("http://lt/", "hey {{canary", Some(80), "metadata.cmd: unclosed placeholder"),
        ] {
            let errors = errors(&spec(vec![hook(url, cmd)], port));
            assert!(errors.iter().any(|e| e.contains(expected)), "{expected:?} not in {errors:?}");
            assert!(errors.iter().all(|e| e.starts_with("spec.canary.analysis.webhooks[0]")), "{errors:?}");
        }
    }
}
