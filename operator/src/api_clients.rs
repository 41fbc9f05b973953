//! The operator's two clients of the API server. Unary calls (gets, lists, applies, events, the Lease) go through
//! one that is bounded: a client-side rate (QPS with a burst, as client-go's `--kube-api-qps/-burst`), a read
//! timeout and at most three retries, so a slow or failing API server slows the operator down instead of piling
//! requests up. Watches keep a client of their own, whose streams must stay open for minutes.

use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::Client;
use kube::client::ClientBuilder;
use kube::client::retry::RetryPolicy;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;
use tower::{Layer, Service};

/// Bounds of the unary client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Sustained requests per second.
    pub qps: NonZeroU32,
    /// Requests that may go at once after a quiet spell.
    pub burst: NonZeroU32,
    /// How long a response may keep the client waiting.
    pub read_timeout: Duration,
}

/// The unary client and the watch client.
#[derive(Clone)]
pub struct Clients {
    pub unary: Client,
    pub watch: Client,
}

impl Clients {
    /// Both clients for `config`.
    pub fn from_config(config: kube::Config, limits: Limits) -> Result<Self, kube::Error> {
        let watch = Client::try_from(config.clone())?;
        let mut unary = config;
        unary.read_timeout = Some(limits.read_timeout);
        // kube's own retry tries 15 times with a delay of up to 1000 s between tries: a stuck write could hold a
        // canary rollback for minutes. Three tries, 0.5 s to 5 s apart, then the reconcile's own backoff.
        unary.default_retry = false;
        let unary = ClientBuilder::try_from(unary)?
            // A retry resends a clone of the request through a clone of the service: the buffer makes it cloneable.
            .with_layer(&BufferLayer::new(1024))
            .with_layer(&RetryLayer::new(RetryPolicy::default()))
            .with_layer(&RateLimit::new(limits.qps, limits.burst))
            .build();
        Ok(Self { unary, watch })
    }
}

/// A tower layer that lets requests through at `qps` per second with bursts of `burst`, shared by every clone.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl RateLimit {
    pub fn new(qps: NonZeroU32, burst: NonZeroU32) -> Self {
        Self { limiter: Arc::new(RateLimiter::direct(Quota::per_second(qps).allow_burst(burst))) }
    }
}

impl<S> Layer<S> for RateLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited { inner, limiter: self.limiter.clone(), waiting: None, permitted: false }
    }
}

/// The service behind [`RateLimit`]: ready once the limiter grants a request and the inner service is ready.
pub struct RateLimited<S> {
    inner: S,
    limiter: Arc<DefaultDirectRateLimiter>,
    waiting: Option<BoxFuture<'static, ()>>,
    /// A grant taken and not yet spent on a call.
    permitted: bool,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.permitted {
            let limiter = self.limiter.clone();
            let waiting = self.waiting.get_or_insert_with(|| Box::pin(async move { limiter.until_ready().await }));
            if waiting.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.waiting = None;
            self.permitted = true;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.permitted = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tower::ServiceExt;

    /// A service that answers at once.
    #[derive(Clone)]
    struct Echo;

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<u32, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: u32) -> Self::Future {
            std::future::ready(Ok(request))
        }
    }

    fn limit(qps: u32, burst: u32) -> RateLimit {
        RateLimit::new(NonZeroU32::new(qps).unwrap(), NonZeroU32::new(burst).unwrap())
    }

    #[tokio::test]
    async fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        // 20 per second after a burst of 5: 5 at once, the next 10 over about half a second. Only lower bounds
        // are asserted (a loaded machine is slower, never faster).
        let mut service = limit(20, 5).layer(Echo);
        let started = Instant::now();
        for i in 0..5 {
            assert_eq!(service.ready().await.unwrap().call(i).await.unwrap(), i);
        }
        let burst = started.elapsed();
        for i in 0..10 {
            service.ready().await.unwrap().call(i).await.unwrap();
        }
        let paced = started.elapsed() - burst;
        assert!(paced >= Duration::from_millis(400), "10 requests past the burst took {paced:?} at 20/s");
    }

    #[tokio::test]
    async fn clones_share_one_budget() {
        let layer = limit(10, 2);
        let (mut a, mut b) = (layer.layer(Echo), layer.layer(Echo));
        let started = Instant::now();
        a.ready().await.unwrap().call(1).await.unwrap();
        b.ready().await.unwrap().call(2).await.unwrap();
        // The burst of 2 is spent by the two services together: a third request waits for the rate.
        a.ready().await.unwrap().call(3).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(80), "{:?}", started.elapsed());
    }
}
