"""The cache against Debian's Redis: TTLs per class, hits and misses (ours and the server's, which the operator's
cache policy reads), a TTL changed without a restart, classes not admitted, Redis gone."""

from __future__ import annotations

import asyncio
import copy

import pytest
import redis.asyncio as redis

from perf_client import CacheManager, ContractSource, redis_client

from conftest import FULL, Mount


def contract_for(port: int, **ttl: int) -> dict:
    doc = copy.deepcopy(FULL)
    doc["cache"]["redis"] = {"address": f"127.0.0.1:{port}", "passwordSecret": None}
    doc["cache"]["ttlSeconds"].update(ttl)
    return doc


def count(registry, cls: str, result: str) -> float:
    return registry.get_sample_value("perf_cache_requests_total", {"class": cls, "result": result}) or 0.0


def run(coro):
    return asyncio.run(coro)


def test_each_class_is_stored_with_its_ttl_and_counted(mount: Mount, redis_port: int, registry):
    mount.publish(contract_for(redis_port))
    source = ContractSource(mount.root)

    async def scenario():
        client = redis_client(source)
        await client.flushall()
        cache = CacheManager(source, client, registry=registry)
        calls = []

        @cache.cached("riskModel")
        async def risk(portfolio: str) -> dict:
            calls.append(portfolio)
            return {"portfolio": portfolio, "var": 1.5}

        assert await risk("a") == {"portfolio": "a", "var": 1.5}
        assert await risk("a") == {"portfolio": "a", "var": 1.5}
        assert await risk("b") == {"portfolio": "b", "var": 1.5}
        keys = await client.keys("perf:riskModel:*")
        ttls = [await client.ttl(k) for k in keys]
        await cache.get_or_compute("metrics", "m", lambda: asyncio.sleep(0, "v"))
        metrics_ttl = await client.ttl("perf:metrics:m")
        info = await client.info("stats")
        await client.aclose()
        return calls, ttls, metrics_ttl, info

    calls, ttls, metrics_ttl, info = run(scenario())
    assert calls == ["a", "b"], "the second call was served from Redis"
    assert len(ttls) == 2 and all(3590 <= t <= 3600 for t in ttls), ttls
    assert 290 <= metrics_ttl <= 300
    assert (count(registry, "riskModel", "hit"), count(registry, "riskModel", "miss")) == (1, 2)
    # The server's own counters, which the operator's cache policy reads (INFO keyspace_hits/misses).
    assert info["keyspace_hits"] >= 1 and info["keyspace_misses"] >= 3


def test_a_ttl_changed_in_the_contract_applies_to_the_next_write_without_a_restart(mount: Mount, redis_port, registry):
    mount.publish(contract_for(redis_port))
    source = ContractSource(mount.root)

    async def scenario():
        client = redis.Redis(port=redis_port)
        cache = CacheManager(source, client, registry=registry, prefix="t2:")
        await cache.set("query", "k1", "v")
        before = await client.ttl("t2:query:k1")
        mount.publish(contract_for(redis_port, query=45))
        assert source.check()
        await cache.set("query", "k2", "v")
        after = await client.ttl("t2:query:k2")
        await client.aclose()
        return before, after

    before, after = run(scenario())
    assert 1790 <= before <= 1800 and 40 <= after <= 45


def test_classes_not_admitted_removed_or_unknown_are_computed_not_stored(mount: Mount, redis_port, registry):
    doc = contract_for(redis_port)
    doc["cache"]["admit"] = {"metrics": False}
    mount.publish(doc)
    source = ContractSource(mount.root)
    cache = CacheManager(source, None, registry=registry)
    with pytest.raises(KeyError, match="'typo' is not in the contract"):
        cache.cached("typo")

    async def scenario():
        cache.client = redis.Redis(port=redis_port)
        await cache.client.flushall()
        calls = 0

        async def compute():
            nonlocal calls
            calls += 1
            return "v"

        for _ in range(3):
            await cache.get_or_compute("metrics", "k", compute)
        # The class removed from the profile while the app runs: computed each time, the request never fails.
        removed = copy.deepcopy(doc)
        del removed["cache"]["ttlSeconds"]["query"]
        mount.publish(removed)
        source.check()
        for _ in range(2):
            await cache.get_or_compute("query", "k", compute)
        keys = await cache.client.keys("*")
        await cache.client.aclose()
        return calls, keys

    calls, keys = run(scenario())
    assert calls == 5 and keys == []
    assert count(registry, "metrics", "bypass") == 3 and count(registry, "query", "bypass") == 2


