//! The canary webhooks' HTTP side (`perf_operator::notify::hooks`), against recording receivers on loopback: the
//! payload arrives as Flagger sends it; a tenant's hook is held to the egress rules (loopback refused by default, a
//! kind's allow-list), a redirect is not followed, a huge or hung answer is cut at its bound, and the hooks sent
//! after a step keep to the profile's quota.

use perf_canary::hooks::{HookCall, HookCaller, Payload, run_chain};
use perf_egress::Egress;
use perf_operator::notify::hooks::HookSender;
use perf_operator_api::{HookType, PerformanceProfile};
use perf_test_support::webhook::receiver;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn call(url: &str, timeout: Duration) -> HookCall {
    HookCall {
        name: "gate".into(),
        kind: HookType::ConfirmPromotion,
        url: url.into(),
        timeout,
        payload: Payload {
            name: "checkout".into(),
            namespace: "shop".into(),
            phase: "WaitingPromotion",
            checksum: "abc".into(),
            metadata: [("team".to_string(), "shop".to_string())].into(),
        },
    }
}

fn loopback() -> Egress {
    Egress::new(&[], &["127.0.0.0/8".to_string()], Vec::new()).unwrap()
}

async fn one(sender: &HookSender, call: &HookCall) -> perf_operator_api::HookRecord {
    let tenant = sender.tenant("shop");
    let caller: &dyn HookCaller = &tenant;
    run_chain(caller, std::slice::from_ref(call), jiff::Timestamp::now()).await.remove(0)
}

#[tokio::test]
async fn the_payload_arrives_as_flagger_sends_it_and_2xx_succeeds() {
    let gate = receiver(202).await;
    let record = one(&HookSender::new(loopback()).unwrap(), &call(&gate.url, Duration::from_secs(5))).await;
    assert!(record.succeeded && record.status_code == Some(202), "{record:?}");
    let golden = json!({"name": "checkout", "namespace": "shop", "phase": "WaitingPromotion", "checksum": "abc",
        "metadata": {"team": "shop"}});
    assert_eq!(*gate.bodies.lock().unwrap(), vec![golden]);
}

#[tokio::test]
async fn a_tenant_hook_is_held_to_the_egress_rules_and_nothing_is_sent() {
    let target = receiver(200).await;
    let closed = HookSender::new(Egress::default()).unwrap();
    let refused = one(&closed, &call(&target.url, Duration::from_secs(5))).await;
    assert!(!refused.succeeded && refused.status_code.is_none());
    assert!(refused.message.as_deref().unwrap_or_default().contains("loopback"), "{refused:?}");
    let listed =
        Egress::new(&["hook=hooks.example.com".to_string()], &["127.0.0.0/8".to_string()], Vec::new()).unwrap();
    let not_listed = one(&HookSender::new(listed).unwrap(), &call(&target.url, Duration::from_secs(5))).await;
    assert!(
        not_listed.message.as_deref().unwrap_or_default().contains("not among the hook endpoints"),
        "{not_listed:?}"
    );
    let other_kind =
        Egress::new(&["prometheus=prom.example.com".to_string()], &["127.0.0.0/8".to_string()], Vec::new());
    let other = one(&HookSender::new(other_kind.unwrap()).unwrap(), &call(&target.url, Duration::from_secs(5))).await;
    assert!(other.succeeded, "another kind's list does not limit hooks: {other:?}");
    assert_eq!(target.bodies.lock().unwrap().len(), 1, "only the allowed call was sent");
    let metadata = one(&closed, &call("http://169.254.169.254/latest/", Duration::from_secs(5))).await;
    assert!(metadata.message.as_deref().unwrap_or_default().contains("cloud metadata address"), "{metadata:?}");
}

/// A server answering every request with `status`, `headers` and a body of `size` bytes, or never (`hang`).
async fn server(status: u16, headers: &'static str, size: usize, hang: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let head =
                    format!("HTTP/1.1 {status} X\r\n{headers}content-length: {size}\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn redirects_huge_and_hung_answers_are_bounded() {
    let sender = HookSender::new(loopback()).unwrap();
    let moved = server(302, "location: http://169.254.169.254/\r\n", 0, false).await;
    let redirect = one(&sender, &call(&moved, Duration::from_secs(5))).await;
    assert_eq!((redirect.succeeded, redirect.status_code), (false, Some(302)), "not followed: {redirect:?}");
    let huge = server(500, "", 64 * 1024 * 1024, false).await;
    let started = Instant::now();
    let big = one(&sender, &call(&huge, Duration::from_secs(5))).await;
    assert_eq!(big.status_code, Some(500));
    assert!(big.message.as_deref().unwrap_or_default().len() < 300, "the answer is cut: {big:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "64 MiB was read: {:?}", started.elapsed());
    let hung = server(200, "", 0, true).await;
    let started = Instant::now();
    let silent = one(&sender, &call(&hung, Duration::from_secs(1))).await;
    assert!(!silent.succeeded && started.elapsed() < Duration::from_secs(3), "{silent:?} {:?}", started.elapsed());
}

#[tokio::test]
async fn hooks_after_a_step_keep_to_the_profiles_quota_and_report_failures() {
    let events = receiver(200).await;
    let failing = receiver(500).await;
    let sender = HookSender::new(loopback()).unwrap();
    let profile: PerformanceProfile = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "checkout", "namespace": "shop"}, "spec": {"targetRef": {"name": "checkout"}}
    }))
    .unwrap();
    let calls: Vec<HookCall> = (0..12).map(|_| call(&events.url, Duration::from_secs(5))).collect();
    assert!(sender.send_after(&profile, &calls).await.is_empty());
    assert_eq!(events.bodies.lock().unwrap().len(), 10, "10 at once, the rest dropped");
    let other: PerformanceProfile = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "orders", "namespace": "shop"}, "spec": {"targetRef": {"name": "orders"}}
    }))
    .unwrap();
    let failed = sender.send_after(&other, &[call(&failing.url, Duration::from_secs(5))]).await;
    assert_eq!(failed.len(), 1, "another profile has its own quota, and a failure comes back");
    assert_eq!(failed[0].message.as_deref(), Some("HTTP 500: ok"));
}
