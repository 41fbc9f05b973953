"""The contract's per-route token buckets, enforced as ASGI middleware (429 with ``Retry-After``)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from .contract import ContractSource, RouteLimit
from .routes import UNMATCHED, Resolver, prefix_resolver

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]

#: `Retry-After` of a closed route (requestsPerSecond 0): no token will come by itself.
CLOSED_RETRY_SECONDS = 60


@dataclass
class Bucket:
    """A token bucket: ``burst`` tokens at most, ``rate`` added per second."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Takes a token; returns 0 when one was there, else the seconds until one will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def resize(self, rate: float, burst: float) -> None:
        """A new limit: the tokens held stay, capped at the new burst."""
        self.rate, self.burst, self.tokens = rate, burst, min(self.tokens, burst)


class RateLimiter:
    """One bucket per contract route, following the contract: a changed limit applies to the next request."""

    def __init__(self, source: ContractSource, clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.clock = source, clock
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def check(self, route: str) -> float:
        """0 when the request may go, else the seconds to wait. A route without a limit is not limited; a closed
        one (``requestsPerSecond: 0``) refuses everything."""
        limit = self.source.current.limit(route)
        if limit is None:
            return 0.0
        if limit.closed:
            return float(CLOSED_RETRY_SECONDS)
        # Threaded servers share the buckets: one request at a time takes from a bucket.
        with self._lock:
            return self._bucket(limit).take(self.clock())

    def _bucket(self, limit: RouteLimit) -> Bucket:
        # A burst under 1 would never admit a request at a positive rate: at least one token fits.
        rate, burst = float(limit.requests_per_second), float(max(limit.burst, 1))
        bucket = self._buckets.get(limit.route)
        if bucket is None:
            bucket = self._buckets[limit.route] = Bucket(rate, burst, burst, self.clock())
        elif (bucket.rate, bucket.burst) != (rate, burst):
            bucket.resize(rate, burst)
        return bucket


class RateLimitMiddleware:
    """Answers 429 (with ``Retry-After`` in whole seconds) once a route's bucket is empty. Put it inside
    :class:`perf_client.metrics.MetricsMiddleware`, so rejections are counted as ``code="429"`` under the route,
    as the operator's rate-limit policy reads them."""

    def __init__(
        self,
        app: ASGIApp,
        source: ContractSource,
        *,
        resolver: Resolver | None = None,
        limiter: RateLimiter | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.app = app
        self.limiter = limiter or RateLimiter(source)
        self.resolve = resolver or prefix_resolver(source)
        self.rejected = Counter(
            "perf_ratelimit_rejected",
            "Requests refused with 429 by the contract's rate limits",
            ["route"],
            registry=registry,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self.resolve(scope)
        wait = self.limiter.check(route) if route != UNMATCHED else 0.0
        if wait <= 0:
            return await self.app(scope, receive, send)
        self.rejected.labels(route).inc()
        body = json.dumps({"detail": f"rate limit of route {route} exceeded"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, math.ceil(wait))).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
