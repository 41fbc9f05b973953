//! Strict field validation, as the API server runs it for `kubectl apply` (`fieldValidation=Strict`): the
//! document's `apiVersion` and `kind` must name a served version of the CRD, and every field must be declared by
//! the CRD's structural schema (`metadata` by `ObjectMeta`).
//!
//! Typed deserialization cannot do this: serde ignores unknown keys, so `errorRatePercnt` silently became the
//! default. The walk mirrors the server's pruning (`apiextensions-apiserver` `pruning/algorithm.go`): it reports
//! what the server would prune, which strict validation turns into errors.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use perf_operator_api::validation::FieldError;
use serde_json::Value;
use std::sync::OnceLock;

/// What the API server knows of the resource, read once from the generated CRD.
struct Api {
    group: String,
    kind: String,
    /// Served versions with their root schema; `apiVersion`, `kind` and `metadata` are declared in it.
    versions: Vec<(String, JSONSchemaProps)>,
}

/// The API of the kind `value` names: an analysis template kind, else the PerformanceProfile (whose name a
/// misspelt kind is reported against).
fn api(value: &Value) -> &'static Api {
    static APIS: OnceLock<[Api; 3]> = OnceLock::new();
    let apis = APIS.get_or_init(|| {
        let [namespaced, cluster] = perf_operator_api::template_crds();
        [api_of(perf_operator_api::crd()), api_of(namespaced), api_of(cluster)]
    });
    let kind = value.get("kind").and_then(Value::as_str);
    apis.iter().find(|api| Some(api.kind.as_str()) == kind).unwrap_or(&apis[0])
}

fn api_of(crd: CustomResourceDefinition) -> Api {
    let metadata = object_meta_schema();
    let versions = crd
        .spec
        .versions
        .into_iter()
        .filter(|v| v.served)
        .map(|v| {
            let schema = v.schema.and_then(|s| s.open_api_v3_schema).unwrap_or_else(preserve_all);
            (v.name, with_object_fields(schema, &metadata))
        })
        .collect();
    Api { group: crd.spec.group, kind: crd.spec.names.kind, versions }
}

/// A schema that accepts anything: the server does not prune a version without schema.
fn preserve_all() -> JSONSchemaProps {
    JSONSchemaProps { x_kubernetes_preserve_unknown_fields: Some(true), ..Default::default() }
}

/// The CRD's root schema leaves out the fields every object has; the server allows them at the root and checks
/// `metadata` against `ObjectMeta`. Declaring them here keeps the walk uniform (and lists them in messages).
fn with_object_fields(mut root: JSONSchemaProps, metadata: &JSONSchemaProps) -> JSONSchemaProps {
    let string = JSONSchemaProps { type_: Some("string".into()), ..Default::default() };
    let properties = root.properties.get_or_insert_with(Default::default);
    properties.entry("apiVersion".into()).or_insert_with(|| string.clone());
    properties.entry("kind".into()).or_insert(string);
    properties.entry("metadata".into()).or_insert_with(|| metadata.clone());
    root
}

/// `ObjectMeta`'s schema from k8s-openapi (the API level we build against), generated like kube generates the
/// CRD's, so nested fields (`ownerReferences[0].uid`) are checked too.
fn object_meta_schema() -> JSONSchemaProps {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let schema = generator.into_root_schema_for::<ObjectMeta>();
    // Cannot fail for a schema generated from a fixed type (a unit test proves it); should it ever, `metadata`
    // goes unchecked rather than the command refusing every file.
    let mut schema = serde_json::to_value(schema).and_then(serde_json::from_value).unwrap_or_else(|_| preserve_all());
    open_free_form_objects(&mut schema);
    schema
}

