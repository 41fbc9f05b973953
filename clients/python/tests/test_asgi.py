"""The rate limits and the request metrics as ASGI middleware on a FastAPI app, under concurrent load."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest
from fastapi import FastAPI

from perf_client import ContractSource, RateLimiter, buckets_for, instrument, parse
from perf_client.ratelimit import CLOSED_RETRY_SECONDS

from conftest import FULL, Mount


def app_for(source: ContractSource, registry) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/risk/{portfolio}")
    async def risk(portfolio: str):
        return {"portfolio": portfolio}

    @app.get("/api/v1/metrics")
    async def metrics():
        return {"ok": True}

    @app.get("/api/v1/riskier")
    async def riskier():
        return {}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def healthz():
        return {}

    instrument(app, source, registry=registry)
    return app


def limits(metrics_rps: int, metrics_burst: int) -> dict:
    doc = copy.deepcopy(FULL)
    doc["rateLimits"][1] = {"route": "/api/v1/metrics", "requestsPerSecond": metrics_rps, "burst": metrics_burst}
    return doc


async def burst(app, path: str, n: int) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await asyncio.gather(*(client.get(path) for _ in range(n)))


def codes(responses) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in responses:
        out[r.status_code] = out.get(r.status_code, 0) + 1
    return out


def sample(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_route_takes_its_burst_at_once_then_429s_with_retry_after_counted_under_its_route(mount: Mount, registry):
    mount.publish(limits(1, 20))
    app = app_for(ContractSource(mount.root), registry)
    responses = asyncio.run(burst(app, "/api/v1/metrics", 100))
    got = codes(responses)
    # One token a second: at most one more than the burst within the burst's own second.
    assert 20 <= got[200] <= 21 and got[429] == 100 - got[200], got
    rejected = [r for r in responses if r.status_code == 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in rejected)
    assert rejected[0].json()["detail"] == "rate limit of route /api/v1/metrics exceeded"
    count = sample(registry, "http_requests_total", method="GET", route="/api/v1/metrics", code="429")
    assert count == got[429], "the operator's policy reads rejections as code=429 under the route"
    assert sample(registry, "perf_ratelimit_rejected_total", route="/api/v1/metrics") == got[429]


def test_other_routes_and_paths_outside_every_route_are_not_limited(mount: Mount, registry):
    mount.publish(limits(1, 1))
    app = app_for(ContractSource(mount.root), registry)
    assert codes(asyncio.run(burst(app, "/api/v1/risk/p1", 50))) == {200: 50}
    # /api/v1/riskier is not under /api/v1/risk (segment boundary): unmatched, counted as route="other".
    assert codes(asyncio.run(burst(app, "/api/v1/riskier", 5))) == {200: 5}
    assert sample(registry, "http_requests_total", method="GET", route="other", code="200") == 5
    assert sample(registry, "http_requests_total", method="GET", route="/api/v1/risk", code="200") == 50


def test_a_limit_changed_in_the_contract_applies_live(mount: Mount, registry):
    mount.publish(limits(1, 2))
    source = ContractSource(mount.root)
    app = app_for(source, registry)
    assert codes(asyncio.run(burst(app, "/api/v1/metrics", 10)))[200] <= 3
    mount.publish(limits(200, 30))
    assert source.check()
    # The bucket keeps the tokens it held (none), now refills at 200/s up to 30: full after 0.15 s.
    asyncio.run(asyncio.sleep(0.2))
    got = codes(asyncio.run(burst(app, "/api/v1/metrics", 60)))
    assert got.get(200, 0) >= 30, got


def test_a_closed_route_refuses_everything(mount: Mount, registry):
    mount.publish(limits(0, 0))
    app = app_for(ContractSource(mount.root), registry)
    responses = asyncio.run(burst(app, "/api/v1/metrics", 5))
    assert codes(responses) == {429: 5}
    assert responses[0].headers["retry-after"] == str(CLOSED_RETRY_SECONDS)


def test_the_bucket_refills_at_its_rate():
    source = type(
        "S",
        (),
        {"current": parse('{"version": 1, "rateLimits": [{"route": "/r", "requestsPerSecond": 10, "burst": 5}]}')},
    )()
    now = [100.0]
    limiter = RateLimiter(source, clock=lambda: now[0])
    assert [limiter.check("/r") for _ in range(5)] == [0.0] * 5
    wait = limiter.check("/r")
    assert wait == pytest.approx(0.1)
    now[0] += 0.35
    assert [limiter.check("/r") == 0.0 for _ in range(4)] == [True, True, True, False]
    now[0] += 100
    assert sum(limiter.check("/r") == 0.0 for _ in range(10)) == 5, "never more than the burst"
    assert limiter.check("/unknown") == 0.0


def test_names_labels_and_buckets_are_what_the_canary_and_slo_rules_query(mount: Mount, registry):
    doc = copy.deepcopy(FULL)
    doc["slo"]["p99LatencyMs"] = 120
    mount.publish(doc)
    source = ContractSource(mount.root)
    app = app_for(source, registry)
    asyncio.run(burst(app, "/api/v1/risk/x", 3))
    asyncio.run(burst(app, "/boom", 2))
    asyncio.run(burst(app, "/healthz", 4))
    assert sample(registry, "http_requests_total", method="GET", route="/api/v1/risk", code="200") == 3
    assert sample(registry, "http_requests_total", method="GET", route="other", code="500") == 2, (
        "an exception is a 500"
    )
    assert sample(registry, "http_requests_total", method="GET", route="other", code="200") == 0, (
        "probes are not traffic"
    )
    bucket = sample(registry, "http_request_duration_seconds_bucket", method="GET", route="/api/v1/risk", le="0.12")
    assert bucket == 3, "a bucket ends at the objective"
    assert 0.12 in buckets_for(source.current) and 0.096 in buckets_for(source.current)
    exposed = asyncio.run(burst(app, "/metrics/", 1))[0].text
    assert 'http_request_duration_seconds_bucket{le="0.12",method="GET",route="/api/v1/risk"} 3.0' in exposed


def test_requests_in_flight_while_the_contract_swaps_never_fail(mount: Mount, registry):
    """The kubelet swaps versions (limits up and down, a route removed and back) under a checker thread while
    requests run: every response is a 200 or a 429, none an error."""
    import threading

    mount.publish(limits(5, 5))
    source = ContractSource(mount.root)
    app = app_for(source, registry)
    stop = threading.Event()

    def kubelet_and_checker():
        versions = [limits(5, 5), limits(1000, 1000), limits(0, 0), copy.deepcopy(FULL) | {"rateLimits": []}]
        i = 0
        while not stop.is_set():
            mount.publish(versions[i % len(versions)])
            source.check()
            i += 1

    swapper = threading.Thread(target=kubelet_and_checker)
    swapper.start()
    try:
        responses = asyncio.run(burst(app, "/api/v1/metrics", 400))
    finally:
        stop.set()
        swapper.join(timeout=10)
    assert set(codes(responses)) <= {200, 429}, codes(responses)
