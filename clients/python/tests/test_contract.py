"""Parsing, validation, versions, and reloads while readers run."""

from __future__ import annotations

import copy
import json
import logging
import threading

import pytest

from perf_client import Contract, ContractError, ContractSource, RouteLimit, UnsupportedVersion, parse

from conftest import FULL, Mount


def with_(path: str, value: object) -> dict:
    """FULL with one field replaced (``a.b.0.c``); the value ``...`` deletes it."""
    doc = copy.deepcopy(FULL)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return doc


def test_a_full_contract_reads_as_written():
    c = parse(json.dumps(FULL))
    assert (c.version, c.slo.p99_latency_ms, c.slo.error_rate_percent) == (1, 150, 0.1)
    assert c.ttl("riskModel") == 3600 and c.ttl("metrics") == 300
    assert c.redis.password_secret == ("shop-redis", "password")
    assert c.pool("postgres").min == 5 and c.pool("postgres").max == 20 and c.pool("nope") is None
    assert c.limit("/api/v1/metrics") == RouteLimit("/api/v1/metrics", 10, 20)
    assert len(c.checksum) == 64


def test_sections_are_optional_and_a_minimal_contract_is_only_a_version():
    c = parse('{"version": 1}')
    assert (c.slo, c.redis, dict(c.ttl_seconds), dict(c.pools), c.rate_limits) == (None, None, {}, {}, ())


