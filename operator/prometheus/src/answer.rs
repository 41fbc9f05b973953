//! Reading an HTTP answer to `/api/v1/query`: what the status, content type and body say, before any value.

use crate::QueryError;
use serde_json::Value;

/// Longest piece of an error text kept: enough for Prometheus's parse errors, short enough for a status line.
const KEPT_CHARS: usize = 200;

/// Judges an answer of `at` (host and port) to any API endpoint: HTTP status, whether it declared HTML, and the
/// body; returns the `data` of a successful answer.
pub(crate) fn read_data(at: &str, status: u16, html: bool, body: &str) -> Result<Value, QueryError> {
    let at = at.to_string();
    match status {
        300..=399 => return Err(QueryError::Redirected { at, status }),
        401 | 403 => return Err(QueryError::Unauthorized { at, status }),
        404 => return Err(QueryError::NotFound { at }),
        _ => {}
    }
    let page = html || body.trim_start().starts_with('<');
    // A proxy's or load balancer's error page (502, 503, 504, 429): the server behind it is down or busy, an
    // outage to wait out, not a wrong URL.
    if page && (status >= 500 || status == 429) {
        return Err(QueryError::Server { at, status, message: "an error page from a proxy in front of it".into() });
    }
    // A login page or a UI behind the URL: checked before the status, since such pages often answer 200.
    if page {
        return Err(QueryError::NotPrometheus { at, what: format!("an HTML page (HTTP {status})") });
    }
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        // Fixed text, not the body: whatever answers at a URL a tenant names is not echoed back to them.
        return Err(if status >= 500 || status == 429 {
            QueryError::Server { at, status, message: "an answer that is not the Prometheus API's".into() }
        } else {
            QueryError::NotPrometheus { at, what: format!("HTTP {status} with a body that is not JSON") }
        });
    };
    match json["status"].as_str() {
        Some("success") => Ok(json["data"].clone()),
        Some("error") => Err(api_error(at, status, &json)),
        _ => Err(QueryError::NotPrometheus { at, what: format!("HTTP {status} JSON without a Prometheus status") }),
    }
}

/// Prometheus's own error answer: `bad_data` (400: the query does not parse or is invalid) and `execution`
/// (422: it cannot be evaluated, e.g. many-to-many matching) are the query's fault; the rest (timeout, canceled,
/// internal, unavailable) are Prometheus's.
fn api_error(at: String, status: u16, json: &Value) -> QueryError {
    let error_type = json["errorType"].as_str().unwrap_or("unknown");
    let message = short(json["error"].as_str().unwrap_or("no error text"));
    match error_type {
        "bad_data" | "execution" => QueryError::Rejected { error_type: error_type.into(), message },
        _ => QueryError::Server { at, status, message: format!("{error_type}: {message}") },
    }
}

/// First line of `text`, at most [`KEPT_CHARS`] characters.
fn short(text: &str) -> String {
    text.trim().lines().next().unwrap_or_default().chars().take(KEPT_CHARS).collect()
}

/// Decodes `data` of an instant query: a scalar or a vector of at most one sample (several series would make the
/// verdict depend on which one came first). `Ok(None)` is an empty vector; NaN and ±Inf are values, for the
/// caller to judge.
pub(crate) fn decode(at: &str, data: &Value) -> Result<Option<f64>, QueryError> {
    let unexpected = |what: String| QueryError::NotPrometheus { at: at.to_string(), what };
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let result = data["result"].as_array().ok_or_else(|| unexpected("a vector without result".into()))?;
            match result.as_slice() {
                [] => return Ok(None),
                [one] => &one["value"],
                many => return Err(QueryError::ManySeries(many.len())),
            }
        }
        Some("matrix") => {
            return Err(QueryError::Rejected {
                error_type: "range vector".into(),
                message: "the query returns a range vector; wrap it in a function such as rate()".into(),
            });
        }
        // The query's doing, not the endpoint's: a string never compares with a bound.
        Some("string") => {
            return Err(QueryError::Rejected {
                error_type: "string".into(),
                message: "the query returns a string; a check needs a number (a scalar or one series)".into(),
            });
        }
        other => return Err(unexpected(format!("result type {other:?}, expected vector or scalar"))),
    };
    let text = sample[1].as_str().ok_or_else(|| unexpected("a sample without a value".into()))?;
    parse_value(text).map(Some).ok_or_else(|| unexpected(format!("the value {:?}, not a number", short(text))))
}

