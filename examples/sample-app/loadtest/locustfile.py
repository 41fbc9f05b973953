"""The seed's load shapes against the sample app, scaled to a small machine (run headless with -u/-t bounds):

- Baseline: readers across many portfolios, metrics and queries, as everyday traffic (a cold, wide key space).
- CacheValidation: a few hot portfolios and queries read over and over: what the TTL classes are for.
- Stress: everything at once, no think time: where the rate limits start answering 429.

Name the shape on the command line (`locust -f locustfile.py ... Baseline`). A 429 is the rate limit doing its job,
not a failure of the app: it counts as a success here and shows in the app's `http_requests_total{code="429"}`.
"""

import random

from locust import HttpUser, between, constant, task

PORTFOLIOS = 500


def get(user: HttpUser, path: str, name: str) -> None:
    with user.client.get(path, name=name, catch_response=True) as response:
        if response.status_code == 429:
            response.success()


class Baseline(HttpUser):
    wait_time = between(0.05, 0.15)

    @task(6)
    def risk(self) -> None:
        get(self, f"/api/v1/risk/p{random.randrange(PORTFOLIOS)}", "/api/v1/risk/[p]")

    @task(3)
    def metric(self) -> None:
        get(self, f"/api/v1/metrics/m{random.randrange(50)}", "/api/v1/metrics/[m]")

    @task(1)
    def query(self) -> None:
        get(self, f"/api/v1/query?q=q{random.randrange(100)}", "/api/v1/query")


class CacheValidation(HttpUser):
    wait_time = between(0.02, 0.05)

    @task(3)
    def hot_risk(self) -> None:
        get(self, f"/api/v1/risk/hot{random.randrange(5)}", "/api/v1/risk/[p]")

    @task(1)
    def hot_metric(self) -> None:
        get(self, f"/api/v1/metrics/hot{random.randrange(3)}", "/api/v1/metrics/[m]")


class Stress(HttpUser):
    wait_time = constant(0)

    @task(3)
    def risk(self) -> None:
        get(self, f"/api/v1/risk/p{random.randrange(50)}", "/api/v1/risk/[p]")

    @task(2)
    def metric(self) -> None:
        get(self, f"/api/v1/metrics/m{random.randrange(10)}", "/api/v1/metrics/[m]")
