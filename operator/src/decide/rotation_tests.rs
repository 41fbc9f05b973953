//! A provisioned Redis's password rotation as `decide` makes it: the Secret and the live holding of one round.

use super::*;
use crate::components::redis_auth::{EXPORTER_KEY, PREVIOUS_KEY, ROTATE_ANNOTATION, ROTATION_KEY};

fn profile(annotation: Option<&str>) -> PerformanceProfile {
    let mut p: PerformanceProfile = serde_json::from_value(serde_json::json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "shop", "namespace": "web", "uid": "u1"},
        "spec": {"targetRef": {"name": "shop"},
                 "cache": {"redis": {"provision": {"rotationGrace": "5m"}}, "ttlClasses": [{"name": "p", "ttlSeconds": 60}]}}
    }))
    .unwrap();
    if let Some(value) = annotation {
        p.metadata.annotations = Some([(ROTATE_ANNOTATION.to_string(), value.to_string())].into());
    }
    p
}

fn observed(secret: ProvisionedRedis, fresh: Option<&str>) -> Observed {
    // As observe draws it: only while the Secret holds none.
    let exporter = secret.exporter.is_none().then(|| Ok("drawn-for-the-exporter".to_string()));
    Observed {
        provisioned_redis: Some(Ok(secret)),
        new_exporter_password: exporter,
        new_password: fresh.map(|f| Ok(f.to_string())),
        ..Observed::default()
    }
}

fn secret_text(decision: &Decision, key: &str) -> Option<String> {
    let data = decision.objects.secrets.first()?.data.as_ref()?;
    data.get(key).map(|v| String::from_utf8(v.0.clone()).unwrap())
}

#[test]
fn a_rotation_request_writes_the_new_password_keeps_the_old_and_holds_both_live() {
    let now: Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
    let live = ProvisionedRedis { password: Some("old".into()), available: true, ..ProvisionedRedis::default() };
    let d = decide(&profile(Some("r1")), &observed(live.clone(), Some("new")), now);
    assert_eq!(secret_text(&d, cache::PASSWORD_KEY).as_deref(), Some("new"));
    assert_eq!(
        (secret_text(&d, PREVIOUS_KEY).as_deref(), secret_text(&d, ROTATION_KEY).as_deref()),
        (Some("old"), Some("r1"))
    );
    let exporter = secret_text(&d, EXPORTER_KEY).expect("an exporter password");
    assert_eq!(exporter, "drawn-for-the-exporter", "drawn apart from the app's password, not derived from it");
    let live_hold = d.redis_live.as_ref().expect("held live every round");
    assert_eq!(
        (live_hold.accepted.clone(), live_hold.candidates.clone()),
        (vec!["new".to_string(), "old".into()], vec!["new".to_string(), "old".into()])
    );
    let message = d.reports.iter().find(|r| r.type_ == condition::CACHE_READY).map(|r| r.message.clone()).unwrap();
    assert!(message.contains("the previous one works until 2026-11-30T10:05:00Z"), "{message}");

    // The next round reads back what was written: nothing changes until the grace is over, then the old goes.
    let written = ProvisionedRedis {
        password: Some("new".into()),
        previous: Some("old".into()),
        rotation: Some("r1".into()),
        rotated_at: Some(now.to_string()),
        exporter: Some(exporter.clone()),
        available: true,
        ..ProvisionedRedis::default()
    };
    let within =
        decide(&profile(Some("r1")), &observed(written.clone(), None), now + jiff::SignedDuration::from_secs(299));
    assert_eq!(secret_text(&within, PREVIOUS_KEY).as_deref(), Some("old"));
    let after = decide(&profile(Some("r1")), &observed(written, None), now + jiff::SignedDuration::from_secs(300));
    assert_eq!(
        (secret_text(&after, cache::PASSWORD_KEY).as_deref(), secret_text(&after, PREVIOUS_KEY)),
        (Some("new"), None)
    );
    assert_eq!(after.redis_live.as_ref().unwrap().accepted, ["new"]);
    assert_eq!(secret_text(&after, EXPORTER_KEY), Some(exporter), "the exporter's password never rotates");
    // No annotation: nothing rotates, the password stays.
    let quiet = decide(&profile(None), &observed(live, Some("unused")), now);
    assert_eq!(secret_text(&quiet, cache::PASSWORD_KEY).as_deref(), Some("old"));
}
