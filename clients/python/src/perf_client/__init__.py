"""perf-operator's app contract for Python services: TTL classes, pool sizes and rate limits from the mounted
ConfigMap ``<profile>-perf``, and the request metrics the operator's canary and SLO rules read.

    source = ContractSource()                      # $PERF_CONFIG_DIR/perf.json, reloaded on change
    app = FastAPI(lifespan=...)                    # see instrument()
    instrument(app, source)                        # metrics, rate limits, /metrics
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from .cache import CacheManager, redis_client
from .contract import (
    SUPPORTED_VERSION,
    Contract,
    ContractError,
    ContractSource,
    PoolSize,
    RedisSettings,
    RouteLimit,
    Slo,
    UnsupportedVersion,
    parse,
    schema,
)
from .metrics import MetricsMiddleware, buckets_for, metrics_app
from .pools import PoolWatch
from .ratelimit import RateLimiter, RateLimitMiddleware
from .routes import UNMATCHED, prefix_resolver

__version__ = "0.1.0"

__all__ = [
    "SUPPORTED_VERSION",
    "UNMATCHED",
    "CacheManager",
    "Contract",
    "ContractError",
    "ContractSource",
    "MetricsMiddleware",
    "PoolSize",
    "PoolWatch",
    "RateLimitMiddleware",
    "RateLimiter",
    "RedisSettings",
    "RouteLimit",
    "Slo",
    "UnsupportedVersion",
    "buckets_for",
    "instrument",
    "metrics_app",
    "parse",
    "prefix_resolver",
    "redis_client",
    "schema",
    "watching",
]


def instrument(app: Any, source: ContractSource, *, registry: CollectorRegistry = REGISTRY, limit: bool = True) -> None:
    """Adds to a Starlette/FastAPI ``app``: the request metrics (outermost, so 429s are counted), the rate limits
    (unless ``limit`` is False) and the ``/metrics`` endpoint. Call before the app starts."""
    if limit:
        app.add_middleware(RateLimitMiddleware, source=source, registry=registry)
    app.add_middleware(MetricsMiddleware, source=source, registry=registry)
    app.mount("/metrics", metrics_app(registry))


@asynccontextmanager
async def watching(source: ContractSource) -> AsyncIterator[ContractSource]:
    """Keeps ``source`` current while the block runs: use it in the app's lifespan."""
    task = asyncio.create_task(source.watch())
    try:
        yield source
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
