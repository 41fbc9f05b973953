//! Canary notifications delivered to a recording receiver on loopback: each milestone of a step goes to the
//! receivers that want it, in the profile's format and the cluster's; a receiver's failure (missing Secret, no key,
//! not a URL, refused address, HTTP error, no answer) comes back named, never with the URL; the per-profile quota
//! drops and then says how many it dropped.

use k8s_openapi::api::core::v1::Secret;
use perf_egress::Egress;
use perf_operator::notify::{ClusterReceiver, Notice, Notifier};
use perf_operator_api::{NotificationEvent, PerformanceProfile};
use perf_test_support::webhook::receiver;
use serde_json::{Value, json};

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"}, "stringData": {}, "data": {}}))
        .map(|mut s: Secret| {
            s.data = Some(
                data.iter()
                    .map(|(k, v)| {
                        (k.clone(), k8s_openapi::ByteString(v.as_str().unwrap_or_default().as_bytes().to_vec()))
                    })
                    .collect(),
            );
            s
        })
        .unwrap()
}

fn profile(notifications: Value) -> PerformanceProfile {
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"targetRef": {"name": "checkout"}, "canary": {"notifications": notifications}}
    }))
    .unwrap()
}

fn notice(event: NotificationEvent, reason: &str) -> Notice {
    Notice {
        namespace: "shop".into(),
        profile: "checkout".into(),
        target: "checkout".into(),
        event,
        reason: reason.into(),
        message: format!("{reason} happened"),
        phase: "Progressing".into(),
        stage: Some("1/4".into()),
        weight: 10,
        failed_checks: 0,
        checks: Vec::new(),
        dropped: 0,
    }
}

fn loopback() -> Egress {
    Egress::new(&[], &["127.0.0.0/8".to_string()], Vec::new()).unwrap()
}

async fn kube(secrets: Vec<Secret>) -> kube::Client {
    let mut builder = kube_fake_client::ClientBuilder::new();
    for s in secrets {
        builder = builder.with_object(s);
    }
    builder.build().await.unwrap()
}

