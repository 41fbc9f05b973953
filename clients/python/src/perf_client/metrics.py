"""The request metrics the operator's canary gates, SLO rules and rate-limit policy read, as ASGI middleware:
``http_requests_total{method, route, code}`` and ``http_request_duration_seconds{method, route}``. Prometheus adds
``namespace`` and ``pod`` when it scrapes (the Prometheus Operator's PodMonitors and ServiceMonitors do)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_asgi_app

from .contract import Contract, ContractSource
from .ratelimit import ASGIApp
from .routes import Resolver, prefix_resolver

log = logging.getLogger("perf_client")

#: Buckets in seconds, before the objective's are added: fine under 100 ms where APIs live, coarse above.
BASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Paths never counted: Prometheus's own scrape and the kubelet's probes would be traffic the canary judges.
DEFAULT_EXCLUDED = ("/metrics", "/healthz", "/readyz", "/livez")


def buckets_for(contract: Contract) -> tuple[float, ...]:
    """:data:`BASE_BUCKETS` with the objective and its neighbours (80 % and 120 %), so that ``histogram_quantile``
    interpolates inside a bucket that ends exactly at the objective."""
    extra: Iterable[float] = ()
    if contract.slo is not None:
        objective = contract.slo.p99_latency_ms / 1000
        extra = (objective * 0.8, objective, objective * 1.2)
    return tuple(sorted({round(b, 6) for b in (*BASE_BUCKETS, *extra)}))


class MetricsMiddleware:
    """Counts and times every HTTP request but the excluded paths. An exception from the app counts as a 500.

    The buckets are fixed when the middleware is built (Prometheus histograms cannot change theirs): a new
    objective in the contract is logged, and takes effect at the next start."""

    def __init__(
        self,
        app: ASGIApp,
        source: ContractSource,
        *,
        resolver: Resolver | None = None,
        registry: CollectorRegistry = REGISTRY,
        excluded: Iterable[str] = DEFAULT_EXCLUDED,
    ) -> None:
        self.app = app
        self.resolve = resolver or prefix_resolver(source)
        self.excluded = tuple(excluded)
        self.buckets = buckets_for(source.current)
        self.requests = Counter(
            "http_requests",
            "HTTP requests by method, route and status code",
            ["method", "route", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency in seconds by method and route",
            ["method", "route"],
            buckets=self.buckets,
            registry=registry,
        )
        source.subscribe(self._objective_moved)

    def _objective_moved(self, old: Contract, new: Contract) -> None:
        if buckets_for(new) != self.buckets:
            log.warning(
                "the objective changed (%s -> %s): new latency buckets take effect at the next start", old.slo, new.slo
            )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or any(path == p or path.startswith(p + "/") for p in self.excluded):
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, method = self.resolve(scope), scope.get("method", "GET")
            self.requests.labels(method, route, str(status[0])).inc()
            self.duration.labels(method, route).observe(time.perf_counter() - started)


def metrics_app(registry: CollectorRegistry = REGISTRY) -> ASGIApp:
    """The ``/metrics`` endpoint, to mount on the app."""
    return make_asgi_app(registry=registry)
