//! Cache component: the Redis the operator provisions (Secret, config, Deployment, Service) and the TTL table.

use super::OwnedObjects;
use super::labels::{labels, meta};
use super::redis_auth::{self, Credentials};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use perf_operator_api::validation::parse_memory;
use perf_operator_api::{CacheSpec, PerformanceProfile, RedisExporter, RedisProvision};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Key of the password in the provisioned Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of the Redis config file holding the password, in the same Secret; mounted, so the password is never on a
/// command line (anyone who can list processes on the node would see it there).
pub const AUTH_CONF_KEY: &str = "auth.conf";
const AUTH_DIR: &str = "/etc/redis-auth";
const REDIS_PORT: i32 = 6379;
/// User and group of `redis` in the official image.
const REDIS_UID: i64 = 999;
const REDIS_GID: i64 = 999;
/// Settings of redis.conf that the operator holds live with `CONFIG SET` (see `decide::memory`): a change to
/// them must not restart Redis, which would empty the cache.
pub const LIVE_SETTINGS: [&str; 3] = ["maxmemory", "maxmemory-policy", "maxclients"];

/// What the cache component publishes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachePlan {
    /// `host:port` (or the external URL) the app connects to.
    pub address: String,
    /// Secret and key holding the password, if any.
    pub password_secret: Option<(String, String)>,
    /// TTL in seconds per class, from the spec (a policy may change them later).
    pub ttl_seconds: BTreeMap<String, u32>,
    /// Whether the app caches each class at all, as a cache policy decided; empty without a policy (all admitted).
    pub admit: BTreeMap<String, bool>,
    /// `maxclients` of the server, to cap Redis pools.
    pub max_clients: Option<u32>,
}

/// Whether the profile's Redis is provisioned with persistence (a StatefulSet rather than a Deployment).
pub fn is_persistent(spec: &CacheSpec) -> bool {
    spec.redis.provision.as_ref().is_some_and(|p| p.persistence.is_some())
}

/// Name of the provisioned Redis objects.
pub fn redis_name(profile: &PerformanceProfile) -> String {
    format!("{}-redis", profile.name_any())
}

/// `host:port` of the provisioned Redis's Service, as published to the app.
pub fn provisioned_address(profile: &PerformanceProfile) -> String {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    format!("{}.{namespace}.svc:{REDIS_PORT}", redis_name(profile))
}

/// How the operator itself reaches the provisioned Redis: its Service's fully qualified name in `cluster_domain`
/// (the trailing dot makes the resolver look it up once, not through every search domain first). The app contract
/// keeps [`provisioned_address`]: changing it would roll every app that rolls on a contract change.
pub fn operator_address(profile: &PerformanceProfile, cluster_domain: &str) -> String {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    format!("redis://{}.{namespace}.svc.{cluster_domain}.:{REDIS_PORT}", redis_name(profile))
}

#[cfg(test)]
#[test]
fn the_operator_reaches_the_provisioned_redis_by_its_fully_qualified_name() {
    let mut profile = PerformanceProfile::new("risk-api", Default::default());
    profile.metadata.namespace = Some("risk".into());
    let name = redis_name(&profile);
    assert_eq!(operator_address(&profile, "cluster.local"), format!("redis://{name}.risk.svc.cluster.local.:6379"));
    assert_eq!(provisioned_address(&profile), format!("{name}.risk.svc:6379"), "the contract's stays short");
}

/// Builds the cache plan, adding the Redis objects to `objects` when the profile provisions one.
pub fn build(
    profile: &PerformanceProfile,
    spec: &CacheSpec,
    credentials: &Credentials,
    objects: &mut OwnedObjects,
) -> CachePlan {
    let ttl_seconds = spec.ttl_classes.iter().map(|c| (c.name.clone(), c.ttl_seconds)).collect();
    if let Some(external) = &spec.redis.external {
        return CachePlan {
            address: external.address.clone(),
            password_secret: external.password_secret_ref.as_ref().map(|s| (s.name.clone(), s.key.clone())),
            ttl_seconds,
            admit: BTreeMap::new(),
            max_clients: external.max_clients,
        };
    }
    let provision = spec.redis.provision.clone().unwrap_or_default();
    let name = redis_name(profile);
    let config = redis_conf(&provision);
    objects.secrets.push(secret(profile, &name, credentials, provision.exporter.is_some()));
    objects.config_maps.push(config_map(profile, &name, &config));
    objects.services.push(service(profile, &name, provision.exporter.as_ref()));
    let template = pod_template(profile, &name, &provision, &restart_checksum(&config));
    // One workload kind at a time: the other one, left from before persistence was turned on or off, goes.
    match &provision.persistence {
        Some(persistence) => {
            objects.stateful_sets.push(super::redis_persistence::stateful_set(profile, &name, template, persistence));
            objects.retired.push(super::Retired::Deployment(name.clone()));
        }
        None => {
            objects.deployments.push(deployment(profile, &name, template));
            objects.retired.push(super::Retired::StatefulSet(name.clone()));
        }
    }
    CachePlan {
        address: provisioned_address(profile),
        password_secret: Some((name, PASSWORD_KEY.to_string())),
        ttl_seconds,
        admit: BTreeMap::new(),
        max_clients: Some(provision.max_clients),
    }
}

