"""The operator and this client read one schema (clients/app-contract.schema.json): every contract the operator writes
(`perf-operator plan`, the same decision a reconcile runs) for the examples and a table of edge profiles validates
against it, strictly; the client's copy is that file; the client's version is the operator's."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

import perf_client

from conftest import ROOT

SCHEMA = ROOT / "clients" / "app-contract.schema.json"


def operator() -> str:
    binary = os.environ.get("PERF_OPERATOR_BIN") or str(ROOT / "target" / "debug" / "perf-operator")
    if not Path(binary).exists():
        pytest.fail(f"no operator binary at {binary}: build it (cargo build -p perf-operator) or set PERF_OPERATOR_BIN")
    return binary


def contracts(path: Path) -> list[dict]:
    out = subprocess.run(
        [operator(), "plan", "-f", str(path), "-o", "json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode in (0, 3), f"plan {path}: exit {out.returncode}: {out.stderr}"
    plans = json.loads(out.stdout)
    plans = plans if isinstance(plans, list) else [plans]
    return [json.loads(p["appConfig"]["data"]["perf.json"]) for p in plans]


def profile(name: str, spec: dict) -> dict:
    return {
        "apiVersion": "perf.operator.dev/v1alpha1",
        "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": "edge"},
        "spec": {"targetRef": {"name": name}} | spec,
    }


EDGES = [
    profile("bare", {}),
    profile(
        "external-no-password",
        {
            "cache": {
                "redis": {"external": {"address": "rediss://cache.example:6380/1"}},
                "ttlClasses": [{"name": "a", "ttlSeconds": 1}],
            }
        },
    ),
    profile("slo-extremes", {"slo": {"p99LatencyMs": 600000, "errorRatePercent": 100}}),
    profile("slo-tiny", {"slo": {"p99LatencyMs": 1, "errorRatePercent": 0.001}}),
    profile("pools-only", {"pools": {"postgres": {"min": 0, "max": 1}, "clickhouse": {"min": 10, "max": 10}}}),
    profile(
        "routes-odd",
        {
            "rateLimit": {
                "routes": [
                    {"route": 'name with "quotes" and ünïcode', "requestsPerSecond": 1, "burst": 1},
                    {"route": "/a/b", "requestsPerSecond": 10000000, "burst": 100000000},
                ]
            }
        },
    ),
    profile(
        "many-classes",
        {
            "cache": {
                "redis": {"provision": {}},
                "ttlClasses": [{"name": f"c{i}", "ttlSeconds": 31536000} for i in range(64)],
            }
        },
    ),
]


def test_every_contract_the_operator_writes_validates_strictly(tmp_path):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    validator.check_schema(validator.schema)
    edges = tmp_path / "edges.yaml"
    edges.write_text(yaml.safe_dump_all(EDGES))
    files = sorted((ROOT / "examples").glob("*.yaml")) + [ROOT / "examples/sample-app/k8s/profile.yaml", edges]
    seen, sections = 0, set()
    for path in files:
        for doc in contracts(path):
            sections |= set(doc)
            errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
            assert errors == [], f"{path.name}: {errors}"
            # And the client reads it.
            perf_client.parse(json.dumps(doc))
            seen += 1
    assert seen >= len(EDGES) + 5
    assert sections == {"version", "slo", "cache", "pools", "rateLimits"}, "each section was checked at least once"


def test_the_clients_schema_is_the_repositorys():
    packaged = Path(perf_client.__file__).parent / "app-contract.schema.json"
    assert packaged.read_bytes() == SCHEMA.read_bytes(), (
        "run: cp clients/app-contract.schema.json clients/python/src/perf_client/"
    )
    assert perf_client.schema() == json.loads(SCHEMA.read_text())


def test_the_client_is_versioned_with_the_operator():
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'\[workspace\.package\]\s*\nversion = "([^"]+)"', cargo).group(1)
    pyproject = (ROOT / "clients" / "python" / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == version
    assert perf_client.__version__ == version
