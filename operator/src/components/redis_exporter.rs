//! The optional Prometheus exporter beside a provisioned Redis (`cache.redis.provision.exporter`): a sidecar that
//! reads Redis over localhost with the password from the Redis Secret (an environment variable from the Secret,
//! never on a command line), and its `metrics` port on the Redis Service.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Probe, ResourceRequirements, SecretKeySelector,
    SecurityContext, ServicePort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use perf_operator_api::RedisExporter;
use std::collections::BTreeMap;

/// Name of the exporter's port, on the container and the Service.
pub const PORT_NAME: &str = "metrics";

/// The sidecar, for the Redis whose Secret is `secret` and which listens on `redis_port`.
pub fn container(exporter: &RedisExporter, secret: &str, password_key: &str, redis_port: i32) -> Container {
    let port = i32::from(exporter.port);
    let env = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), value_from: None };
    let password = EnvVar {
        name: "REDIS_PASSWORD".into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: password_key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    };
    let small = |cpu: &str, memory: &str| {
        BTreeMap::from([("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(memory.into()))])
    };
    Container {
        name: "redis-exporter".into(),
        image: Some(exporter.image.clone()),
        env: Some(vec![
            env("REDIS_ADDR", format!("redis://localhost:{redis_port}")),
            // Its own ACL user, whose password no rotation of the app's changes (see `redis_auth`).
            env("REDIS_USER", super::redis_auth::EXPORTER_USER.into()),
            password,
            env("REDIS_EXPORTER_WEB_LISTEN_ADDRESS", format!(":{port}")),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".into()),
                port: IntOrString::Int(port),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(small("10m", "32Mi")),
            limits: Some(BTreeMap::from([("memory".to_string(), Quantity("64Mi".into()))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            // redis_exporter's image declares no numeric user.
            run_as_user: Some(59000),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The `metrics` port of the Redis Service.
pub fn service_port(exporter: &RedisExporter) -> ServicePort {
    let port = i32::from(exporter.port);
    ServicePort {
        name: Some(PORT_NAME.into()),
        port,
        target_port: Some(IntOrString::String(PORT_NAME.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}
