"""The app contract: ``perf.json`` of the ConfigMap ``<profile>-perf``, validated against its schema, reloaded when
the kubelet swaps in a new version of the mounted ConfigMap."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

log = logging.getLogger("perf_client")

#: The contract version this client reads.
SUPPORTED_VERSION = 1
#: Where the ConfigMap is mounted unless ``PERF_CONFIG_DIR`` says otherwise.
DEFAULT_DIRECTORY = "/etc/perf"
#: The document's file name in the mounted ConfigMap.
FILE_NAME = "perf.json"
#: A contract is small (a few KiB); a bigger file is not one.
MAX_BYTES = 1 << 20


class ContractError(ValueError):
    """The document is not a contract this client can use; the message names the field."""


class UnsupportedVersion(ContractError):
    """The document's ``version`` is not one this client reads."""


@dataclass(frozen=True)
class Slo:
    p99_latency_ms: int
    error_rate_percent: float


@dataclass(frozen=True)
class RedisSettings:
    address: str
    #: ``(secret name, key)`` of the password, or None when there is none.
    password_secret: tuple[str, str] | None

    def url(self, password: str | None = None) -> str:
        """A redis-py URL: a provisioned Redis is ``host:port`` (plain TCP), an external one a ``redis://`` or
        ``rediss://`` URL as written."""
        if "://" in self.address:
            return self.address
        auth = f":{_quote(password)}@" if password else ""
        return f"redis://{auth}{self.address}"


@dataclass(frozen=True)
class PoolSize:
    min: int
    max: int


@dataclass(frozen=True)
class RouteLimit:
    route: str
    requests_per_second: int
    burst: int

    @property
    def closed(self) -> bool:
        """A closed route (a failing policy with ``FailClosed``): reject its requests; 0 is never "unlimited"."""
        return self.requests_per_second == 0


@dataclass(frozen=True)
class Contract:
    """One version of the contract. Immutable: a reload swaps in a new object, so a request holding one sees it
    whole."""

    version: int
    slo: Slo | None = None
    redis: RedisSettings | None = None
    ttl_seconds: Mapping[str, int] = field(default_factory=dict)
    admit: Mapping[str, bool] = field(default_factory=dict)
    pools: Mapping[str, PoolSize] = field(default_factory=dict)
    rate_limits: tuple[RouteLimit, ...] = ()
    #: sha256 of the document's bytes.
    checksum: str = ""

    def ttl(self, cls: str) -> int | None:
        """TTL of a class in seconds, or None when the class must not be cached (``admit: false``).

        A class the contract does not name is an error in the app, not a reason to cache forever."""
        if not self.admit.get(cls, True):
            return None
        try:
            return self.ttl_seconds[cls]
        except KeyError:
            known = ", ".join(sorted(self.ttl_seconds)) or "none"
            raise KeyError(f"TTL class {cls!r} is not in the contract (classes: {known})") from None

    def pool(self, name: str) -> PoolSize | None:
        return self.pools.get(name)

    def limit(self, route: str) -> RouteLimit | None:
        return next((r for r in self.rate_limits if r.route == route), None)


