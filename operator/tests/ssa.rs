//! What a real API server holds after a server-side apply of a profile's status. kube-fake-client answers an apply
//! with a merge patch, which keeps whatever the apply leaves out and so hides the one rule that matters here: a
//! field the same manager applied before and leaves out now is removed.
//!
//! The model: an apply sets every field it sends; a field it does not send is removed when this manager owned it
//! (sent it in its previous apply) and kept when another manager set it. Objects merge field by field; lists are
//! atomic, except `conditions`, a map keyed by `type` as the CRD declares (`x-kubernetes-list-type: map`).
//! Shared by the unit tests in `src/controller/status.rs` and the in-memory API server of `fixtures.rs`.

#![allow(dead_code)]

use perf_operator_api::PerformanceProfileStatus;
use serde_json::{Map, Value};

/// `live` after `applied` is applied by a manager whose previous apply was `owned` (None: it owned nothing).
pub fn apply(live: &Value, owned: Option<&Value>, applied: &Value) -> Value {
    let (Value::Object(live), Value::Object(sent)) = (live, applied) else { return applied.clone() };
    let owned = owned.and_then(Value::as_object);
    let mut out = Map::new();
    for (key, value) in live {
        let owned_child = owned.and_then(|o| o.get(key));
        match sent.get(key) {
            Some(new) => {
                out.insert(key.clone(), field(key, value, owned_child, new));
            }
            // Ours before, left out now: removed.
            None if owned_child.is_some() => {}
            None => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    for (key, new) in sent.iter().filter(|(k, _)| !live.contains_key(*k)) {
        out.insert(key.clone(), new.clone());
    }
    Value::Object(out)
}

fn field(key: &str, live: &Value, owned: Option<&Value>, applied: &Value) -> Value {
    if key == "conditions" { list_map(live, owned, applied, "type") } else { apply(live, owned, applied) }
}

/// A list-map: items are merged by `key`; a live item the apply leaves out survives only if another manager set it.
fn list_map(live: &Value, owned: Option<&Value>, applied: &Value, key: &str) -> Value {
    let (Value::Array(live), Value::Array(sent)) = (live, applied) else { return applied.clone() };
    let ids = |items: Option<&Value>| -> Vec<Value> {
        items
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|i| i.get(key).cloned()).collect())
            .unwrap_or_default()
    };
    let (sent_ids, owned_ids) = (ids(Some(applied)), ids(owned));
    let foreign = live.iter().filter(|i| i.get(key).is_none_or(|id| !sent_ids.contains(id) && !owned_ids.contains(id)));
    Value::Array(sent.iter().cloned().chain(foreign.cloned()).collect())
}

/// The status after `applied` is applied over `previous`, both written by the operator's field manager.
pub fn status_after(
    previous: &PerformanceProfileStatus,
    applied: &PerformanceProfileStatus,
) -> PerformanceProfileStatus {
    let previous = serde_json::to_value(previous).expect("status serializes");
    let applied = serde_json::to_value(applied).expect("status serializes");
    serde_json::from_value(apply(&previous, Some(&previous), &applied)).expect("status deserializes")
}
