"""Fixtures: a ConfigMap mounted the kubelet's way, a real Redis, a fresh metrics registry."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[3]

#: A contract as the operator writes it for a profile with every section.
FULL = {
    "version": 1,
    "slo": {"p99LatencyMs": 150, "errorRatePercent": 0.1},
    "cache": {
        "redis": {"address": "127.0.0.1:6379", "passwordSecret": {"name": "shop-redis", "key": "password"}},
        "ttlSeconds": {"metrics": 300, "query": 1800, "riskModel": 3600},
    },
    "pools": {"clickhouse": {"min": 10, "max": 10}, "postgres": {"min": 5, "max": 20}, "redis": {"min": 2, "max": 4}},
    "rateLimits": [
        {"route": "/api/v1/risk", "requestsPerSecond": 500, "burst": 1000},
        {"route": "/api/v1/metrics", "requestsPerSecond": 10, "burst": 20},
    ],
}


class Mount:
    """A directory laid out as the kubelet mounts a ConfigMap: ``perf.json -> ..data/perf.json``, ``..data -> ..<n>``;
    :meth:`publish` swaps ``..data`` atomically to a new version, as the kubelet does."""

    def __init__(self, root: Path) -> None:
        self.root, self.n = root, 0
        (root / "perf.json").symlink_to("..data/perf.json")

    def publish(self, doc: Any) -> None:
        self.n += 1
        version = self.root / f"..2026_12_07_{self.n}"
        version.mkdir()
        text = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
        (version / "perf.json").write_bytes(text.encode() if isinstance(text, str) else text)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")


@pytest.fixture
def mount(tmp_path: Path) -> Mount:
    m = Mount(tmp_path)
    m.publish(FULL)
    return m


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Debian's redis-server on loopback, for the session."""
    binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if not binary:
        pytest.fail("redis-server is missing (Debian's redis-server; tests/support/install.sh installs it)")
    port, workdir = free_port(), tmp_path_factory.mktemp("redis")
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"redis-server did not listen on {port} within 10 s")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