/// `redis.conf` for a provisioned Redis. The password is not here: the file includes `auth.conf`, mounted from the
/// Secret.
pub fn redis_conf(p: &RedisProvision) -> String {
    let bytes = parse_memory(&p.max_memory).unwrap_or(256 << 20);
    format!(
        "# Generated by perf-operator.\nport {REDIS_PORT}\nbind 0.0.0.0\nmaxmemory {bytes}\nmaxmemory-policy {}\n\
         maxclients {}\n{}include {AUTH_DIR}/{AUTH_CONF_KEY}\n",
        p.eviction_policy.as_redis(),
        p.max_clients,
        super::redis_persistence::conf(p.persistence.as_ref()),
    )
}

/// The password as a Redis config line (`requirepass`), quoted with Redis's escapes whatever it holds. The
/// operator writes the ACL form ([`redis_auth::acl_conf`]); this one is for a Redis configured by hand or in tests.
pub fn auth_conf(password: &str) -> String {
    let escaped: String = password
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("requirepass \"{escaped}\"\n")
}

/// What a restart is needed for: the config without the settings held live. Passwords are held live too
/// (`ACL SETUSER`, see [`redis_auth`]), so a rotation never restarts Redis; a change of maxmemory, the eviction
/// policy or maxclients neither.
pub fn restart_checksum(config: &str) -> String {
    let fixed: Vec<&str> =
        config.lines().filter(|l| !LIVE_SETTINGS.iter().any(|k| l.split_whitespace().next() == Some(k))).collect();
    hex::encode(Sha256::digest(fixed.join("\n").as_bytes()))
}

