//! A provisioned Redis that keeps its data across restarts: its persistence lines of `redis.conf`, and the
//! StatefulSet whose claim holds `/data` (a Deployment's pods would share or lose a volume; a StatefulSet gives the
//! one replica its own claim, kept when the pod is replaced).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use perf_operator_api::{PerformanceProfile, PersistenceMode, RedisPersistence};

use super::labels::{labels, meta};

/// The claim template's name: the claim of the one pod is `data-<name>-0`.
pub const DATA_VOLUME: &str = "data";
const DATA_DIR: &str = "/data";

/// The persistence lines of `redis.conf`: none without persistence (`save ""`, `appendonly no`: a cache that starts
/// empty), else AOF fsynced every second and/or RDB snapshots, written under `/data`.
pub fn conf(persistence: Option<&RedisPersistence>) -> String {
    let Some(p) = persistence else { return "save \"\"\nappendonly no\n".into() };
    let aof = matches!(p.mode, PersistenceMode::Aof | PersistenceMode::Both);
    let rdb = matches!(p.mode, PersistenceMode::Rdb | PersistenceMode::Both);
    let save = if rdb { "save 3600 1 300 100 60 10000" } else { "save \"\"" };
    let append = if aof { "appendonly yes\nappendfsync everysec" } else { "appendonly no" };
    format!("dir {DATA_DIR}\n{save}\n{append}\n")
}

/// Where the claim is mounted in the Redis container.
pub fn data_mount() -> VolumeMount {
    VolumeMount { name: DATA_VOLUME.into(), mount_path: DATA_DIR.into(), ..VolumeMount::default() }
}

/// One replica of `template` with its own claim. The claim outlives the StatefulSet (retention `Retain`): deleting
/// the profile or turning persistence off never deletes data; `kubectl delete pvc data-<name>-0` does.
pub fn stateful_set(
    profile: &PerformanceProfile,
    name: &str,
    template: PodTemplateSpec,
    p: &RedisPersistence,
) -> StatefulSet {
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(DATA_VOLUME.into()), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: p.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(p.size.clone()))])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };
    StatefulSet {
        metadata: meta(profile, name.to_string(), "redis"),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name.to_string()),
            selector: LabelSelector { match_labels: Some(labels(profile, "redis")), match_expressions: None },
            template,
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Retain".into()),
                when_scaled: Some("Retain".into()),
            }),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_writes_what_it_says_under_data() {
        assert_eq!(conf(None), "save \"\"\nappendonly no\n");
        let with = |mode| conf(Some(&RedisPersistence { mode, ..RedisPersistence::default() }));
        assert_eq!(with(PersistenceMode::Aof), "dir /data\nsave \"\"\nappendonly yes\nappendfsync everysec\n");
        assert_eq!(with(PersistenceMode::Rdb), "dir /data\nsave 3600 1 300 100 60 10000\nappendonly no\n");
        let both = with(PersistenceMode::Both);
        assert!(both.contains("save 3600") && both.contains("appendonly yes"), "{both}");
    }
}