def test_redis_unreachable_serves_computed_values_and_counts_errors(mount: Mount, registry):
    from conftest import free_port

    mount.publish(contract_for(free_port()))
    source = ContractSource(mount.root)

    async def scenario():
        client = redis_client(source, socket_connect_timeout=0.5)
        cache = CacheManager(source, client, registry=registry)

        @cache.cached("query")
        async def answer(x: int) -> int:
            return x * 2

        results = [await answer(i) for i in range(3)]
        await client.aclose()
        return results

    assert run(scenario()) == [0, 2, 4]
    assert registry.get_sample_value("perf_cache_errors_total", {"class": "query"}) == 6
    assert count(registry, "query", "bypass") == 3


def test_the_client_pool_is_capped_by_the_contract(mount: Mount, redis_port):
    mount.publish(contract_for(redis_port))
    client = redis_client(ContractSource(mount.root))
    assert client.connection_pool.max_connections == FULL["pools"]["redis"]["max"]
    run(client.aclose())


def test_pool_changes_apply_live_for_redis_and_are_flagged_for_the_rest(mount: Mount, redis_port, registry, caplog):
    from perf_client import PoolWatch

    mount.publish(contract_for(redis_port))
    source = ContractSource(mount.root)
    client = redis_client(source)
    PoolWatch(source, redis=client, registry=registry)
    pending = lambda pool: registry.get_sample_value("perf_client_pool_restart_pending", {"pool": pool})  # noqa: E731
    assert (pending("postgres"), pending("redis")) == (0, 0)
    changed = contract_for(redis_port)
    changed["pools"]["postgres"]["max"] = 30
    changed["pools"]["redis"]["max"] = 9
    mount.publish(changed)
    with caplog.at_level("WARNING", logger="perf_client"):
        assert source.check()
    assert client.connection_pool.max_connections == 9, "a Redis pool takes a new maximum live"
    assert (pending("postgres"), pending("redis"), pending("clickhouse")) == (1, 0, 0)
    assert "pools.postgres is now PoolSize(min=5, max=30)" in caplog.text
    # Back to the size the pool was built with: nothing pending any more.
    mount.publish(contract_for(redis_port))
    source.check()
    assert pending("postgres") == 0
    run(client.aclose())


def test_a_password_file_is_read_at_each_connection_so_a_rotation_needs_no_restart(
    mount: Mount, redis_port, monkeypatch
):
    mount.publish(contract_for(redis_port))
    secret = mount.root / "password"
    secret.write_text("first\n")
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(secret))

    async def scenario():
        admin = redis.Redis(port=redis_port)
        await admin.config_set("requirepass", "first")
        try:
            client = redis_client(ContractSource(mount.root))
            assert await client.ping()
            # The operator rotates: both passwords work for the grace period (an ACL user here), the file changes.
            await admin.execute_command("AUTH", "first")
            await admin.execute_command("ACL", "SETUSER", "default", "on", ">second")
            secret.write_text("second\n")
            await admin.execute_command("ACL", "SETUSER", "default", "<first")
            await client.connection_pool.disconnect()
            assert await client.ping(), "a new connection used the rotated password"
            await client.aclose()
        finally:
            await admin.execute_command("ACL", "SETUSER", "default", "resetpass", "nopass")
            await admin.aclose()

    run(scenario())
