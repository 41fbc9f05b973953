//! A provisioned Redis's password and its rotation without dropping the cache. Redis 6+ ACL users hold several
//! passwords: a rotation (annotation `perf.operator.dev/rotate-redis-password` set to a new value) makes a new
//! password current while the previous one keeps working for `rotationGrace`, so apps move over at their own pace,
//! then retires the previous one. Both are applied live (`ACL SETUSER`, no restart) and written, as SHA-256 hashes,
//! to the `auth.conf` Redis reads at start; the Secret keeps the plain values for the app.

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Annotation on the profile asking for a rotation; each new value rotates once.
pub const ROTATE_ANNOTATION: &str = "perf.operator.dev/rotate-redis-password";
/// Secret keys beside `password`.
pub const PREVIOUS_KEY: &str = "previous-password";
pub const ROTATION_KEY: &str = "rotation";
pub const ROTATED_AT_KEY: &str = "rotated-at";
pub const EXPORTER_KEY: &str = "exporter-password";
/// The ACL user of the metrics exporter sidecar: its own password, never rotated with the app's (a sidecar reads
/// its password once, at start, and must not lose Redis when the previous app password retires), and only the
/// commands an exporter reads with: no key, no write, no admin command.
pub const EXPORTER_USER: &str = "exporter";
pub const EXPORTER_RULES: &str = "resetkeys resetchannels -@all +@connection +info +config|get +client|list \
                                  +slowlog|get +slowlog|len +latency|latest +dbsize +memory|stats +cluster|info";

/// The passwords of a provisioned Redis, as its Secret holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// What the app should use.
    pub current: String,
    /// Still accepted until `rotated_at + grace`.
    pub previous: Option<String>,
    /// The annotation value the last rotation answered.
    pub rotation: Option<String>,
    /// When it rotated (RFC 3339).
    pub rotated_at: Option<String>,
    /// The exporter user's password: drawn once (random, like the app's, never derived from it), then kept as the
    /// Secret holds it; empty until drawn, and then the exporter has no user.
    pub exporter: String,
}

impl Credentials {
    /// The passwords Redis must accept, current first.
    pub fn accepted(&self) -> Vec<&str> {
        std::iter::once(self.current.as_str()).chain(self.previous.as_deref()).collect()
    }

    /// When the previous password stops working, if one is held.
    pub fn previous_until(&self, grace: Duration) -> Option<Timestamp> {
        self.previous.as_ref()?;
        let at: Timestamp = self.rotated_at.as_deref()?.parse().ok()?;
        at.checked_add(jiff::SignedDuration::try_from(grace).ok()?).ok()
    }
}

/// The credentials for this round: a rotation when `requested` is a value not answered yet (`fresh` becomes
/// current, the current one previous), the previous one retired once `grace` has passed (or when its time cannot
/// be read), otherwise as they are. Pure: the fresh password is drawn by observe.
pub fn decide(
    live: &Credentials,
    requested: Option<&str>,
    fresh: Option<&str>,
    grace: Duration,
    now: Timestamp,
) -> Credentials {
    let live = live.clone();
    if let (Some(token), Some(fresh)) = (requested, fresh)
        && live.rotation.as_deref() != Some(token)
        && fresh != live.current
    {
        return Credentials {
            current: fresh.to_string(),
            previous: Some(live.current.clone()),
            rotation: Some(token.to_string()),
            rotated_at: Some(now.to_string()),
            exporter: live.exporter,
        };
    }
    let expired = live.previous.is_some() && live.previous_until(grace).is_none_or(|until| now >= until);
    if expired {
        return Credentials { previous: None, ..live };
    }
    live
}

/// Whether `requested` asks for a rotation `live` has not answered.
pub fn rotation_requested(live: &Credentials, requested: Option<&str>) -> bool {
    requested.is_some_and(|token| live.rotation.as_deref() != Some(token))
}