fn secret(profile: &PerformanceProfile, name: &str, credentials: &Credentials, exporter: bool) -> Secret {
    let text = |v: &str| ByteString(v.as_bytes().to_vec());
    let mut data = BTreeMap::from([
        (PASSWORD_KEY.to_string(), text(&credentials.current)),
        (AUTH_CONF_KEY.to_string(), text(&redis_auth::acl_conf(credentials, exporter))),
        (redis_auth::EXPORTER_KEY.to_string(), text(&credentials.exporter)),
    ]);
    let extra = [
        (redis_auth::PREVIOUS_KEY, &credentials.previous),
        (redis_auth::ROTATION_KEY, &credentials.rotation),
        (redis_auth::ROTATED_AT_KEY, &credentials.rotated_at),
    ];
    for (key, value) in extra {
        if let Some(value) = value {
            data.insert(key.to_string(), text(value));
        }
    }
    Secret {
        metadata: meta(profile, name.to_string(), "redis"),
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The ConfigMap holding `redis.conf` of the Redis called `redis`.
pub fn config_map_name(redis: &str) -> String {
    format!("{redis}-config")
}

fn config_map(profile: &PerformanceProfile, name: &str, config: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(profile, config_map_name(name), "redis"),
        data: Some(BTreeMap::from([("redis.conf".to_string(), config.to_string())])),
        ..ConfigMap::default()
    }
}

fn service(profile: &PerformanceProfile, name: &str, exporter: Option<&RedisExporter>) -> Service {
    let redis = ServicePort {
        name: Some("redis".into()),
        port: REDIS_PORT,
        target_port: Some(IntOrString::Int(REDIS_PORT)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    Service {
        metadata: meta(profile, name.to_string(), "redis"),
        spec: Some(ServiceSpec {
            selector: Some(labels(profile, "redis")),
            ports: Some(std::iter::once(redis).chain(exporter.map(super::redis_exporter::service_port)).collect()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Only `auth.conf` of the Secret, readable by the Redis user alone (the official image runs as uid 999, which
/// the pod's fsGroup makes the file's group).
fn auth_volume(name: &str) -> SecretVolumeSource {
    SecretVolumeSource {
        secret_name: Some(name.to_string()),
        items: Some(vec![KeyToPath { key: AUTH_CONF_KEY.into(), path: AUTH_CONF_KEY.into(), mode: None }]),
        default_mode: Some(0o440),
        ..SecretVolumeSource::default()
    }
}

/// Memory limit: maxmemory plus 25 % for Redis' own overhead and fragmentation, in MiB.
fn memory_limit(p: &RedisProvision) -> String {
    let bytes = parse_memory(&p.max_memory).unwrap_or(256 << 20);
    let mib = (bytes + bytes / 4).div_ceil(1 << 20);
    format!("{mib}Mi")
}

fn deployment(profile: &PerformanceProfile, name: &str, template: PodTemplateSpec) -> Deployment {
    let labels = labels(profile, "redis");
    Deployment {
        metadata: meta(profile, name.to_string(), "redis"),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels), match_expressions: None },
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Redis's pod: the config and the auth file mounted, the exporter beside it if asked, the data volume of a
/// persistent Redis at `/data`.
fn pod_template(profile: &PerformanceProfile, name: &str, p: &RedisProvision, checksum: &str) -> PodTemplateSpec {
    let labels = labels(profile, "redis");
    let checksum = checksum.to_string();
    let mut pod_meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        labels: Some(labels.clone()),
        ..Default::default()
    };
    // Only what Redis cannot take live restarts it (see [`restart_checksum`]).
    pod_meta.annotations = Some(BTreeMap::from([(super::labels::CONFIG_CHECKSUM_ANNOTATION.to_string(), checksum)]));
    let memory = Quantity(memory_limit(p));
    let container = Container {
        name: "redis".into(),
        image: Some(p.image.clone()),
        args: Some(vec!["/etc/redis/redis.conf".into()]),
        command: Some(vec!["redis-server".into()]),
        ports: Some(vec![ContainerPort {
            name: Some("redis".into()),
            container_port: REDIS_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(REDIS_PORT), host: None }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("memory".into(), memory.clone()),
                ("cpu".into(), Quantity("100m".into())),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), memory)])),
            ..ResourceRequirements::default()
        }),
        // Not root: the image's `redis` user, no privilege to gain, no capability (the port is above 1024).
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            run_as_non_root: Some(true),
            run_as_user: Some(REDIS_UID),
            run_as_group: Some(REDIS_GID),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(
            vec![
                VolumeMount {
                    name: "config".into(),
                    mount_path: "/etc/redis".into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "auth".into(),
                    mount_path: AUTH_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(p.persistence.as_ref().map(|_| super::redis_persistence::data_mount()))
            .collect(),
        ),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(pod_meta),
        spec: Some(PodSpec {
            containers: std::iter::once(container)
                .chain(
                    p.exporter
                        .as_ref()
                        .map(|x| super::redis_exporter::container(x, name, redis_auth::EXPORTER_KEY, REDIS_PORT)),
                )
                .collect(),
            security_context: Some(PodSecurityContext { fs_group: Some(REDIS_GID), ..PodSecurityContext::default() }),
            volumes: Some(vec![
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: format!("{name}-config"),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume { name: "auth".into(), secret: Some(auth_volume(name)), ..Volume::default() },
            ]),
            ..PodSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persistent_redis_is_a_stateful_set_with_its_own_claim_and_the_deployment_retires() {
        let mut profile = PerformanceProfile::new("shop", Default::default());
        profile.metadata.namespace = Some("web".into());
        let spec: CacheSpec = serde_json::from_value(serde_json::json!({
            "redis": {"provision": {"persistence": {"size": "5Gi", "storageClassName": "fast"}}},
            "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]
        }))
        .unwrap();
        let mut objects = OwnedObjects::default();
        build(&profile, &spec, &Credentials::default(), &mut objects);
        assert!(objects.deployments.is_empty());
        assert_eq!(objects.retired, [super::super::Retired::Deployment("shop-redis".into())]);
        let set = objects.stateful_sets[0].spec.clone().unwrap();
        assert_eq!((set.replicas, set.service_name.as_deref()), (Some(1), Some("shop-redis")));
        let claim = &set.volume_claim_templates.unwrap()[0];
        let claim = serde_json::to_value(claim).unwrap();
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
        assert_eq!(claim["spec"]["storageClassName"], "fast");
        let pod = set.template.spec.unwrap();
        let security = serde_json::to_value(&pod.containers[0].security_context).unwrap();
        assert_eq!(
            (&security["runAsNonRoot"], &security["runAsUser"]),
            (&serde_json::json!(true), &serde_json::json!(999))
        );
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(security["allowPrivilegeEscalation"], serde_json::json!(false));
        let mounts = serde_json::to_string(&pod.containers[0].volume_mounts).unwrap();
        assert!(mounts.contains("\"/data\""), "{mounts}");
        let conf = &objects.config_maps[0].data.as_ref().unwrap()["redis.conf"];
        assert!(conf.contains("dir /data\n") && conf.contains("appendonly yes\n"), "{conf}");
        // Without persistence: a Deployment, and a StatefulSet left from before retires.
        let plain: CacheSpec = serde_json::from_value(serde_json::json!({
            "redis": {"provision": {}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]
        }))
        .unwrap();
        let mut objects = OwnedObjects::default();
        build(&profile, &plain, &Credentials::default(), &mut objects);
        assert_eq!((objects.deployments.len(), objects.stateful_sets.len()), (1, 0));
        assert_eq!(objects.retired, [super::super::Retired::StatefulSet("shop-redis".into())]);
    }

    #[test]
    fn the_password_is_in_the_mounted_file_not_on_the_command_line() {
        let mut profile = PerformanceProfile::new("shop", Default::default());
        profile.metadata.namespace = Some("web".into());
        let spec: CacheSpec = serde_json::from_value(serde_json::json!({
            "redis": {"provision": {}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]
        }))
        .unwrap();
        let mut objects = OwnedObjects::default();
        build(&profile, &spec, &Credentials { current: "hunter2".into(), ..Credentials::default() }, &mut objects);
        let pod = objects.deployments[0].spec.as_ref().unwrap().template.spec.clone().unwrap();
        let container = serde_json::to_string(&pod.containers[0]).unwrap();
        assert!(!container.contains("hunter2") && !container.contains("requirepass"), "{container}");
        assert!(container.contains("/etc/redis-auth"), "{container}");
        let data = objects.secrets[0].data.clone().unwrap();
        let auth = String::from_utf8(data[AUTH_CONF_KEY].0.clone()).unwrap();
        assert_eq!(auth, format!("user default on #{} ~* &* +@all\n", redis_auth::sha256("hunter2")));
        assert!(!auth.contains("hunter2"), "only a hash in the file Redis reads");
        assert!(
            objects.config_maps[0].data.as_ref().unwrap()["redis.conf"].contains("include /etc/redis-auth/auth.conf")
        );
        assert_eq!(auth_conf("a\"b\\c"), "requirepass \"a\\\"b\\\\c\"\n");
        assert_eq!(pod.containers.len(), 1, "no exporter unless asked");
    }

    #[test]
    fn the_exporter_reads_the_password_from_the_secret_and_is_on_the_service() {
        let mut profile = PerformanceProfile::new("shop", Default::default());
        profile.metadata.namespace = Some("web".into());
        let spec: CacheSpec = serde_json::from_value(serde_json::json!({
            "redis": {"provision": {"exporter": {}}}, "ttlClasses": []
        }))
        .unwrap();
        let mut objects = OwnedObjects::default();
        let credentials = Credentials { current: "hunter2".into(), exporter: "exp".into(), ..Credentials::default() };
        build(&profile, &spec, &credentials, &mut objects);
        let pod = objects.deployments[0].spec.as_ref().unwrap().template.spec.clone().unwrap();
        let exporter = pod.containers.iter().find(|c| c.name == "redis-exporter").expect("the sidecar");
        let text = serde_json::to_string(exporter).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let env = exporter.env.clone().unwrap();
        let password = env.iter().find(|e| e.name == "REDIS_PASSWORD").unwrap();
        let from = password.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        // Its own user and password, which no rotation of the app's password changes.
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            (objects.secrets[0].metadata.name.as_deref().unwrap(), redis_auth::EXPORTER_KEY)
        );
        assert!(env.iter().any(|e| e.name == "REDIS_USER" && e.value.as_deref() == Some("exporter")));
        let auth = String::from_utf8(objects.secrets[0].data.as_ref().unwrap()[AUTH_CONF_KEY].0.clone()).unwrap();
        assert!(auth.contains("\nuser exporter on #"), "{auth}");
        assert!(env.iter().any(|e| e.name == "REDIS_ADDR" && e.value.as_deref() == Some("redis://localhost:6379")));
        let ports = objects.services[0].spec.clone().unwrap().ports.unwrap();
        let metrics = ports.iter().find(|p| p.name.as_deref() == Some("metrics")).expect("the metrics port");
        assert_eq!(metrics.port, 9121);
    }
}
