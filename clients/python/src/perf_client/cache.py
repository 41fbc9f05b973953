"""A Redis cache whose TTLs come from the contract's classes: a manager and a ``@cached`` decorator."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from .contract import ContractSource

log = logging.getLogger("perf_client")

T = TypeVar("T")

#: Outcomes counted per class: served from Redis, computed and stored, or computed and not stored (the class is
#: not admitted, or Redis failed).
RESULTS = ("hit", "miss", "bypass")


class SecretFileCredentials:
    """The password in a mounted Secret's file (``REDIS_PASSWORD_FILE``), read at each new connection: after the
    operator rotates the password (``perf.operator.dev/rotate-redis-password``) the kubelet updates the file and new
    connections use the new password while the old one still works (``rotationGrace``), with no restart."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def get_credentials(self) -> tuple[str]:
        with open(self.path, encoding="utf-8") as f:
            return (f.read().strip(),)

    async def get_credentials_async(self) -> tuple[str]:
        return self.get_credentials()


def redis_client(source: ContractSource, password: str | None = None, **kwargs: Any) -> Any:
    """A ``redis.asyncio.Redis`` for the contract's Redis, its pool capped at ``pools.redis.max`` when declared.

    The password: ``password``, else ``REDIS_PASSWORD`` (the Secret the contract names, as a variable: read once),
    else the file ``REDIS_PASSWORD_FILE`` (the Secret mounted as a volume: read at each connection, so a rotated
    password is picked up)."""
    import redis.asyncio as redis

    contract = source.current
    if contract.redis is None:
        raise ValueError("the contract has no cache section: the profile declares no Redis")
    pool = contract.pool("redis")
    if pool is not None:
        kwargs.setdefault("max_connections", pool.max)
    password = password if password is not None else os.environ.get("REDIS_PASSWORD")
    if password is None and (path := os.environ.get("REDIS_PASSWORD_FILE")):
        kwargs.setdefault("credential_provider", SecretFileCredentials(path))
    return redis.Redis.from_url(contract.redis.url(password), **kwargs)


class CacheManager:
    """Gets and sets values by TTL class. The TTL is the contract's at the moment of each write, so a change (a
    policy's decision, an edited profile) applies without a restart; a class not admitted is never stored."""

    def __init__(
        self,
        source: ContractSource,
        client: Any,
        *,
        prefix: str = "perf:",
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.source, self.client, self.prefix = source, client, prefix
        self.requests = Counter(
            "perf_cache_requests",
            "Cache lookups by TTL class and result (hit, miss, bypass)",
            ["class", "result"],
            registry=registry,
        )
        self.errors = Counter(
            "perf_cache_errors",
            "Redis errors by TTL class; the value is computed instead",
            ["class"],
            registry=registry,
        )

    def _key(self, cls: str, key: str) -> str:
        return f"{self.prefix}{cls}:{key}"

    def _ttl(self, cls: str) -> int | None:
        # A class removed from the profile while the app runs: computed every time, never a failed request.
        try:
            return self.source.current.ttl(cls)
        except KeyError as e:
            log.warning("%s: not cached", e.args[0])
            return None

    async def get(self, cls: str, key: str) -> bytes | None:
        """The cached value, or None (not cached, not admitted, or Redis unavailable)."""
        if self._ttl(cls) is None:
            return None
        try:
            found: bytes | None = await self.client.get(self._key(cls, key))
            return found
        except Exception as e:  # noqa: BLE001 - a cache failure must never fail the request
            self.errors.labels(cls).inc()
            log.warning("cache get %s/%s failed: %s", cls, key, e)
            return None

    async def set(self, cls: str, key: str, value: bytes | str) -> bool:
        """Stores with the class's TTL; False when the class is not admitted or Redis failed."""
        ttl = self._ttl(cls)
        if not ttl:
            return False
        try:
            await self.client.set(self._key(cls, key), value, ex=ttl)
            return True
        except Exception as e:  # noqa: BLE001
            self.errors.labels(cls).inc()
            log.warning("cache set %s/%s failed: %s", cls, key, e)
            return False

    async def get_or_compute(self, cls: str, key: str, compute: Callable[[], Awaitable[bytes | str]]) -> bytes | str:
        found = await self.get(cls, key)
        if found is not None:
            self.requests.labels(cls, "hit").inc()
            return found
        value = await compute()
        stored = await self.set(cls, key, value)
        self.requests.labels(cls, "miss" if stored else "bypass").inc()
        return value

    def cached(
        self,
        cls: str,
        *,
        key: Callable[..., str] | None = None,
        dumps: Callable[[Any], str] = json.dumps,
        loads: Callable[[bytes | str], Any] = json.loads,
    ) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """Caches an async function's results under TTL class ``cls``.

        The key is the function's qualified name and a hash of its arguments (or ``key(*args, **kwargs)``); values
        go through JSON unless ``dumps``/``loads`` say otherwise. The class is checked against the contract when the
        function is decorated: a typo fails at start, not at the first request."""
        self.source.current.ttl(cls)

        def decorate(function: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            name = f"{function.__module__}.{function.__qualname__}"

            @functools.wraps(function)
            async def wrapper(*args: Any, **kwargs: Any) -> T:
                suffix = key(*args, **kwargs) if key else _argument_hash(args, kwargs)
                computed: list[T] = []

                async def compute() -> str:
                    computed.append(await function(*args, **kwargs))
                    return dumps(computed[0])

                value = await self.get_or_compute(cls, f"{name}:{suffix}", compute)
                return computed[0] if computed else loads(value)

            return wrapper

        return decorate


def _argument_hash(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    text = repr((args, sorted(kwargs.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
