//! The primary's rollout history, for an abort during a promotion: the template it ran before its current one, as
//! the newest of its older ReplicaSets holds it (what `kubectl rollout undo` would go back to).

use crate::objects::ROLE_LABEL;
use crate::{Error, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// The Deployment controller's revision annotation, on Deployments and their ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the Deployment controller adds to each ReplicaSet's template.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Reads the primary's ReplicaSets and returns the template before its current one.
pub async fn previous_template(client: &Client, ns: &str, primary: &Deployment) -> Result<Option<PodTemplateSpec>> {
    let labels = primary
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let sets = api.list(&ListParams::default().labels(&labels)).await.map_err(Error::kube("list ReplicaSets"))?;
    Ok(previous_of(primary, &sets.items))
}

/// Pure: among the ReplicaSets owned by `primary`, the template of the newest revision older than the primary's,
/// as the target would carry it (without the controller's hash label and the operator's role label).
pub fn previous_of(primary: &Deployment, sets: &[ReplicaSet]) -> Option<PodTemplateSpec> {
    let uid = primary.uid()?;
    let current = revision(primary.annotations().get(REVISION))?;
    let owned =
        sets.iter().filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true)));
    let (_, set) = owned
        .filter_map(|rs| Some((revision(rs.annotations().get(REVISION))?, rs)))
        .filter(|(r, _)| *r < current)
        .max_by_key(|(r, _)| *r)?;
    let mut template = set.spec.as_ref()?.template.clone()?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
        labels.remove(ROLE_LABEL);
    }
    Some(template)
}

fn revision(value: Option<&String>) -> Option<u64> {
    value?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(uid: &str, revision: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-primary-{revision}"), "annotations": {REVISION: revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-primary", "uid": uid, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "abc", ROLE_LABEL: "primary"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    fn image(t: &PodTemplateSpec) -> String {
        t.spec.as_ref().unwrap().containers[0].image.clone().unwrap()
    }

    #[test]
    fn the_newest_older_revision_of_the_primary_is_the_one_to_go_back_to() {
        let primary: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web-primary", "uid": "p1", "annotations": {REVISION: "4"}}
        }))
        .unwrap();
        let sets = [set("p1", "2", "web:1"), set("p1", "3", "web:2"), set("p1", "4", "web:3"), set("other", "3", "x")];
        let previous = previous_of(&primary, &sets).expect("a previous template");
        assert_eq!(image(&previous), "web:2");
        let labels = previous.metadata.unwrap().labels.unwrap();
        assert_eq!(labels.len(), 1, "the controller's and the operator's labels are taken off: {labels:?}");
        // Nothing older (a first revision, or a revisionHistoryLimit of 0): nothing to go back to.
        assert!(previous_of(&primary, &sets[2..3]).is_none());
        assert!(previous_of(&primary, &sets[3..]).is_none(), "another Deployment's ReplicaSet is never used");
    }
}