/// `auth.conf`: the default user with every accepted password, as SHA-256 hashes (no plain password in the file
/// Redis reads), all keys, channels and commands, as `requirepass` gave; and the exporter's user when it runs.
pub fn acl_conf(credentials: &Credentials, exporter: bool) -> String {
    let hashes: Vec<String> = credentials.accepted().iter().map(|p| format!("#{}", sha256(p))).collect();
    let mut conf = format!("user default on {} ~* &* +@all\n", hashes.join(" "));
    // Never a user with an empty password: without one drawn yet, the exporter cannot log in at all.
    if exporter && !credentials.exporter.is_empty() {
        conf.push_str(&format!("user {EXPORTER_USER} on #{} {EXPORTER_RULES}\n", sha256(&credentials.exporter)));
    }
    conf
}

/// Lower-case hex SHA-256, as `ACL GETUSER` lists passwords.
pub fn sha256(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const GRACE: Duration = Duration::from_secs(600);

    #[test]
    fn a_rotation_keeps_the_previous_password_for_the_grace_then_retires_it() {
        let live = Credentials { current: "old".into(), exporter: "e".into(), ..Credentials::default() };
        let t0 = at("2026-11-30T10:00:00Z");
        assert_eq!(decide(&live, None, Some("new"), GRACE, t0), live, "no request, no change");
        let rotated = decide(&live, Some("1"), Some("new"), GRACE, t0);
        assert_eq!(rotated.accepted(), ["new", "old"]);
        assert_eq!(
            (rotated.rotation.as_deref(), rotated.previous_until(GRACE)),
            (Some("1"), Some(at("2026-11-30T10:10:00Z")))
        );
        // The same request is answered once; within the grace both passwords hold.
        assert_eq!(decide(&rotated, Some("1"), Some("newer"), GRACE, at("2026-11-30T10:09:59Z")), rotated);
        let retired = decide(&rotated, Some("1"), Some("newer"), GRACE, at("2026-11-30T10:10:00Z"));
        assert_eq!((retired.accepted(), retired.rotation.as_deref()), (vec!["new"], Some("1")));
        // A new value rotates again, even during a grace: the password before last is dropped.
        let again = decide(&rotated, Some("2"), Some("newer"), GRACE, at("2026-11-30T10:05:00Z"));
        assert_eq!(again.accepted(), ["newer", "new"]);
        // Removing the annotation changes nothing.
        assert_eq!(decide(&retired, None, None, GRACE, at("2026-12-01T00:00:00Z")), retired);
    }

    #[test]
    fn an_unreadable_rotation_time_retires_the_previous_password_rather_than_keep_it_forever() {
        let live = Credentials {
            current: "new".into(),
            previous: Some("old".into()),
            rotated_at: Some("x".into()),
            ..Credentials::default()
        };
        assert_eq!(decide(&live, None, None, GRACE, at("2026-11-30T10:00:00Z")).previous, None);
    }

    #[test]
    fn the_conf_holds_hashes_only() {
        let c = Credentials { current: "new".into(), previous: Some("old".into()), ..Credentials::default() };
        let conf = acl_conf(&c, false);
        assert!(!conf.contains("new ") && !conf.contains("old"), "{conf}");
        assert_eq!(conf, format!("user default on #{} #{} ~* &* +@all\n", sha256("new"), sha256("old")));
        let with = acl_conf(&Credentials { exporter: "x".into(), ..c }, true);
        assert!(with.ends_with(&format!("user exporter on #{} {EXPORTER_RULES}\n", sha256("x"))), "{with}");
    }

    #[test]
    fn the_exporter_password_survives_rotations_and_is_never_empty_in_the_conf() {
        let first = Credentials { current: "old".into(), exporter: "drawn".into(), ..Credentials::default() };
        let t0 = at("2026-11-30T10:00:00Z");
        assert_eq!(decide(&first, None, None, GRACE, t0), first);
        let none = Credentials { exporter: String::new(), ..first.clone() };
        assert!(!acl_conf(&none, true).contains("user exporter"), "no user rather than an empty password");
        let rotated = decide(&first, Some("1"), Some("new"), GRACE, t0);
        let retired = decide(&rotated, Some("1"), None, GRACE, at("2026-11-30T11:00:00Z"));
        assert_eq!(
            (rotated.exporter.as_str(), retired.exporter.as_str()),
            (first.exporter.as_str(), first.exporter.as_str())
        );
    }
}
