"""Which contract route a request belongs to: the label the rate limiter, the metrics and the operator's traffic
queries (``route="..."``) must agree on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .contract import ContractSource

#: The ``route`` label of a request no contract route matches (one series, however many paths).
UNMATCHED = "other"

Resolver = Callable[[dict[str, Any]], str]


def prefix_resolver(source: ContractSource) -> Resolver:
    """The contract route a path falls under: the longest route that is the path or a prefix of it ending at a
    ``/`` boundary (``/api/v1/risk`` covers ``/api/v1/risk/abc``, not ``/api/v1/riskier``). Routes that are not
    paths (a route name) never match a path: pass your own resolver for those."""

    def resolve(scope: dict[str, Any]) -> str:
        path = scope.get("path", "")
        best = ""
        for limit in source.current.rate_limits:
            route = limit.route
            if not route.startswith("/") or len(route) <= len(best):
                continue
            if path == route or path.startswith(route.rstrip("/") + "/"):
                best = route
        return best or UNMATCHED

    return resolve
