//! Checks of what crosses the sandbox: a component's imports at load, and (pure) policy inputs and outputs. Outputs are positional (one entry per input class or route, in input
//! order); an output is published only if it has exactly that many entries, values the API accepts, and strings
//! within the caps.

use crate::types::{CacheInput, CacheOutput, RateLimitInput, RateLimitOutput};
use crate::{Error, Limits};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// Bounds of the API (`TtlClass.ttlSeconds`, `RouteLimit.requestsPerSecond` / `burst`).
pub const MAX_TTL_SECONDS: u32 = 31_536_000;
pub const MAX_REQUESTS_PER_SECOND: u32 = 10_000_000;
pub const MAX_BURST: u32 = 100_000_000;
/// Longest class or route name (the API's bound).
pub const MAX_NAME_BYTES: usize = 256;
/// Longest eviction policy name in memory advice.
pub const MAX_EVICTION_POLICY_BYTES: usize = 64;

pub fn cache_input(input: &CacheInput, limits: &Limits) -> Result<(), String> {
    count("classes", input.classes.len(), limits)?;
    input.classes.iter().try_for_each(|c| string_len("class name", &c.name, MAX_NAME_BYTES))
}

pub fn rate_limit_input(input: &RateLimitInput, limits: &Limits) -> Result<(), String> {
    count("routes", input.routes.len(), limits)?;
    input.routes.iter().try_for_each(|r| string_len("route", &r.route, MAX_NAME_BYTES))
}

pub fn cache_output(input: &CacheInput, output: &CacheOutput, limits: &Limits) -> Result<(), String> {
    string_len("reason", &output.reason, limits.max_string_bytes)?;
    one_per_input("classes", input.classes.len(), output.classes.len())?;
    for (class, decision) in input.classes.iter().zip(&output.classes) {
        if decision.ttl_seconds == 0 || decision.ttl_seconds > MAX_TTL_SECONDS {
            return Err(format!(
                "class {:?}: ttlSeconds {} is not in [1, {MAX_TTL_SECONDS}]",
                class.name, decision.ttl_seconds
            ));
        }
    }
    if let Some(policy) = output.memory.as_ref().and_then(|m| m.eviction_policy.as_deref()) {
        string_len("memory.evictionPolicy", policy, MAX_EVICTION_POLICY_BYTES)?;
    }
    Ok(())
}

pub fn rate_limit_output(input: &RateLimitInput, output: &RateLimitOutput, limits: &Limits) -> Result<(), String> {
    string_len("reason", &output.reason, limits.max_string_bytes)?;
    one_per_input("routes", input.routes.len(), output.routes.len())?;
    for (route, limit) in input.routes.iter().zip(&output.routes) {
        if limit.requests_per_second == 0 || limit.requests_per_second > MAX_REQUESTS_PER_SECOND {
            return Err(format!(
                "route {:?}: requestsPerSecond {} is not in [1, {MAX_REQUESTS_PER_SECOND}]",
                route.route, limit.requests_per_second
            ));
        }
        if limit.burst < limit.requests_per_second || limit.burst > MAX_BURST {
            return Err(format!(
                "route {:?}: burst {} is not in [requestsPerSecond ({}), {MAX_BURST}]",
                route.route, limit.burst, limit.requests_per_second
            ));
        }
    }
    Ok(())
}

pub fn string_len(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() <= max {
        Ok(())
    } else {
        Err(format!("{what} is {} bytes long, at most {max} allowed", value.len()))
    }
}

/// Cuts a policy-provided message to `max` bytes (on a character boundary) before it reaches logs and status.
pub fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

fn count(what: &str, n: usize, limits: &Limits) -> Result<(), String> {
    if n <= limits.max_items { Ok(()) } else { Err(format!("{n} {what}, at most {} allowed", limits.max_items)) }
}

fn one_per_input(what: &str, expected: usize, got: usize) -> Result<(), String> {
    if expected == got {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected} entries (one per input, in input order), got {got}"))
    }
}