#[tokio::test]
async fn each_milestone_goes_to_the_receivers_that_want_it_in_their_format() {
    let (slack, generic, cluster) = (receiver(200).await, receiver(204).await, receiver(200).await);
    let dir = std::env::temp_dir().join(format!("perf-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url_file = dir.join("url");
    std::fs::write(&url_file, format!("{}\n", cluster.url)).unwrap();
    let kube = kube(vec![secret("slack", &[("address", &slack.url)]), secret("hook", &[("url", &generic.url)])]).await;
    let notifier = Notifier::new(
        loopback(),
        Some(ClusterReceiver { url_file, format: perf_operator_api::NotificationFormat::Msteams }),
    )
    .unwrap();
    let p = profile(json!([
        {"secretRef": {"name": "slack", "key": "address"}},
        {"secretRef": {"name": "hook", "key": "url"}, "format": "generic", "events": ["rolledBack", "succeeded"]}
    ]));
    let notices = vec![
        notice(NotificationEvent::Started, "RunStarted"),
        notice(NotificationEvent::StageAdvanced, "StageAdvanced"),
        notice(NotificationEvent::RolledBack, "RolledBack"),
    ];
    let failed = notifier.send(&kube, &p, notices).await;
    assert!(failed.is_empty(), "{failed:?}");
    let slack = slack.bodies.lock().unwrap().clone();
    let titles: Vec<&str> = slack.iter().map(|b| b["text"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        titles,
        ["shop/checkout: canary run started", "shop/checkout: stage advanced", "shop/checkout: rolled back"]
    );
    let generic = generic.bodies.lock().unwrap().clone();
    assert_eq!(generic.len(), 1, "only the events it asked for: {generic:?}");
    assert_eq!((generic[0]["event"].as_str(), generic[0]["reason"].as_str()), (Some("rolledBack"), Some("RolledBack")));
    let cluster = cluster.bodies.lock().unwrap().clone();
    assert_eq!(cluster.len(), 3, "the cluster's receiver takes every milestone");
    assert_eq!(cluster[0]["@type"], "MessageCard");
}

/// Every way a receiver can fail is named, and none shows the URL (it carries the webhook's credential).
#[tokio::test(start_paused = false)]
async fn a_failing_receiver_is_named_and_its_url_never_shown() {
    let (down, silent) = (receiver(500).await, receiver(0).await);
    let unreserved = "http://127.0.0.1:9/hooks/secret-token".to_string();
    let kube = kube(vec![
        secret("down", &[("address", &down.url)]),
        secret("nokey", &[("other", "x")]),
        secret("noturl", &[("address", "ftp://secret-token@example")]),
        secret("metadata", &[("address", "http://169.254.169.254/secret-token")]),
        secret("silent", &[("address", &silent.url)]),
        secret("closed", &[("address", &unreserved)]),
    ])
    .await;
    let notifier = Notifier::new(loopback(), None).unwrap();
    let cases = [
        ("down", "address", "Secret shop/down key address: HTTP 500"),
        ("absent", "address", "Secret shop/absent not found"),
        ("nokey", "address", "Secret shop/nokey has no key \"address\""),
        ("noturl", "address", "the webhook URL of Secret shop/noturl key address is not an http or https URL"),
        ("metadata", "address", "Secret shop/metadata key address: 169.254.169.254 is"),
        ("silent", "address", "Secret shop/silent key address: "),
        ("closed", "address", "Secret shop/closed key address: "),
    ];
    for (name, key, expected) in cases {
        let p = profile(json!([{"secretRef": {"name": name, "key": key}}]));
        let started = std::time::Instant::now();
        let failed = notifier.send(&kube, &p, vec![notice(NotificationEvent::Succeeded, "Promoted")]).await;
        let messages: Vec<String> = failed.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 1, "{name}: {messages:?}");
        assert!(messages[0].starts_with(expected), "{name}: {messages:?}");
        assert!(!messages[0].contains("secret-token"), "{name} shows the URL: {messages:?}");
        assert!(started.elapsed() < perf_operator::notify::DEADLINE * 2, "{name} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn past_the_quota_notices_are_dropped_and_the_next_one_says_how_many() {
    let slack = receiver(200).await;
    let kube = kube(vec![secret("slack", &[("address", &slack.url)])]).await;
    let notifier = Notifier::new(loopback(), None).unwrap();
    let p = profile(json!([{"secretRef": {"name": "slack", "key": "address"}}]));
    let many: Vec<Notice> = (0..14).map(|_| notice(NotificationEvent::CheckFailed, "CheckFailed")).collect();
    assert!(notifier.send(&kube, &p, many).await.is_empty());
    assert_eq!(slack.bodies.lock().unwrap().len(), 10, "the burst");
    // A minute's refill (one every 6 s) later, the next notice says how many were dropped.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert!(notifier.send(&kube, &p, vec![notice(NotificationEvent::RolledBack, "RolledBack")]).await.is_empty());
    let bodies = slack.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 11);
    let text = bodies[10]["attachments"][0]["text"].as_str().unwrap_or_default();
    assert!(text.ends_with("(4 earlier notifications dropped by the rate limit)"), "{text}");
    // Another profile has a quota of its own.
    let other: PerformanceProfile = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "search", "namespace": "shop"},
        "spec": {"targetRef": {"name": "search"}, "canary": {"notifications": [{"secretRef": {"name": "slack", "key": "address"}}]}}
    }))
    .unwrap();
    let mut n = notice(NotificationEvent::Started, "RunStarted");
    n.profile = "search".into();
    assert!(notifier.send(&kube, &other, vec![n]).await.is_empty());
    assert_eq!(slack.bodies.lock().unwrap().len(), 12);
}
