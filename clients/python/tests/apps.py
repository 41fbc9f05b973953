"""Running the sample app in tests: its contract planned by the operator, the app as a uvicorn process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import ROOT, Mount, free_port
from test_schema import operator

APP_DIR = ROOT / "examples" / "sample-app"
PROFILE = yaml.safe_load((APP_DIR / "k8s" / "profile.yaml").read_text())


def plan_for(namespace: str, redis_port: int, tmp: Path) -> dict:
    """The operator's plan of the sample profile in `namespace`, its Redis replaced by the suite's, its step short."""
    profile = json.loads(json.dumps(PROFILE))
    profile["metadata"]["namespace"] = namespace
    profile["spec"]["cache"]["redis"] = {"external": {"address": f"redis://127.0.0.1:{redis_port}"}}
    profile["spec"]["canary"]["stepInterval"] = "20s"
    path = tmp / f"{namespace}.yaml"
    path.write_text(yaml.safe_dump(profile))
    out = subprocess.run(
        [operator(), "plan", "-f", str(path), "-o", "json"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {seconds} s")


def start_app(mount: Mount, mode: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    """The sample app on a free port, reading the contract of `mount`; `env` overrides its settings."""
    port = free_port()
    settings = {"SAMPLE_MODE": mode, "SAMPLE_BACKEND_MS": "5", "SAMPLE_SLOW_MS": "300", "SAMPLE_FAIL_PERCENT": "20"}
    # Simulated backends unless a test names real ones: the suite's ClickHouse and PostgreSQL are other tests'.
    inherited = {k: v for k, v in os.environ.items() if k not in ("CLICKHOUSE_URL", "POSTGRES_DSN")}
    variables = inherited | settings | env | {"PERF_CONFIG_DIR": str(mount.root)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    process = subprocess.Popen(command, cwd=APP_DIR, env=variables, stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return process, port
