"""perf-operator's sample app: a FastAPI risk service using the app contract through perf-operator-client.

Routes (each in a TTL class of the contract, each a contract route for the rate limits):
  GET /api/v1/risk/{portfolio}   value at risk of a portfolio   class riskModel  (ClickHouse, or simulated)
  GET /api/v1/metrics/{name}     a metric's last value          class metrics    (simulated)
  GET /api/v1/query?q=...        a stored query's answer        class query      (PostgreSQL, or simulated)
  GET /healthz, /metrics

Environment: PERF_CONFIG_DIR (the mounted contract, default /etc/perf), REDIS_PASSWORD (from the Secret the
contract names), POSTGRES_DSN and CLICKHOUSE_URL (real backends; without them each backend call is a sleep of
SAMPLE_BACKEND_MS), and the switch that makes a version bad for canary tests:
  SAMPLE_MODE=ok | slow | failing | slow-failing, SAMPLE_SLOW_MS (default 300), SAMPLE_FAIL_PERCENT (default 20).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from prometheus_client import Counter

import perf_client
from perf_client import CacheManager, ContractSource, PoolSize, PoolWatch

MODE = os.environ.get("SAMPLE_MODE", "ok")
SLOW_MS = float(os.environ.get("SAMPLE_SLOW_MS", "300"))
FAIL_PERCENT = float(os.environ.get("SAMPLE_FAIL_PERCENT", "20"))
BACKEND_MS = float(os.environ.get("SAMPLE_BACKEND_MS", "20"))
if MODE not in ("ok", "slow", "failing", "slow-failing"):
    raise SystemExit(f"SAMPLE_MODE={MODE!r}: expected ok, slow, failing or slow-failing")
if not 0 <= FAIL_PERCENT <= 100:
    raise SystemExit(f"SAMPLE_FAIL_PERCENT={FAIL_PERCENT}: expected a percentage in [0, 100]")

#: Pool size when the profile declares none for a backend the app is given.
DEFAULT_POOL = PoolSize(1, 10)
BACKEND_CALLS = Counter("sample_backend_calls", "Calls to the backends (a cache hit saves one)", ["backend"])
_requests = itertools.count(1)


class Backends:
    """ClickHouse and PostgreSQL when configured, else a sleep standing for the query."""

    def __init__(self) -> None:
        self.postgres: Any = None
        self.clickhouse: Any = None

    async def start(self, source: ContractSource, stack: AsyncExitStack) -> None:
        if dsn := os.environ.get("POSTGRES_DSN"):
            self.postgres = await perf_client.pools.asyncpg_pool(source, dsn, default=DEFAULT_POOL)
            stack.push_async_callback(self.postgres.close)
        if url := os.environ.get("CLICKHOUSE_URL"):
            from urllib.parse import urlparse

            u = urlparse(url)
            self.clickhouse = perf_client.pools.clickhouse_client(
                source, default=DEFAULT_POOL, host=u.hostname, port=u.port or 8123
            )

    async def clickhouse_var(self, portfolio: str) -> float:
        BACKEND_CALLS.labels("clickhouse").inc()
        if self.clickhouse is None:
            await asyncio.sleep(BACKEND_MS / 1000)
            return _pseudo(portfolio)
        seed = int(hashlib.sha256(portfolio.encode()).hexdigest()[:8], 16)
        query = f"SELECT quantile(0.99)(number % 1000) / 100 FROM numbers({1000 + seed % 1000})"
        result = await asyncio.to_thread(self.clickhouse.query, query)
        return float(result.result_rows[0][0])

    async def postgres_query(self, q: str) -> str:
        BACKEND_CALLS.labels("postgres").inc()
        if self.postgres is None:
            await asyncio.sleep(BACKEND_MS / 1000)
            return f"answer to {q}"
        return str(await self.postgres.fetchval("SELECT md5($1::text)", q))

    async def metric(self, name: str) -> float:
        BACKEND_CALLS.labels("metrics").inc()
        await asyncio.sleep(BACKEND_MS / 1000)
        return _pseudo(name)


def _pseudo(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) / 1e5


source = ContractSource()
backends = Backends()
cache: CacheManager | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global cache
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(perf_client.watching(source))
        redis = None
        if source.current.redis is not None:
            redis = perf_client.redis_client(source)
            stack.push_async_callback(redis.aclose)
            cache = CacheManager(source, redis)
        PoolWatch(source, redis=redis)
        await backends.start(source, stack)
        yield


app = FastAPI(title="perf-operator sample app", lifespan=lifespan)
perf_client.instrument(app, source)


async def misbehave() -> None:
    """The switch a bad version is deployed with: slower, or failing a share of its requests."""
    n = next(_requests)
    if "slow" in MODE:
        await asyncio.sleep(SLOW_MS / 1000)
    if "failing" in MODE and FAIL_PERCENT > 0 and n % max(1, round(100 / FAIL_PERCENT)) == 0:
        raise HTTPException(status_code=500, detail="failing on purpose (SAMPLE_MODE)")


async def cached(cls: str, key: str, compute) -> Any:
    if cache is None:
        return await compute()

    async def stored() -> str:
        return json.dumps(await compute())

    return json.loads(await cache.get_or_compute(cls, key, stored))


@app.get("/api/v1/risk/{portfolio}")
async def risk(portfolio: str) -> dict[str, Any]:
    await misbehave()
    var = await cached("riskModel", f"var:{portfolio}", lambda: backends.clickhouse_var(portfolio))
    return {"portfolio": portfolio, "var99": var}


@app.get("/api/v1/metrics/{name}")
async def metric(name: str) -> dict[str, Any]:
    await misbehave()
    return {"metric": name, "value": await cached("metrics", f"m:{name}", lambda: backends.metric(name))}


@app.get("/api/v1/query")
async def query(q: str) -> dict[str, Any]:
    await misbehave()
    return {"q": q, "answer": await cached("query", f"q:{q}", lambda: backends.postgres_query(q))}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "contract": source.current.checksum[:12], "mode": MODE}
