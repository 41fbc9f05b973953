//! The CustomResourceDefinition as the API server should receive it.

use crate::PerformanceProfile;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// kube's derived CRD without the `uint8`..`uint64` formats schemars gives unsigned integers: the API server
/// does not know them and warns on every apply (`unrecognized format "uint32"`). The `minimum: 0` schemars emits
/// beside them keeps the bound. Use this, never `PerformanceProfile::crd()`, wherever the CRD is printed or
/// installed.
pub fn crd() -> CustomResourceDefinition {
    cleaned(PerformanceProfile::crd())
}

/// The CRDs of the two analysis template kinds (`AnalysisTemplate`, `ClusterAnalysisTemplate`), cleaned as [`crd`].
pub fn template_crds() -> [CustomResourceDefinition; 2] {
    [cleaned(crate::AnalysisTemplate::crd()), cleaned(crate::ClusterAnalysisTemplate::crd())]
}

fn cleaned(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            drop_unknown_formats(schema);
        }
    }
    crd
}

fn drop_unknown_formats(schema: &mut JSONSchemaProps) {
    if schema.format.as_deref().is_some_and(|f| f.starts_with("uint")) {
        schema.format = None;
    }
    let nested = schema.properties.iter_mut().flat_map(|p| p.values_mut());
    let items = schema.items.iter_mut().flat_map(|i| match i {
        JSONSchemaPropsOrArray::Schema(s) => vec![s.as_mut()],
        JSONSchemaPropsOrArray::Schemas(v) => v.iter_mut().collect(),
    });
    let additional = schema.additional_properties.iter_mut().filter_map(|a| match a {
        JSONSchemaPropsOrBool::Schema(s) => Some(s.as_mut()),
        JSONSchemaPropsOrBool::Bool(_) => None,
    });
    let combined = [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of].into_iter().flatten().flatten();
    for child in nested.chain(items).chain(additional).chain(combined) {
        drop_unknown_formats(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_format_the_api_server_does_not_know() {
        let text = serde_json::to_string(&crd()).unwrap();
        assert!(!text.contains("\"uint"), "an unsigned-integer format is left");
        assert!(serde_json::to_string(&PerformanceProfile::crd()).unwrap().contains("\"uint32\""), "test is stale");
        // The bound stays: ttlSeconds is at least 1 by its own rule, every unsigned field at least 0.
        assert!(text.contains("\"minimum\":0"), "{text}");
    }
}
