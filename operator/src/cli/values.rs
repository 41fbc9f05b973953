//! Value parsers of the `run` flags: each refuses a bad value with a message that says what was expected.

/// A valid HTTP header name that the client does not set itself.
pub(super) fn header_name(value: &str) -> std::result::Result<String, String> {
    perf_prometheus::header(value.trim(), "x").map(|(name, _)| name.as_str().to_string()).map_err(|e| e.to_string())
}

/// `--notification-format`: slack, msteams or generic.
pub(super) fn notification_format(value: &str) -> std::result::Result<perf_operator_api::NotificationFormat, String> {
    serde_json::from_value(serde_json::Value::String(value.trim().to_string()))
        .map_err(|_| format!("{value:?} is not a notification format: expected slack, msteams or generic"))
}

/// `--default-prometheus`: an http(s) URL without credentials, as the profile's own field; blank is none.
pub(super) fn prometheus_url(value: &str) -> std::result::Result<String, String> {
    let value = value.trim();
    let ok = value.is_empty()
        || (reqwest::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            && !value.contains('@'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not an http:// or https:// URL without credentials"))
    }
}

/// One `--egress-allow` entry; blank ones (an empty chart list) are none.
pub(super) fn egress_entry(value: &str) -> std::result::Result<String, String> {
    perf_egress::Egress::new(&[value.to_string()], &[], Vec::new())
        .map(|_| value.trim().to_string())
        .map_err(|e| e.reason)
}

/// One `--alert-label` entry: a Prometheus label name (blank: none).
pub(super) fn prometheus_label(value: &str) -> std::result::Result<String, String> {
    let name = value.trim();
    let valid =
        name.chars().enumerate().all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if valid { Ok(name.to_string()) } else { Err(format!("{name:?} is not a Prometheus label name")) }
}

/// One `--egress-allow-reserved` entry.
pub(super) fn reserved_entry(value: &str) -> std::result::Result<String, String> {
    perf_egress::Egress::new(&[], &[value.to_string()], Vec::new())
        .map(|_| value.trim().to_string())
        .map_err(|e| e.reason)
}

/// A DNS name: lowercase labels of letters, digits and inner hyphens, at most 63 each, 253 in all (a trailing dot is
/// allowed).
pub(super) fn dns_name(value: &str) -> std::result::Result<String, String> {
    let name = value.strip_suffix('.').unwrap_or(value);
    let labels_fit = name.split('.').all(|label| label.len() <= 63);
    if name.len() <= 253 && labels_fit && perf_operator_api::validation::is_dns_subdomain(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{value:?} is not a DNS name (lowercase labels of letters, digits and inner hyphens, e.g. cluster.local)"
        ))
    }
}

/// A PromQL template of one route's rejections: `{{namespace}}`, `{{route}}` and `{{profile}}` only, PromQL once
/// they are filled. Empty: none.
pub(super) fn rejections_template(value: &str) -> std::result::Result<String, String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let filled = value.replace("{{namespace}}", "ns").replace("{{route}}", "/").replace("{{profile}}", "p");
    if filled.contains("{{") {
        return Err("placeholders are {{namespace}}, {{route}} and {{profile}}".into());
    }
    if !crate::enforcement::route_only_in_strings(value) {
        return Err(crate::enforcement::ROUTE_OUTSIDE_STRING.into());
    }
    promql_parser::parser::parse(&filled).map(|_| value.to_string()).map_err(|e| format!("not PromQL: {e}"))
}