/// Prometheus writes `NaN`, `+Inf` and `-Inf`; Rust's parser wants other spellings for some of them.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Trouble;
    use serde_json::json;

    /// An instant query's answer judged as `Prometheus::instant` does.
    fn read(at: &str, status: u16, html: bool, body: &str) -> Result<Option<f64>, QueryError> {
        read_data(at, status, html, body).and_then(|data| decode(at, &data))
    }

    fn vector(values: &[&str]) -> String {
        let result: Vec<Value> = values.iter().map(|v| json!({"metric": {}, "value": [1.0, v]})).collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": result}}).to_string()
    }

    #[test]
    fn values_nan_infinities_and_empty_results_are_told_apart() {
        assert_eq!(read("p:9090", 200, false, &vector(&["0.25"])), Ok(Some(0.25)));
        assert!(read("p:9090", 200, false, &vector(&["NaN"])).is_ok_and(|v| v.is_some_and(f64::is_nan)));
        assert_eq!(read("p:9090", 200, false, &vector(&["+Inf"])), Ok(Some(f64::INFINITY)));
        assert_eq!(read("p:9090", 200, false, &vector(&["-Inf"])), Ok(Some(f64::NEG_INFINITY)));
        assert_eq!(read("p:9090", 200, false, &vector(&[])), Ok(None));
        assert_eq!(read("p:9090", 200, false, &vector(&["1", "2"])), Err(QueryError::ManySeries(2)));
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}});
        assert_eq!(read("p:9090", 200, false, &scalar.to_string()), Ok(Some(3.0)));
    }

    #[test]
    fn a_query_prometheus_refuses_is_rejected_with_its_reason() {
        let body = json!({"status": "error", "errorType": "bad_data",
                          "error": "invalid parameter \"query\": 1:5: parse error: unexpected \"(\""});
        let answer = read("p:9090", 400, false, &body.to_string());
        assert!(
            matches!(&answer, Err(QueryError::Rejected { error_type, message })
            if error_type == "bad_data" && message.contains("parse error")),
            "{answer:?}"
        );
        let busy = json!({"status": "error", "errorType": "unavailable", "error": "too many queries"});
        assert!(matches!(read("p:9090", 503, false, &busy.to_string()), Err(e) if e.is_outage()));
    }

    #[test]
    fn wrong_urls_and_credentials_are_not_outages() {
        let of = |status, html, body: &str| read("p:9090", status, html, body).unwrap_err();
        assert_eq!(of(401, false, "Unauthorized"), QueryError::Unauthorized { at: "p:9090".into(), status: 401 });
        assert_eq!(of(403, true, "<html>"), QueryError::Unauthorized { at: "p:9090".into(), status: 403 });
        assert_eq!(of(404, false, "404 page not found"), QueryError::NotFound { at: "p:9090".into() });
        let login = of(200, true, "<!doctype html><title>Sign in</title>");
        assert!(matches!(&login, QueryError::NotPrometheus { what, .. } if what.contains("HTML")), "{login:?}");
        assert!(matches!(of(200, false, r#"{"hello":"world"}"#), QueryError::NotPrometheus { .. }));
        let gateway = of(502, false, "bad gateway: upstream 10.0.0.7 secret-service");
        assert!(gateway.is_outage() && !gateway.to_string().contains("10.0.0.7"), "{gateway}");
        for status in [301, 302, 307, 308] {
            let moved = of(status, false, "");
            assert_eq!(moved, QueryError::Redirected { at: "p:9090".into(), status });
            assert_eq!(moved.trouble(), Trouble::Endpoint);
        }
    }

    #[test]
    fn error_texts_are_cut_to_one_short_line() {
        let long = format!("{}\nsecond line", "x".repeat(1000));
        assert_eq!(short(&long).len(), KEPT_CHARS);
    }

    /// Each answer by its class: what a user must fix (endpoint), what to wait out (outage), what can never pass
    /// (query).
    #[test]
    fn answers_are_classed_by_whose_doing_they_are() {
        let string = json!({"status": "success", "data": {"resultType": "string", "result": [1.0, "up"]}});
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        let table: [(u16, bool, String, Trouble); 12] = [
            (502, true, "<html><h1>502 Bad Gateway</h1></html>".into(), Trouble::Unreachable),
            (503, false, "<!DOCTYPE html><p>Service Unavailable".into(), Trouble::Unreachable),
            (504, true, "gateway timeout".into(), Trouble::Unreachable),
            (429, true, "<html>slow down</html>".into(), Trouble::Unreachable),
            (500, false, "internal error".into(), Trouble::Unreachable),
            (200, true, "<html>Grafana</html>".into(), Trouble::Endpoint),
            (404, true, "<html>not found</html>".into(), Trouble::Endpoint),
            (403, true, "<html>forbidden</html>".into(), Trouble::Endpoint),
            (200, false, string.to_string(), Trouble::Query),
            (200, false, matrix.to_string(), Trouble::Query),
            (200, false, vector(&["1", "2"]), Trouble::Query),
            (200, false, r#"{"status":"success","data":{"resultType":"weird"}}"#.into(), Trouble::Endpoint),
        ];
        for (status, html, body, want) in table {
            let got = read("p:9090", status, html, &body).unwrap_err();
            assert_eq!(got.trouble(), want, "HTTP {status} html={html} {body:.40}: {got}");
            assert!(!got.to_string().contains("Bad Gateway"), "bodies are never echoed: {got}");
        }
    }
}
