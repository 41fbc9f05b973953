//! A stand-in for the kubelet: the test cluster has no nodes, so pods stay Pending. Tests that need a Deployment
//! to become available mark its pods Running and Ready through the status subresource, as a kubelet would.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// Marks every pod of the namespace that is not Running yet as Running and Ready; returns how many it marked.
pub async fn mark_pods_ready(pods: &Api<Pod>) -> usize {
    mark_ready_except(pods, &|_| false).await
}

/// As [`mark_pods_ready`], leaving the pods `held` picks Pending, as a node that cannot start them would. Only pods
/// not Running are listed (the server filters them), and 16 are marked at a time: the benchmarks run thousands.
async fn mark_ready_except(pods: &Api<Pod>, held: &(dyn Fn(&Pod) -> bool + Send + Sync)) -> usize {
    use futures::StreamExt;
    let Ok(list) = pods.list(&ListParams::default().fields("status.phase!=Running")).await else { return 0 };
    let now = jiff::Timestamp::now().to_string();
    let marks = list.items.into_iter().filter(|pod| pod.metadata.deletion_timestamp.is_none() && !held(pod));
    futures::stream::iter(marks)
        .map(|pod| mark_ready(pods, pod, &now))
        .buffer_unordered(16)
        .filter(|marked| std::future::ready(*marked))
        .count()
        .await
}

/// Marks one pod Running and Ready, as the kubelet would once its containers started.
async fn mark_ready(pods: &Api<Pod>, pod: Pod, now: &str) -> bool {
    let Some(name) = pod.metadata.name.clone() else { return false };
    let containers: Vec<_> = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
    let statuses: Vec<_> = containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "", "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}
            })
        })
        .collect();
    let status = json!({"status": {
        "phase": "Running", "podIP": "10.244.0.10", "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now}
        ],
        "containerStatuses": statuses
    }});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.is_ok()
}

/// Marks the namespace's pods Ready every half second while the returned guard lives.
pub fn run(pods: Api<Pod>) -> Kubelet {
    run_except(pods, |_| false)
}

/// Marks the namespace's pods Ready every half second, except those `held` picks, while the guard lives. A test
/// holds a rollout this way by a condition it controls (which pods never start), not by when it stops a kubelet.
pub fn run_except(pods: Api<Pod>, held: impl Fn(&Pod) -> bool + Send + Sync + 'static) -> Kubelet {
    Kubelet(tokio::spawn(async move {
        loop {
            mark_ready_except(&pods, &held).await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }))
}

/// The pod runs `image` in a container and carries `key: value`.
pub fn runs(pod: &Pod, key: &str, value: &str, image: &str) -> bool {
    let labelled = pod.metadata.labels.as_ref().and_then(|l| l.get(key)).is_some_and(|v| v == value);
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    labelled && containers.iter().any(|c| c.image.as_deref() == Some(image))
}

/// The running stand-in; stops on drop.
pub struct Kubelet(tokio::task::JoinHandle<()>);

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}
