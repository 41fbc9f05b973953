//! The chart's values as a table: every value `values.schema.json` accepts, with its type and rules from the
//! schema, its default from `values.yaml` and its meaning from the schema's `description` (required of every row,
//! so a value added without one fails `perf-operator reference` and CI's drift check).

use super::{cell, one_line};
use serde_json::{Map, Value};
use std::fmt::Write;

const SCHEMA: &str = include_str!("../../../charts/perf-operator/values.schema.json");
const VALUES: &str = include_str!("../../../charts/perf-operator/values.yaml");

/// Why the table cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ChartDocError {
    #[error("charts/perf-operator/values.schema.json is not JSON: {0}")]
    Schema(#[source] serde_json::Error),
    #[error("charts/perf-operator/values.yaml is not YAML: {0}")]
    Values(#[source] serde_saphyr::Error),
    #[error("charts/perf-operator/values.schema.json: no description for {0} (the reference needs one per value)")]
    Undescribed(String),
}

/// The values table, then one table per shared type a value refers to (as `networkPolicy.egress.*` do).
pub fn markdown() -> Result<String, ChartDocError> {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(ChartDocError::Schema)?;
    let values: Value = serde_saphyr::from_str(VALUES).map_err(ChartDocError::Values)?;
    let mut walk = Walk { definitions: &schema["definitions"], rows: Vec::new(), types: Vec::new() };
    walk.group("", &schema, &values)?;
    let mut out = String::from("| value | type | default | meaning |\n| --- | --- | --- | --- |\n");
    for row in &walk.rows {
        out.push_str(row);
    }
    for name in &walk.types {
        let def = &walk.definitions[name.as_str()];
        let _ = writeln!(out, "\nEach `{name}` value ({}):\n", one_line(def["description"].as_str().unwrap_or("")));
        out.push_str("| field | type | meaning |\n| --- | --- | --- |\n");
        for (field, node) in def["properties"].as_object().into_iter().flatten() {
            let node = walk.resolved(node);
            let meaning = node["description"].as_str().map(one_line).unwrap_or_default();
            let _ = writeln!(out, "| `{field}` | {} | {} |", cell(&kind(&node)), cell(&meaning));
        }
    }
    Ok(out)
}

struct Walk<'a> {
    definitions: &'a Value,
    rows: Vec<String>,
    /// Object definitions referred to by a row, described once after the table.
    types: Vec<String>,
}

impl Walk<'_> {
    fn group(&mut self, path: &str, node: &Value, values: &Value) -> Result<(), ChartDocError> {
        let empty = Map::new();
        for (name, child) in node["properties"].as_object().unwrap_or(&empty) {
            let here = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            let value = &values[name.as_str()];
            let resolved = self.resolved(child);
            let referred = reference(child);
            if child.get("$ref").is_none() && resolved["properties"].is_object() {
                self.group(&here, &resolved, value)?;
                continue;
            }
            // The Helm-set `global` is not a value of this chart.
            if here == "global" {
                continue;
            }
            let meaning = child["description"]
                .as_str()
                .or(resolved["description"].as_str().filter(|_| referred.is_none()))
                .ok_or_else(|| ChartDocError::Undescribed(here.clone()))?;
            let mut ty = kind(&resolved);
            if let Some(name) = referred.filter(|_| resolved["properties"].is_object()) {
                ty = format!("`{name}` (below)");
                if !self.types.contains(&name) {
                    self.types.push(name);
                }
            }
            let default = if value.is_null() { String::new() } else { format!("`{value}`") };
            self.rows.push(format!(
                "| `{here}` | {} | {} | {} |\n",
                cell(&ty),
                cell(&default),
                cell(&one_line(meaning))
            ));
        }
        Ok(())
    }

    /// The node with a `$ref` replaced by its definition (the node's own keys win).
    fn resolved(&self, node: &Value) -> Value {
        let Some(name) = reference(node) else { return node.clone() };
        let mut merged = self.definitions[name.as_str()].as_object().cloned().unwrap_or_default();
        for (k, v) in node.as_object().into_iter().flatten().filter(|(k, _)| *k != "$ref") {
            merged.insert(k.clone(), v.clone());
        }
        Value::Object(merged)
    }
}

fn reference(node: &Value) -> Option<String> {
    node["$ref"].as_str().and_then(|r| r.strip_prefix("#/definitions/")).map(str::to_string)
}

/// `string`, `integer >= 1`, `one of json, text`, `[]string`.
fn kind(node: &Value) -> String {
    if let Some(values) = node["enum"].as_array() {
        let values: Vec<String> =
            values.iter().map(|v| format!("`{}`", v.as_str().filter(|s| !s.is_empty()).unwrap_or("\"\""))).collect();
        return format!("one of {}", values.join(", "));
    }
    let base = match &node["type"] {
        Value::String(t) if t == "array" => match node["items"]["$ref"].as_str() {
            Some(r) => format!("[]{}", r.trim_start_matches("#/definitions/")),
            None => format!("[]{}", node["items"]["type"].as_str().unwrap_or("object")),
        },
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => node["oneOf"]
            .as_array()
            .map(|alts| alts.iter().filter_map(|a| a["type"].as_str()).collect::<Vec<_>>().join(" or "))
            .unwrap_or_else(|| "any".into()),
    };
    match (node["minimum"].as_i64(), node["maximum"].as_i64()) {
        (Some(min), Some(max)) => format!("{base} {min}..{max}"),
        (Some(min), None) => format!("{base} >= {min}"),
        (None, Some(max)) => format!("{base} <= {max}"),
        (None, None) => base,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_value_of_values_yaml_has_a_row_and_a_meaning() {
        let md = super::markdown().expect("every value described");
        let values: serde_json::Value = serde_saphyr::from_str(super::VALUES).unwrap();
        let mut missing = Vec::new();
        leaves("", &values, &mut |path| {
            // A value is listed itself or under a group row (a map such as resources.requests).
            let listed = md.contains(&format!("| `{path}` |"))
                || path.rsplit_once('.').is_some_and(|(parent, _)| md.contains(&format!("| `{parent}` |")));
            if !listed {
                missing.push(path.to_string());
            }
        });
        assert!(missing.is_empty(), "not in the table: {missing:?}");
        for line in md.lines().filter(|l| l.starts_with("| `")) {
            assert!(line.matches(" | ").count() >= 2, "{line}");
        }
    }

    fn leaves(path: &str, v: &serde_json::Value, found: &mut dyn FnMut(&str)) {
        match v.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, child) in map {
                    let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    leaves(&here, child, found);
                }
            }
            _ => found(path),
        }
    }
}
