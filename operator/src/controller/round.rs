//! One round's reads of a profile's Secrets: each Secret is read from the API server at most once per round, however
//! many sources name it (a Redis password, ClickHouse or PostgreSQL credentials and a Prometheus token often share
//! one), and every source sees the same version of it. Secrets are never cached across rounds: a rotated
//! credential is used at the next round.

use super::Context;
use crate::decide::{Read, SecretProblem, Unread};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use perf_operator_api::PerformanceProfile;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// A Secret's data.
pub type SecretData = Arc<BTreeMap<String, ByteString>>;

/// What the one read of a Secret found: its data, or none, or why it could not be read.
type Fetched = Result<Option<SecretData>, Arc<kube::Error>>;

/// The profile and context of one reconcile, with the Secrets it has read so far.
pub struct Round<'a> {
    pub profile: &'a PerformanceProfile,
    pub ctx: &'a Context,
    secrets: Mutex<HashMap<String, Arc<OnceCell<Fetched>>>>,
}

impl<'a> Round<'a> {
    pub fn new(profile: &'a PerformanceProfile, ctx: &'a Context) -> Self {
        Self { profile, ctx, secrets: Mutex::default() }
    }

    /// The profile's namespace.
    pub fn namespace(&self) -> String {
        self.profile.namespace().unwrap_or_else(|| "default".into())
    }

    /// The data of Secret `name` in the profile's namespace, or None when there is no such Secret. Concurrent reads
    /// of one name wait for the same request.
    pub async fn secret_opt(&self, name: &str) -> Read<Option<SecretData>> {
        let cell = {
            let mut secrets = self.secrets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            secrets.entry(name.to_string()).or_default().clone()
        };
        let fetched = cell
            .get_or_init(|| async {
                let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
                let secret = api.get_opt(name).await.map_err(Arc::new)?;
                Ok(secret.map(|s| Arc::new(s.data.unwrap_or_default())))
            })
            .await;
        fetched.clone().map_err(|source| Unread::Kube { what: format!("get Secret {name}"), source })
    }

    /// The data of Secret `name`; a missing Secret is an error that names it.
    pub async fn secret_data(&self, name: &str) -> Read<SecretData> {
        self.secret_opt(name).await?.ok_or_else(|| Unread::Secret {
            namespace: self.namespace(),
            name: name.into(),
            problem: SecretProblem::NotFound,
        })
    }

    /// One key of Secret `name`, as UTF-8.
    pub async fn secret_key(&self, name: &str, key: &str) -> Read<String> {
        let problem = |problem| Unread::Secret { namespace: self.namespace(), name: name.to_string(), problem };
        let data = self.secret_data(name).await?;
        let value = data.get(key).ok_or_else(|| problem(SecretProblem::MissingKey(key.to_string())))?;
        String::from_utf8(value.0.clone()).map_err(|_| problem(SecretProblem::NotUtf8(key.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;
    use kube_fake_client::ClientBuilder;
    use kube_fake_client::interceptor::Funcs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn secret(name: &str, pairs: &[(&str, &[u8])]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("shop".into());
        s.data = Some(pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect());
        s
    }

    #[tokio::test]
    async fn each_secret_is_read_once_per_round_whoever_names_it() {
        let gets = Arc::new(AtomicUsize::new(0));
        let counted = gets.clone();
        let funcs = Funcs::new().get(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        });
        let client = ClientBuilder::new()
            .with_object(secret("shared", &[("user", b"ops"), ("password", b"pw"), ("bad", b"\xff")]))
            .with_interceptor_funcs(funcs)
            .build()
            .await
            .expect("a fake API server");
        let ctx = Context::new(client, Arc::new(Metrics::new().expect("metrics"))).expect("a context");
        let mut profile = PerformanceProfile::new("api", Default::default());
        profile.metadata.namespace = Some("shop".into());
        let round = Round::new(&profile, &ctx);
        // Concurrent readers of one Secret (a Redis password, ClickHouse credentials, a Prometheus token).
        let (user, password, data, bad, missing) = tokio::join!(
            round.secret_key("shared", "user"),
            round.secret_key("shared", "password"),
            round.secret_data("shared"),
            round.secret_key("shared", "bad"),
            round.secret_key("absent", "password"),
        );
        assert_eq!((user.expect("user").as_str(), password.expect("password").as_str()), ("ops", "pw"));
        assert_eq!(data.expect("data").len(), 3);
        assert!(bad.expect_err("not UTF-8").to_string().contains("Secret shop/shared key \"bad\" is not UTF-8"));
        assert!(missing.expect_err("missing").to_string().contains("Secret shop/absent not found"));
        let missing_key = round.secret_key("shared", "token").await.expect_err("no such key");
        assert!(missing_key.to_string().contains("has no key \"token\""), "{missing_key}");
        assert_eq!(round.secret_opt("absent").await.expect("an answer"), None);
        assert_eq!(gets.load(Ordering::SeqCst), 2, "one GET for each Secret named, found or not");
        // The next round reads again: a rotated credential is used at once.
        let next = Round::new(&profile, &ctx);
        next.secret_key("shared", "user").await.expect("user");
        assert_eq!(gets.load(Ordering::SeqCst), 3);
    }
}
