//! Quiet at scale, on the real API server: a profile whose live observations move at every read (an external
//! Redis under traffic, a cache policy deciding on its counters) reconciles at its resync and no more often, its
//! own status writes starting no round; a spec change and a target's new pod template still start a round at once.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile, set_image};
use perf_e2e::{OPERATOR_USER, Operator, audit, cluster, kubelet, redis_traffic};
use perf_operator_api::status::CanaryPhase;
use serde_json::json;
use std::time::{Duration, Instant};

/// The resync of the operators here, in seconds (jittered by 10 %).
const RESYNC: u64 = 20;

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_busy_redis_starts_no_round_and_a_spec_change_starts_one_at_once() {
    let c = cluster().await;
    let _traffic = redis_traffic::run(&format!("perf-e2e-{}", c.namespace), Duration::from_secs(300));
    create_app(&c.api(), "cache", "registry.example/cache:1", 1).await;
    let op = Operator::start_with(&c.namespace, "quiet", &["--resync-seconds", &RESYNC.to_string()]);
    let spec = json!({"cache": {"redis": {"external": {"address": redis_traffic::url()}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}], "policy": {"builtin": "adaptive-ttl"}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "cache", spec)).await.expect("create");
    c.wait_condition("cache", "CacheReady", "True", 60).await;
    c.wait_condition("cache", "PoliciesReady", "True", 60).await;

    // Three resyncs of a busy Redis: three rounds (four at most, as the window may start just before one), and at
    // most one status write per round. Before rounds came from the predicate, this was thousands.
    let window = audit::Window::open();
    let before = op.reconciles().await;
    let span = Duration::from_secs(3 * RESYNC);
    tokio::time::sleep(span).await;
    let rounds = op.reconciles().await - before;
    assert!((2.0..=4.0).contains(&rounds), "{rounds} rounds in {span:?} with a {RESYNC} s resync");
    if let Some(window) = &window {
        let writes = window.writes(OPERATOR_USER, &c.namespace);
        let status = writes.iter().filter(|e| e.object_ref.as_ref().is_some_and(|o| o.subresource == "status"));
        let status: Vec<String> = status.map(|e| e.describe()).collect();
        // A round under way when the window opened writes inside it but was counted before it: one more at most.
        let bound = rounds + 1.0;
        assert!(status.len() as f64 <= bound, "{} status writes in {rounds} rounds: {status:?}", status.len());
    }

    // A spec change starts a round at once, not at the next resync.
    let generation = c.profiles().get("cache").await.expect("profile").metadata.generation;
    let ttl = json!({"spec": {"cache": {"ttlClasses": [{"name": "pages", "ttlSeconds": 60},
        {"name": "search", "ttlSeconds": 120}]}}});
    c.profiles().patch("cache", &PatchParams::default(), &Patch::Merge(&ttl)).await.expect("change the spec");
    let changed = Instant::now();
    c.eventually(RESYNC, "the change reconciled", || async {
        let p = c.profiles().get("cache").await.ok()?;
        (p.status?.observed_generation > generation).then_some(())
    })
    .await;
    assert!(changed.elapsed() < Duration::from_secs(5), "the spec change waited {:?} for a round", changed.elapsed());
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_new_pod_template_starts_a_canary_run_at_once() {
    let c = cluster().await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    // A minute between resyncs, and an idle canary looks again only every minute: a run that starts within
    // seconds was started by the target's watch.
    let _op = Operator::start_with(&c.namespace, "quiet", &["--resync-seconds", "60"]);
    let spec = json!({"canary": {"stages": [10, 25, 50, 100], "stepInterval": "30s", "progressDeadline": "5m",
        "analysis": {"prometheus": "http://127.0.0.1:9", "minRequests": 10}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("create");
    let canary = || async { c.profiles().get("shop").await.ok()?.status?.canary };
    let idle = c
        .eventually(90, "the primary serving", || async { canary().await.filter(|s| s.phase == CanaryPhase::Idle) })
        .await;

    set_image(&c.api::<Deployment>(), "shop", "registry.example/shop:2").await;
    let changed = Instant::now();
    c.eventually(30, "a run for the new template", || async {
        canary().await.filter(|s| s.phase != CanaryPhase::Idle && s.run_id != idle.run_id)
    })
    .await;
    assert!(changed.elapsed() < Duration::from_secs(5), "the new template waited {:?} for a round", changed.elapsed());
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_settled_round_reads_owned_objects_and_hpas_from_its_caches_and_each_secret_once() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Secret;
    let c = cluster().await;
    // One Secret named by three sources: the PostgreSQL credentials, the Redis password and the Prometheus token.
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "shared"},
        "stringData": {"pg-user": "nobody", "pg-password": "pw", "redis-password": "pw", "token": "t0ken"}}))
    .expect("secret");
    c.api::<Secret>().create(&PostParams::default(), &secret).await.expect("create the Secret");
    create_app(&c.api(), "full", "registry.example/full:1", 2).await;
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({"metadata": {"name": "full"},
        "spec": {"minReplicas": 2, "maxReplicas": 4,
                 "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "full"}}}))
    .expect("hpa");
    c.api::<HorizontalPodAutoscaler>().create(&PostParams::default(), &hpa).await.expect("create the HPA");
    let _kubelet = kubelet::run(c.api::<Pod>());
    let op = Operator::start_with(&c.namespace, "cached", &["--resync-seconds", &RESYNC.to_string()]);
    // PostgreSQL at a port nothing answers: the limits are unread, and the round goes on without them.
    let spec = json!({
        "cache": {"redis": {"external": {"address": redis_traffic::url(),
                  "passwordSecretRef": {"name": "shared", "key": "redis-password"}}},
                  "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]},
        "pools": {"postgres": {"min": 2, "max": 10, "server": {"host": "127.0.0.1", "port": 9,
                  "credentialsSecretRef": {"name": "shared", "userKey": "pg-user", "passwordKey": "pg-password"},
                  "sslMode": "disable"}}},
        "canary": {"stages": [10, 50, 100], "stepInterval": "30s", "progressDeadline": "5m",
                   "analysis": {"prometheus": "http://127.0.0.1:9", "minRequests": 10,
                                "prometheusAccess": {"secretRef": {"name": "shared"}}}}
    });
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "full", spec)).await.expect("create");
    let idle =
        || async { c.profiles().get("full").await.ok()?.status?.canary.filter(|s| s.phase == CanaryPhase::Idle) };
    c.eventually(90, "the primary serving", idle).await;
    tokio::time::sleep(Duration::from_secs(RESYNC)).await;

    let window = audit::Window::open().expect("the test reads the operator's requests from the audit log");
    let before = op.reconciles().await;
    tokio::time::sleep(Duration::from_secs(2 * RESYNC)).await;
    let rounds = op.reconciles().await - before;
    // The Lease's renewals (every 1.3 s here) and the shard check are the process's, not the rounds'.
    let requests: Vec<audit::Event> = window
        .requests_by_credential(&op.credential_id)
        .into_iter()
        .filter(|e| e.object_ref.as_ref().is_none_or(|o| o.resource != "leases"))
        .collect();
    let count = |verb: &str, resource: &str, name: Option<&str>| {
        requests
            .iter()
            .filter(|e| e.verb == verb)
            .filter(|e| {
                e.object_ref.as_ref().is_some_and(|o| o.resource == resource && name.is_none_or(|n| o.name == n))
            })
            .count()
    };
    let all: Vec<String> = requests.iter().map(|e| e.describe()).collect();
    assert!(rounds >= 1.0, "no round in two resyncs");
    assert_eq!(count("list", "horizontalpodautoscalers", None), 0, "HPAs come from the cache: {all:?}");
    assert_eq!(count("get", "configmaps", Some("full-perf")), 0, "the contract from the cache: {all:?}");
    for owned in ["services", "secrets"] {
        let reads = requests.iter().filter(|e| e.verb == "get");
        let reads = reads.filter(|e| e.object_ref.as_ref().is_some_and(|o| o.resource == owned && o.name != "shared"));
        assert_eq!(reads.count(), 0, "owned {owned} from the cache: {all:?}");
    }
    let secret_reads = count("get", "secrets", Some("shared")) as f64;
    assert!(secret_reads <= rounds, "{secret_reads} reads of the shared Secret in {rounds} rounds: {all:?}");
    // What stays direct: the profile, the Secret, the canary's target, primary and canary Deployments (read again,
    // with the primary's HPA, before the canary's apply), and the PrometheusRule's LIST. Measured: 7 or 8.
    let per_round = requests.len() as f64 / rounds;
    assert!(per_round <= 9.0, "{per_round:.1} requests per round: {all:?}");
}