def parse(raw: bytes | str) -> Contract:
    """Reads and validates one ``perf.json``."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_BYTES:
        raise ContractError(f"{FILE_NAME}: {len(data)} bytes, more than a contract's {MAX_BYTES}")
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ContractError(f"{FILE_NAME}: not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ContractError(f"{FILE_NAME}: expected an object, got {type(doc).__name__}")
    version = doc.get("version")
    if version != SUPPORTED_VERSION or isinstance(version, bool):
        raise UnsupportedVersion(
            f"{FILE_NAME}: version {version!r} is not supported by this client (it reads version {SUPPORTED_VERSION})"
        )
    _validate(doc)
    return _contract(doc, hashlib.sha256(data).hexdigest())


def schema() -> dict[str, Any]:
    """The contract's JSON Schema (the repository's ``clients/app-contract.schema.json``)."""
    text = resources.files("perf_client").joinpath("app-contract.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


_VALIDATOR = jsonschema.Draft202012Validator(schema())


def _validate(doc: dict[str, Any]) -> None:
    problems, unknown = [], []
    for error in sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        # A later operator may add properties within a version: say so, read the rest.
        if error.validator == "additionalProperties":
            unknown.append(f"{where}: {error.message}")
        else:
            problems.append(f"{where}: {error.message}")
    for note in unknown:
        log.warning("%s: ignored (newer operator?): %s", FILE_NAME, note)
    if problems:
        raise ContractError(f"{FILE_NAME}: " + "; ".join(problems))


def _contract(doc: dict[str, Any], checksum: str) -> Contract:
    slo = doc.get("slo")
    cache = doc.get("cache") or {}
    redis = cache.get("redis")
    secret = redis.get("passwordSecret") if redis else None
    return Contract(
        version=doc["version"],
        slo=Slo(slo["p99LatencyMs"], float(slo["errorRatePercent"])) if slo else None,
        redis=RedisSettings(redis["address"], (secret["name"], secret["key"]) if secret else None) if redis else None,
        ttl_seconds=dict(cache.get("ttlSeconds", {})),
        admit=dict(cache.get("admit", {})),
        pools={name: PoolSize(p["min"], p["max"]) for name, p in (doc.get("pools") or {}).items()},
        rate_limits=tuple(
            RouteLimit(r["route"], r["requestsPerSecond"], r["burst"]) for r in doc.get("rateLimits") or []
        ),
        checksum=checksum,
    )


def _quote(password: str) -> str:
    from urllib.parse import quote

    return quote(password, safe="")


Listener = Callable[[Contract, Contract], None]


class ContractSource:
    """The contract of a mounted ConfigMap, kept current.

    The kubelet updates a mounted ConfigMap by swapping a symlink (``..data``) to a new directory, so a reader of
    ``perf.json`` sees either the old file or the new one, never a mix. :meth:`check` notices a new version (by the
    file it resolves to and its content), validates it and swaps it in; an invalid new version is logged and the
    last good one kept. Listeners hear of each change (pool sizes, say, that need a restart)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, poll_seconds: float = 2.0) -> None:
        self.path = Path(directory or os.environ.get("PERF_CONFIG_DIR", DEFAULT_DIRECTORY)) / FILE_NAME
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._seen: tuple[Any, ...] | None = None
        self._current = self._read()
        #: Versions refused since start (a bad edit, a newer contract version).
        self.refused = 0
        self.last_error: str | None = None

    @property
    def current(self) -> Contract:
        return self._current

    def subscribe(self, listener: Listener) -> None:
        """``listener(old, new)`` is called after each change, in the thread that noticed it."""
        self._listeners.append(listener)

    def check(self) -> bool:
        """Reloads when the file changed; True when a new contract is in force."""
        with self._lock:
            try:
                seen = self._identity()
                if seen == self._seen:
                    return False
                new = self._read()
            except (OSError, ContractError) as e:
                # The last good contract stays; a broken one never reaches the app.
                self.refused += 1
                self.last_error = str(e)
                log.error("%s: keeping the contract in force (%s): %s", self.path, self._current.checksum[:12], e)
                self._seen = None if isinstance(e, OSError) else self._identity_or_none()
                return False
            old, changed = self._current, new.checksum != self._current.checksum
            self._current = new
        if changed:
            log.info("%s: new contract %s (was %s)", self.path, new.checksum[:12], old.checksum[:12])
            for listener in list(self._listeners):
                listener(old, new)
        return changed

    async def watch(self) -> None:
        """Checks every ``poll_seconds`` until cancelled (run it as a task in the app's lifespan)."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            await asyncio.to_thread(self.check)

    def _read(self) -> Contract:
        seen = self._identity()
        with open(self.path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        contract = parse(raw)
        self._seen = seen
        return contract

    def _identity(self) -> tuple[Any, ...]:
        # The file the symlinks resolve to now: a swap gives a new path or inode even when mtimes collide.
        real = os.path.realpath(self.path)
        st = os.stat(real)
        return (real, st.st_ino, st.st_mtime_ns, st.st_size)

    def _identity_or_none(self) -> tuple[Any, ...] | None:
        try:
            return self._identity()
        except OSError:
            return None