@pytest.mark.parametrize(
    "doc, field",
    [
        (with_("cache.ttlSeconds.metrics", -1), "cache.ttlSeconds.metrics"),
        (with_("cache.ttlSeconds.metrics", "300"), "cache.ttlSeconds.metrics"),
        (with_("cache.ttlSeconds.metrics", 1.5), "cache.ttlSeconds.metrics"),
        (with_("cache.redis.address", ""), "cache.redis.address"),
        (with_("cache.redis", ...), "cache"),
        (with_("cache.redis.passwordSecret", {"name": "s"}), "cache.redis.passwordSecret"),
        (with_("pools.postgres.max", 0), "pools.postgres.max"),
        (with_("pools.postgres", {"min": 1}), "pools.postgres"),
        (with_("pools.mysql", {"min": 1, "max": 2}), "pools"),
        (with_("rateLimits.0.requestsPerSecond", -5), "rateLimits.0.requestsPerSecond"),
        (with_("rateLimits.0.route", ""), "rateLimits.0.route"),
        (with_("rateLimits.1", ...) | {"rateLimits": {"route": "/x"}}, "rateLimits"),
        (with_("slo.p99LatencyMs", 0), "slo.p99LatencyMs"),
        (with_("slo.errorRatePercent", 0), "slo.errorRatePercent"),
        (with_("cache.admit", {"metrics": "no"}), "cache.admit.metrics"),
    ],
)
def test_a_bad_field_is_refused_naming_it(doc, field):
    with pytest.raises(ContractError) as refused:
        parse(json.dumps(doc))
    assert f"perf.json: {field}:" in str(refused.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"v1"', "\xff\xfe", "{" * 10 + "}" * 10])
def test_what_is_not_a_contract_object_is_refused(text):
    with pytest.raises(ContractError):
        parse(text.encode("latin-1"))


@pytest.mark.parametrize("version", [2, 0, "1", None, True, 1.5])
def test_a_version_this_client_does_not_read_is_refused_before_anything_else(version):
    doc = with_("version", version) | {"somethingNew": {"x": 1}}
    with pytest.raises(UnsupportedVersion) as refused:
        parse(json.dumps(doc))
    assert "reads version 1" in str(refused.value)


def test_properties_a_newer_operator_adds_are_read_past_with_a_warning(caplog):
    doc = FULL | {"tracing": {"sampleRatio": 0.1}}
    doc["cache"] = doc["cache"] | {"cluster": True}
    with caplog.at_level(logging.WARNING, logger="perf_client"):
        c = parse(json.dumps(doc))
    assert c.ttl("query") == 1800
    assert "tracing" in caplog.text and "cluster" in caplog.text


def test_a_class_the_app_asks_for_that_the_contract_lacks_is_an_error_and_admit_false_is_none():
    c = parse(json.dumps(with_("cache.admit", {"metrics": False})))
    assert c.ttl("metrics") is None and c.ttl("query") == 1800, "a class missing from admit is admitted"
    with pytest.raises(KeyError, match="riskmodel"):
        c.ttl("riskmodel")


def test_redis_urls_for_provisioned_and_external_servers():
    c = parse(json.dumps(FULL))
    assert c.redis.url() == "redis://127.0.0.1:6379"
    assert c.redis.url("p@ss/w:rd") == "redis://:p%40ss%2Fw%3Ard@127.0.0.1:6379"
    external = parse(json.dumps(with_("cache.redis.address", "rediss://cache.example:6380/2")))
    assert external.redis.url("ignored") == "rediss://cache.example:6380/2"


def test_a_swapped_contract_is_picked_up_and_listeners_hear_of_it(mount: Mount):
    source = ContractSource(mount.root)
    heard: list[tuple[Contract, Contract]] = []
    source.subscribe(lambda old, new: heard.append((old, new)))
    assert not source.check(), "nothing changed"
    mount.publish(with_("cache.ttlSeconds.metrics", 60))
    assert source.check()
    assert source.current.ttl("metrics") == 60
    assert [(o.ttl("metrics"), n.ttl("metrics")) for o, n in heard] == [(300, 60)]
    mount.publish(with_("cache.ttlSeconds.metrics", 60))
    assert not source.check(), "the same content again is no change"


def test_a_bad_new_version_keeps_the_last_good_one(mount: Mount, caplog):
    source = ContractSource(mount.root)
    good = source.current
    for bad in ['{"version": 1, "pools": {"postgres": {"min": 1, "max": 0}}}', '{"version": 2}', "not json"]:
        mount.publish(bad)
        with caplog.at_level(logging.ERROR, logger="perf_client"):
            assert not source.check()
        assert source.current is good
    assert source.refused == 3 and "not JSON" in source.last_error
    assert not source.check(), "the same bad version is reported once"
    assert source.refused == 3
    mount.publish(FULL | {"pools": {"postgres": {"min": 1, "max": 2}}})
    assert source.check() and source.current.pool("postgres").max == 2


def test_an_unreadable_mount_at_start_is_an_error_and_later_keeps_the_contract(tmp_path):
    with pytest.raises(OSError):
        ContractSource(tmp_path)
    (tmp_path / "m").mkdir()
    m = Mount(tmp_path / "m")
    m.publish(FULL)
    source = ContractSource(m.root)
    (m.root / "..data").unlink()
    assert not source.check() and source.current.ttl("query") == 1800


def test_readers_never_see_a_torn_contract_while_versions_swap(mount: Mount):
    """Requests in flight read `source.current` while the kubelet swaps versions under a polling checker."""
    source = ContractSource(mount.root)
    stop, problems, seen = threading.Event(), [], set()

    def reader():
        while not stop.is_set():
            c = source.current
            # Every version keeps metrics TTL == 10 x the postgres max: a mix of two versions breaks it.
            ttl, pool = c.ttl("metrics"), c.pool("postgres").max
            if ttl != pool * 10 and ttl != 300:
                problems.append((ttl, pool))
            seen.add(ttl)

    def checker():
        while not stop.is_set():
            source.check()

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=checker)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 200):
            doc = with_("cache.ttlSeconds.metrics", i * 10)
            doc["pools"]["postgres"]["max"] = i
            mount.publish(doc)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    source.check()
    assert problems == []
    assert source.current.ttl("metrics") == 1990
    assert len(seen) > 2, "the readers saw the versions change"
