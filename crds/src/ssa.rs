//! Server-side apply, shared by the operator and the canary crate: a write is sent only when the live object
//! does not already hold what would be applied, so a settled profile writes nothing.

use serde_json::Value;

/// True when every field of `want` is present in `live` with the same value. Arrays must match element-wise, so
/// a removed or added element is drift. Fields the server adds (defaults, status, managedFields) are ignored.
pub fn is_subset(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(w), Value::Array(l)) => w.len() == l.len() && w.iter().zip(l).all(|(a, b)| is_subset(a, b)),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == live,
    }
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn server_added_fields_are_not_drift() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 6379}]}});
        let live = json!({"spec": {"replicas": 1, "ports": [{"port": 6379, "protocol": "TCP"}], "x": 1}, "status": {}});
        assert!(is_subset(&want, &live));
    }

    #[test]
    fn changed_values_and_list_lengths_are_drift() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 6379}]}});
        assert!(!is_subset(&want, &json!({"spec": {"replicas": 2, "ports": [{"port": 6379}]}})));
        assert!(!is_subset(&want, &json!({"spec": {"replicas": 1, "ports": []}})));
        assert!(!is_subset(&want, &json!({"spec": {}})));
    }
}
