"""The sample app as processes, scraped by a real Prometheus, judged by the queries the operator generates for its
profile (`perf-operator plan`: the canary's gates and the SLO recording rules) and by the rate-limit policy's
traffic query: a good version passes the gates, a slow and failing one fails them, rejections are seen per route."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from apps import plan_for, start_app, wait_http
from conftest import Mount, free_port

SCRAPE_SECONDS = 1


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A Prometheus whose scrape config the test writes, then reloads."""
    binary = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not binary:
        pytest.fail("prometheus is missing (Debian's prometheus; tests/support/install.sh installs it)")
    config, port = tmp_path / "prometheus.yml", free_port()
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": f"{SCRAPE_SECONDS}s"}, "scrape_configs": []}))
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        "--web.enable-lifecycle",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 30)
        yield config, port
    finally:
        process.terminate()
        process.wait(timeout=20)


def query(port: int, promql: str) -> list[float]:
    r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": promql}, timeout=10)
    r.raise_for_status()
    return [float(s["value"][1]) for s in r.json()["data"]["result"]]


def load(port: int, seconds: float) -> dict[int, int]:
    """Requests over the three routes from 8 threads for `seconds`; the metrics route above its 100/s limit."""
    paths = (
        [f"/api/v1/risk/p{i % 7}" for i in range(6)]
        + [f"/api/v1/query?q=q{i % 5}" for i in range(3)]
        + ["/api/v1/metrics/m"] * 6
    )
    codes: dict[int, int] = {}

    def worker(offset: int) -> dict[int, int]:
        seen: dict[int, int] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            end, i = time.monotonic() + seconds, offset
            while time.monotonic() < end:
                code = client.get(paths[i % len(paths)]).status_code
                seen[code] = seen.get(code, 0) + 1
                i += 1
        return seen

    with ThreadPoolExecutor(8) as pool:
        for seen in pool.map(worker, range(8)):
            for code, n in seen.items():
                codes[code] = codes.get(code, 0) + n
    return codes


def test_the_operators_queries_judge_the_sample_app_as_a_canary_would(tmp_path, redis_port, prometheus):
    config, prom_port = prometheus
    versions = {"good": "ok", "bad": "slow-failing"}
    processes, targets = [], []
    try:
        plans = {}
        for namespace, mode in versions.items():
            plans[namespace] = plan_for(namespace, redis_port, tmp_path)
            (tmp_path / namespace).mkdir()
            mount = Mount(tmp_path / namespace)
            mount.publish(plans[namespace]["appConfig"]["data"]["perf.json"])
            process, port = start_app(mount, mode, {}, tmp_path / f"{namespace}.log")
            processes.append(process)
            # As a PodMonitor labels the canary copy's pod.
            labels = {"namespace": namespace, "pod": f"shop-canary-7d9f-{namespace}", "job": "shop"}
            targets.append(
                {"job_name": namespace, "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": labels}]}
            )
        # The SLO rules as the Prometheus Operator would load the PrometheusRule: recorded, then alerted on.
        rules = tmp_path / "rules.yml"
        rules.write_text(yaml.safe_dump({"groups": [g for p in plans.values() for g in p["sloRules"]["groups"]]}))
        settings = {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"}
        config.write_text(yaml.safe_dump({"global": settings, "rule_files": [str(rules)], "scrape_configs": targets}))
        httpx.post(f"http://127.0.0.1:{prom_port}/-/reload", timeout=10).raise_for_status()
        ports = [int(t["static_configs"][0]["targets"][0].rsplit(":", 1)[1]) for t in targets]
        with ThreadPoolExecutor(2) as pool:
            codes = dict(zip(versions, pool.map(lambda p: load(p, 8), ports), strict=True))
        time.sleep(3 * SCRAPE_SECONDS)

        verdicts = {}
        for namespace in versions:
            checks = {c["name"]: c for c in plans[namespace]["canary"]["checks"]}
            values = {name: query(prom_port, c["query"]) for name, c in checks.items()}
            assert all(len(v) == 1 for v in values.values()), f"{namespace}: every gate answers one value: {values}"
            p99_ms, error_pct = values["p99-latency"][0] * 1000, values["error-rate"][0] * 100
            verdicts[namespace] = (
                values["requests"][0] >= checks["requests"]["min"],
                p99_ms < checks["p99-latency"]["max"],
                error_pct < checks["error-rate"]["max"],
            )
            for group in plans[namespace]["sloRules"]["groups"]:
                # The app's series only: the rate-limit records read the operator's own /metrics, not scraped here
                # (the dashboard's end-to-end test has them).
                app_records = [r for r in group["rules"] if "record" in r and "perf_operator_" not in r["expr"]]
                for record in [r["record"] for r in app_records]:
                    assert query(prom_port, f'{record}{{namespace="{namespace}"}}'), (
                        f"{namespace}: {record} not recorded"
                    )
        assert verdicts["good"] == (True, True, True), (verdicts, codes)
        assert verdicts["bad"][0] and not verdicts["bad"][1] and not verdicts["bad"][2], (verdicts, codes)
        alerts = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        firing = {(a["labels"].get("namespace"), a["labels"]["alertname"]) for a in alerts}
        assert {("bad", "PerfErrorBudgetFastBurn"), ("bad", "PerfLatencyObjectiveMissed")} <= firing, firing
        assert not any(ns == "good" for ns, _ in firing), firing

        # The rate-limit policy's rejected-requests query (operator/src/controller/traffic.rs), per route.
        rejected = query(
            prom_port,
            'sum(rate(http_requests_total{namespace="good", route="/api/v1/metrics", code="429"}[1m])) or vector(0)',
        )
        assert codes["good"].get(429, 0) > 0 and rejected[0] > 0, codes
        served = query(prom_port, 'sum(rate(http_requests_total{namespace="good", route="/api/v1/risk"}[1m]))')
        assert served[0] > 0
        saved = query(prom_port, 'sum(perf_cache_requests_total{namespace="good", result="hit"})')
        assert saved and saved[0] > 0, "the cache served hits"
    finally:
        for p in processes:
            p.terminate()
            p.wait(timeout=20)