/// In the built-in types' OpenAPI, an object without properties is opaque JSON (`managedFields[].fieldsV1`);
/// in a structural schema the same shape would prune every key, so it is marked as preserving them.
fn open_free_form_objects(schema: &mut JSONSchemaProps) {
    let object = schema.type_.as_deref() == Some("object");
    if object && schema.properties.is_none() && schema.additional_properties.is_none() {
        schema.x_kubernetes_preserve_unknown_fields = Some(true);
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        open_free_form_objects(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &mut schema.items {
        open_free_form_objects(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &mut schema.additional_properties {
        open_free_form_objects(values);
    }
}

/// Every problem strict validation finds in one document meant to be a PerformanceProfile: `apiVersion` and
/// `kind`, then each undeclared field with its path.
pub fn check(value: &Value) -> Vec<FieldError> {
    if !value.is_object() {
        return vec![error("(document)", format!("expected a {} object, got a {}", api(value).kind, type_name(value)))];
    }
    let (mut errors, schema) = check_type_meta(value);
    if let Some(schema) = schema {
        walk(Some(schema), value, "", false, &mut errors);
    }
    errors
}

/// Checks `apiVersion` and `kind`. Returns the schema of the named version, or else of the first served one, so
/// that unknown fields are still reported next to a wrong version.
fn check_type_meta(value: &Value) -> (Vec<FieldError>, Option<&'static JSONSchemaProps>) {
    let api = api(value);
    let mut errors = Vec::new();
    let api_version = value.get("apiVersion");
    let named = |(v, _): &&(String, JSONSchemaProps)| {
        api_version.and_then(Value::as_str) == Some(format!("{}/{v}", api.group).as_str())
    };
    let served = api.versions.iter().find(named);
    if served.is_none() {
        let expected: Vec<String> = api.versions.iter().map(|(v, _)| format!("{}/{v}", api.group)).collect();
        errors.push(mismatch("apiVersion", &expected.join(" or "), api_version));
    }
    let kind = value.get("kind");
    if kind.and_then(Value::as_str) != Some(api.kind.as_str()) {
        errors.push(mismatch("kind", &api.kind, kind));
    }
    (errors, served.or(api.versions.first()).map(|(_, schema)| schema))
}

fn mismatch(field: &str, expected: &str, got: Option<&Value>) -> FieldError {
    match got {
        None | Some(Value::Null) => error(field, format!("is required; expected {expected}")),
        Some(Value::String(s)) if s.is_empty() => error(field, format!("is required; expected {expected}")),
        Some(Value::String(s)) => error(field, format!("expected {expected}, got {s}")),
        Some(other) => error(field, format!("expected {expected}, got {} {other}", type_name(other))),
    }
}

/// Walks `value` against `schema` (`None`: no schema, where the server prunes every key). `lenient` is set below an
/// `x-kubernetes-preserve-unknown-fields` node: unknown keys are kept there, declared ones are still checked.
fn walk(schema: Option<&JSONSchemaProps>, value: &Value, path: &str, lenient: bool, errors: &mut Vec<FieldError>) {
    let lenient = lenient || schema.is_some_and(|s| s.x_kubernetes_preserve_unknown_fields == Some(true));
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match declared(schema, key) {
                    // The server prunes a declared field strictly again, even under preserve-unknown-fields.
                    Some(child_schema) => walk(child_schema, child, &child_path, false, errors),
                    None if lenient => {}
                    None => errors.push(error(&child_path, unknown_field(key, schema))),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(items_schema(schema), item, &format!("{path}[{i}]"), lenient, errors);
            }
        }
        _ => {}
    }
}

/// The schema of `key` when the object declares it: a property, or any key when `additionalProperties` is set
/// (`true` declares the key without a schema for its value, as in the server's structural schema).
fn declared<'a>(schema: Option<&'a JSONSchemaProps>, key: &str) -> Option<Option<&'a JSONSchemaProps>> {
    let schema = schema?;
    if let Some(property) = schema.properties.as_ref().and_then(|p| p.get(key)) {
        return Some(Some(property));
    }
    match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(values)) => Some(Some(values)),
        Some(JSONSchemaPropsOrBool::Bool(true)) => Some(None),
        _ => None,
    }
}

/// Schema of list items. A list of schemas (tuple validation) is not structural; the server has no items schema then.
fn items_schema(schema: Option<&JSONSchemaProps>) -> Option<&JSONSchemaProps> {
    match &schema?.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => Some(items),
        _ => None,
    }
}

fn unknown_field(key: &str, schema: Option<&JSONSchemaProps>) -> String {
    let known: Vec<&str> =
        schema.and_then(|s| s.properties.as_ref()).map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
    if known.is_empty() {
        return format!("unknown field {key:?}; this value declares no fields");
    }
    let hint = closest(key, &known).map(|k| format!(" (did you mean {k:?}?)")).unwrap_or_default();
    format!("unknown field {key:?}{hint}; expected one of: {}", known.join(", "))
}

/// The declared name a misspelling most likely meant: few edits away, ignoring case.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key = key.to_lowercase();
    let best = known.iter().map(|k| (edit_distance(&key, &k.to_lowercase()), *k)).min_by_key(|(d, _)| *d)?;
    (best.0 <= (key.chars().count() / 4).max(2)).then_some(best.1)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn error(field: &str, message: String) -> FieldError {
    FieldError { field: field.to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Vec<String> {
        check(&value).into_iter().map(|e| e.field).collect()
    }

    fn profile(spec: Value) -> Value {
        json!({"apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
               "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn object_meta_schema_declares_the_fields_of_object_meta() {
        let schema = object_meta_schema();
        let known: Vec<&str> = schema.properties.iter().flat_map(|p| p.keys().map(String::as_str)).collect();
        for field in ["name", "namespace", "labels", "annotations", "generateName", "uid", "resourceVersion"] {
            assert!(known.contains(&field), "{field} missing from {known:?}");
        }
        for field in ["generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            assert!(known.contains(&field), "{field} missing from {known:?}");
        }
        for field in ["finalizers", "ownerReferences", "managedFields", "selfLink"] {
            assert!(known.contains(&field), "{field} missing from {known:?}");
        }
    }

    #[test]
    fn the_crd_has_no_embedded_resources() {
        // The walk does not give embedded resources their implicit apiVersion/kind/metadata; adding one to the
        // CRD must come with that support.
        let crd = serde_json::to_string(&perf_operator_api::crd()).expect("CRD serializes");
        assert!(!crd.contains("x-kubernetes-embedded-resource"));
    }

    #[test]
    fn a_declared_field_under_preserve_unknown_fields_is_still_checked() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
        }))
        .expect("valid schema");
        let mut errors = Vec::new();
        walk(Some(&schema), &json!({"anything": {"x": 1}, "known": {"a": "1", "b": 2}}), "", false, &mut errors);
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["known.b"]);
    }

    #[test]
    fn managed_fields_v1_is_free_form() {
        let mut value = profile(json!({"targetRef": {"name": "t"}}));
        value["metadata"]["managedFields"] = json!([{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]);
        assert_eq!(fields(value), Vec::<String>::new());
    }

    #[test]
    fn misspellings_get_a_suggestion() {
        assert_eq!(closest("errorRatePercnt", &["p99LatencyMs", "errorRatePercent"]), Some("errorRatePercent"));
        assert_eq!(closest("spce", &["apiVersion", "kind", "metadata", "spec", "status"]), Some("spec"));
        assert_eq!(closest("completelyDifferent", &["spec", "status"]), None);
    }

    #[test]
    fn a_non_object_document_is_refused_as_a_whole() {
        assert_eq!(fields(json!(["a"])), ["(document)"]);
    }
}