/// Checks that the component imports no capability and returns the names of the instances it imports for types
/// only (the worlds `use` the `perf:policy/types` interface, which has no functions). Anything that could be called
/// (a function, a resource, a module, a component, an instance exporting any of these) is refused, naming it.
pub(crate) fn type_only_imports(engine: &Engine, component: &Component, sha256: &str) -> crate::Result<Vec<String>> {
    let mut type_only = Vec::new();
    let mut forbidden = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        match item.ty {
            ComponentItem::Type(_) => {}
            ComponentItem::ComponentInstance(instance)
                if instance.exports(engine).all(|(_, export)| matches!(export.ty, ComponentItem::Type(_))) =>
            {
                type_only.push(name.to_string());
            }
            _ => forbidden.push(name.to_string()),
        }
    }
    if forbidden.is_empty() {
        Ok(type_only)
    } else {
        Err(Error::ForbiddenImports { sha256: sha256.to_string(), imports: forbidden })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CacheStats, ClassDecision, RouteLimit, RouteState, Slo, TtlClass};

    const SLO: Slo = Slo { p99_latency_ms: 100, error_rate_percent: 1.0 };

    fn cache_in(names: &[&str]) -> CacheInput {
        CacheInput {
            classes: names
                .iter()
                .map(|n| TtlClass { name: n.to_string(), ttl_seconds: 60, spec_ttl_seconds: 60 })
                .collect(),
            stats: CacheStats::default(),
            slo: SLO,
            settings: "{}".into(),
        }
    }

    fn cache_out(ttls: &[u32]) -> CacheOutput {
        CacheOutput {
            classes: ttls.iter().map(|ttl| ClassDecision { ttl_seconds: *ttl, admit: true }).collect(),
            memory: None,
            reason: "ok".into(),
        }
    }

    #[test]
    fn cache_output_needs_one_valid_decision_per_class() {
        let limits = Limits::default();
        let input = cache_in(&["a", "b"]);
        assert_eq!(cache_output(&input, &cache_out(&[1, 2]), &limits), Ok(()));
        assert!(cache_output(&input, &cache_out(&[1]), &limits).unwrap_err().contains("expected 2 entries"));
        assert!(cache_output(&input, &cache_out(&[1, 2, 3]), &limits).unwrap_err().contains("got 3"));
        let err = cache_output(&input, &cache_out(&[1, 0]), &limits).unwrap_err();
        assert!(err.contains("class \"b\": ttlSeconds 0"), "{err}");
    }

    #[test]
    fn rate_limit_output_needs_burst_at_least_rate() {
        let input = RateLimitInput {
            routes: vec![RouteState {
                route: "/a".into(),
                requests_per_second: 10,
                burst: 20,
                spec_requests_per_second: 10,
                spec_burst: 20,
                traffic: None,
            }],
            slo: SLO,
            settings: "{}".into(),
        };
        let output = |rps, burst| RateLimitOutput {
            routes: vec![RouteLimit { requests_per_second: rps, burst }],
            reason: String::new(),
        };
        let limits = Limits::default();
        assert_eq!(rate_limit_output(&input, &output(10, 10), &limits), Ok(()));
        assert!(rate_limit_output(&input, &output(10, 9), &limits).unwrap_err().contains("route \"/a\": burst 9"));
        assert!(rate_limit_output(&input, &output(0, 9), &limits).unwrap_err().contains("requestsPerSecond 0"));
    }

    #[test]
    fn long_strings_are_refused_and_messages_are_truncated() {
        let limits = Limits { max_string_bytes: 4, ..Limits::default() };
        let mut out = cache_out(&[1]);
        out.reason = "too long".into();
        assert!(cache_output(&cache_in(&["a"]), &out, &limits).unwrap_err().contains("reason is 8 bytes"));
        assert_eq!(truncate("héllo".into(), 2), "h...");
        let many = cache_in(&["a"; 2000]);
        assert!(cache_input(&many, &Limits::default()).unwrap_err().contains("2000 classes"));
    }
}
