"""Connection pools sized from the contract (``pools.<name>.min/max``, connections per pod)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from .contract import Contract, ContractSource, PoolSize

log = logging.getLogger("perf_client")


def size(source: ContractSource, name: str, default: PoolSize | None = None) -> PoolSize:
    """The pool ``name`` (``clickhouse``, ``postgres``, ``redis``) of the contract, else ``default``."""
    found = source.current.pool(name) or default
    if found is None:
        raise KeyError(f"the contract declares no {name} pool and no default was given")
    return found


async def asyncpg_pool(source: ContractSource, dsn: str, *, default: PoolSize | None = None, **kwargs: Any) -> Any:
    """An ``asyncpg`` pool of ``pools.postgres``: ``min_size``/``max_size`` from the contract (else ``default``)."""
    import asyncpg

    pool = size(source, "postgres", default)
    return await asyncpg.create_pool(dsn, min_size=pool.min, max_size=pool.max, **kwargs)


def clickhouse_client(source: ContractSource, *, default: PoolSize | None = None, **kwargs: Any) -> Any:
    """A ``clickhouse_connect`` client whose HTTP connection pool holds ``pools.clickhouse.max`` connections (else
    ``default``'s; the HTTP interface has no warm minimum)."""
    import clickhouse_connect
    from clickhouse_connect.driver import httputil

    pool = size(source, "clickhouse", default)
    kwargs.setdefault("pool_mgr", httputil.get_pool_manager(maxsize=pool.max, num_pools=1))
    return clickhouse_connect.get_client(**kwargs)


class PoolWatch:
    """Follows the contract's pool sizes. A Redis pool takes a new maximum live; asyncpg and ClickHouse pools are
    fixed once built, so a change there is logged and shown by ``perf_client_pool_restart_pending`` (1) until the
    pod restarts (``appConfig.rolloutOnChange: true`` makes the operator roll the pods instead)."""

    def __init__(self, source: ContractSource, *, redis: Any = None, registry: CollectorRegistry = REGISTRY) -> None:
        self.redis = redis
        self.started = dict(source.current.pools)
        self.pending = Gauge(
            "perf_client_pool_restart_pending",
            "1 when the contract's size of a pool differs from the one this process built it with",
            ["pool"],
            registry=registry,
        )
        for name in self.started:
            self.pending.labels(name).set(0)
        source.subscribe(self.changed)

    def changed(self, old: Contract, new: Contract) -> None:
        for name in sorted(set(old.pools) | set(new.pools)):
            before, after = self.started.get(name), new.pools.get(name)
            if name == "redis" and after is not None and self.redis is not None:
                # redis-py reads max_connections at each checkout: the new cap applies at once.
                self.redis.connection_pool.max_connections = after.max
                self.started[name] = after
                self.pending.labels(name).set(0)
                continue
            differs = before != after
            self.pending.labels(name).set(1 if differs else 0)
            if differs and old.pools.get(name) != after:
                log.warning("pools.%s is now %s (built with %s): restart the pod to apply it", name, after, before)
