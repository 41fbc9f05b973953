//! Checks of what crosses the sandbox: a component's imports at load, and (pure) policy inputs and outputs. Outputs are positional (one entry per input class or route, in input
//! order); an output is published only if it has exactly that many entries, values the API accepts, and strings
//! within the caps.

use crate::Limits;
use crate::types::{CacheInput, CacheOutput, MemoryAdvice, RateLimitInput, RateLimitOutput};

/// Bounds of the API (`TtlClass.ttlSeconds`, `RouteLimit.requestsPerSecond` / `burst`).
pub const MAX_TTL_SECONDS: u32 = 31_536_000;
pub const MAX_REQUESTS_PER_SECOND: u32 = 10_000_000;
pub const MAX_BURST: u32 = 100_000_000;
/// Longest class or route name (the API's bound).
pub const MAX_NAME_BYTES: usize = 256;
/// Bounds of `memory-advice.max-memory-bytes` (the contract's range, shared with the built-in algorithm): 0 would
/// mean "unlimited" to Redis, which is not advice a policy may give.
pub use perf_policy_algorithms::ttl::{MAX_ADVISED_MEMORY_BYTES, MIN_ADVISED_MEMORY_BYTES};
/// The `maxmemory-policy` values Redis accepts.
pub const EVICTION_POLICIES: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

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
    output.memory.as_ref().map_or(Ok(()), memory_advice)
}

fn memory_advice(advice: &MemoryAdvice) -> Result<(), String> {
    if let Some(bytes) = advice.max_memory_bytes
        && !(MIN_ADVISED_MEMORY_BYTES..=MAX_ADVISED_MEMORY_BYTES).contains(&bytes)
    {
        return Err(format!(
            "memory.maxMemoryBytes {bytes} is not in [{MIN_ADVISED_MEMORY_BYTES}, {MAX_ADVISED_MEMORY_BYTES}]"
        ));
    }
    match advice.eviction_policy.as_deref() {
        Some(policy) if !EVICTION_POLICIES.contains(&policy) => {
            Err(format!("memory.evictionPolicy {:?} is not one of {}", clean(policy, 64), EVICTION_POLICIES.join(", ")))
        }
        _ => Ok(()),
    }
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

/// Makes a policy-provided text safe for logs, events, status and terminals: control characters (ANSI escapes,
/// CR, NUL), bidirectional overrides and isolates, line and paragraph separators and other invisible format
/// characters are shown as `\u{..}` escapes, and the result is cut to `max` bytes on a character boundary.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 3));
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let escaped;
        let piece = if is_unsafe(c) {
            escaped = format!("\\u{{{:x}}}", u32::from(c));
            escaped.as_str()
        } else {
            c.encode_utf8(&mut buf)
        };
        if out.len() + piece.len() > max {
            out.push_str("...");
            break;
        }
        out.push_str(piece);
    }
    out
}

/// [`clean`] in place, without allocating in the usual case (printable ASCII within `max`), which is every call's.
pub fn clean_in_place(text: &mut String, max: usize) {
    let printable_ascii = text.bytes().all(|b| (0x20..0x7f).contains(&b));
    if text.len() > max || (!printable_ascii && text.chars().any(is_unsafe)) {
        *text = clean(text, max);
    }
}

/// Characters that change how a terminal or a viewer shows the text around them.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width spaces and joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line and paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
            | '\u{061c}'             // Arabic letter mark
            | '\u{feff}'             // byte order mark
            | '\u{fff9}'..='\u{fffb}' // interlinear annotations
        )
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
    fn unsafe_characters_are_escaped() {
        let cases = [
            ("plain text, ünïcode ok", "plain text, ünïcode ok"),
            ("a\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("\u{202e}evil", "\\u{202e}evil"),
            ("one\u{2028}two\u{2029}", "one\\u{2028}two\\u{2029}"),
            ("cr\rlf\nnul\0bel\u{7}", "cr\\u{d}lf\\u{a}nul\\u{0}bel\\u{7}"),
            ("\u{2066}iso\u{2069}\u{200b}\u{feff}", "\\u{2066}iso\\u{2069}\\u{200b}\\u{feff}"),
            ("del\u{7f} c1\u{85}", "del\\u{7f} c1\\u{85}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(clean(raw, 1024), shown, "{raw:?}");
            assert!(clean(raw, 1024).chars().all(|c| !is_unsafe(c)));
        }
        // An escape is never cut in half by the length cap.
        assert_eq!(clean("ab\u{202e}", 5), "ab...");
        for (raw, shown) in cases {
            let mut text = raw.to_string();
            clean_in_place(&mut text, 1024);
            assert_eq!(text, shown, "{raw:?}");
        }
        let mut long = "x".repeat(10);
        clean_in_place(&mut long, 4);
        assert_eq!(long, "xxxx...");
    }

    #[test]
    fn memory_advice_is_in_range_and_a_redis_policy() {
        let advice = |bytes: Option<u64>, policy: Option<&str>| MemoryAdvice {
            max_memory_bytes: bytes,
            eviction_policy: policy.map(str::to_string),
        };
        assert_eq!(memory_advice(&advice(Some(64 << 20), Some("allkeys-lfu"))), Ok(()));
        assert_eq!(memory_advice(&advice(None, None)), Ok(()));
        for bad in [0, 1, (1 << 20) - 1, (1 << 40) + 1, u64::MAX] {
            assert!(memory_advice(&advice(Some(bad), None)).unwrap_err().contains("maxMemoryBytes"), "{bad}");
        }
        for bad in ["", "ALLKEYS-LFU", "allkeys-lru\u{1b}[31m\n", "lru"] {
            let err = memory_advice(&advice(None, Some(bad))).unwrap_err();
            assert!(err.contains("evictionPolicy") && !err.contains('\u{1b}'), "{err}");
        }
    }

    #[test]
    fn long_strings_are_refused_and_messages_are_truncated() {
        let limits = Limits { max_string_bytes: 4, ..Limits::default() };
        let mut out = cache_out(&[1]);
        out.reason = "too long".into();
        assert!(cache_output(&cache_in(&["a"]), &out, &limits).unwrap_err().contains("reason is 8 bytes"));
        assert_eq!(clean("héllo", 2), "h...");
        assert_eq!(clean("héllo", 6), "héllo");
        let many = cache_in(&["a"; 2000]);
        assert!(cache_input(&many, &Limits::default()).unwrap_err().contains("2000 classes"));
    }
}
