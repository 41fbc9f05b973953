//! The vector selectors of a PromQL query (`metric{label="value", ...}` with its `[range]`), so that an empty answer
//! can say which selector matched nothing instead of a bare "no data". Only selectors written with braces are
//! found; that is how every query scoped to a namespace or to the canary's pods is written.

/// One vector selector of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// `metric{...}` as written.
    pub text: String,
    /// Its range, e.g. `1m`, when it has one (subqueries' `[5m:1m]` are left out).
    pub range: Option<String>,
}

/// Every distinct braced selector of `query`, in order.
pub fn selectors(query: &str) -> Vec<Selector> {
    let bytes = query.as_bytes();
    let mut found: Vec<Selector> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => i = skip_string(bytes, i),
            b'{' => {
                let Some(close) = closing_brace(bytes, i) else { break };
                let start = name_start(bytes, i);
                let selector =
                    Selector { text: query[start..=close].to_string(), range: range_after(query, close + 1) };
                if !found.contains(&selector) {
                    found.push(selector);
                }
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    found
}

/// Index just past the string literal opening at `open`.
fn skip_string(bytes: &[u8], open: usize) -> usize {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() && bytes[i] != quote {
        // Backticks are raw strings in PromQL; the other quotes take escapes.
        i += if bytes[i] == b'\\' && quote != b'`' { 2 } else { 1 };
    }
    i + 1
}

fn closing_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => i = skip_string(bytes, i),
            b'}' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Start of the metric name written right before the brace at `open` (the brace itself without one).
fn name_start(bytes: &[u8], open: usize) -> usize {
    let mut start = open;
    while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || matches!(bytes[start - 1], b'_' | b':')) {
        start -= 1;
    }
    start
}

/// The `[range]` right after a selector, if it is a plain range.
fn range_after(query: &str, from: usize) -> Option<String> {
    let rest = query.get(from..)?.trim_start();
    let inner = rest.strip_prefix('[')?;
    let range = &inner[..inner.find(']')?];
    (!range.contains(':')).then(|| range.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(query: &str) -> Vec<(String, Option<String>)> {
        selectors(query).into_iter().map(|s| (s.text, s.range)).collect()
    }

    #[test]
    fn finds_each_selector_with_its_range_once() {
        let q = r#"(sum(rate(http_requests_total{ns="a", code=~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total{ns="a"}[1m])) / sum(rate(http_requests_total{ns="a"}[1m]))"#;
        assert_eq!(
            texts(q),
            [
                (r#"http_requests_total{ns="a", code=~"5.."}"#.to_string(), Some("1m".to_string())),
                (r#"http_requests_total{ns="a"}"#.to_string(), Some("1m".to_string())),
            ]
        );
    }

    #[test]
    fn braces_inside_strings_and_subqueries_are_handled() {
        assert_eq!(texts(r#"up{job="a}b"} + x:y{le='{'}"#).len(), 2);
        assert_eq!(texts(r#"max_over_time(up{job="a"}[5m:1m])"#), [(r#"up{job="a"}"#.to_string(), None)]);
        assert_eq!(texts(r#"{__name__=~"http_.*"}"#), [(r#"{__name__=~"http_.*"}"#.to_string(), None)]);
        assert_eq!(texts("sum(up)"), []);
        assert_eq!(texts(r#"up{job="unterminated"#), []);
    }
}
