"""The snapshot cache's whole-type carry-over: always what a fresh cache says."""

from __future__ import annotations

import dataclasses
import random

from xds_server_helpers import cluster, endpoints, listener, route_config

from egobs.xds.resources import CLUSTER_TYPE, ROUTE_TYPE, TYPE_URLS, ResourceSet, resource_version
from egobs.xds.snapshot import Snapshot, SnapshotCache


def _assert_fresh(snap: Snapshot, rs: ResourceSet) -> None:
    fresh = SnapshotCache().set_snapshot(snap.node_cluster, rs)
    assert snap.version == fresh.version
    assert dict(snap.type_versions) == dict(fresh.type_versions)
    for type_url in TYPE_URLS:
        assert snap.versions(type_url) == fresh.versions(type_url), type_url
        assert {n: p.resource.SerializeToString() for n, p in snap.resources[type_url].items()} == {
            n: p.resource.SerializeToString() for n, p in fresh.resources[type_url].items()
        }


def test_one_resource_set_for_two_node_clusters_then_one_deleted() -> None:
    cache = SnapshotCache()
    rs = ResourceSet(
        listeners={"l": listener("l", 10080)},
        routes={"rc": route_config(body="one")},
        clusters={"a": cluster("a")},
        endpoints={"a": endpoints("a", 1001)},
    )
    a1 = cache.set_snapshot("ns/a", rs)
    b1 = cache.set_snapshot("ns/b", rs)
    _assert_fresh(a1, rs)
    _assert_fresh(b1, rs)
    changed = dataclasses.replace(rs, routes={"rc": route_config(body="two")})
    a2 = cache.set_snapshot("ns/a", changed)
    _assert_fresh(a2, changed)
    # ns/b still serves its own snapshot; its next one with the first set carries everything.
    assert cache.get("ns/b") is b1
    b2 = cache.set_snapshot("ns/b", rs)
    assert all(b2.resources[t] is b1.resources[t] for t in TYPE_URLS)
    cache.delete("ns/a")
    # After a delete nothing is carried over from before it.
    a3 = cache.set_snapshot("ns/a", changed)
    assert a3.resources[ROUTE_TYPE] is not a2.resources[ROUTE_TYPE]
    _assert_fresh(a3, changed)


def test_empty_types_and_types_becoming_empty() -> None:
    cache = SnapshotCache()
    empty = ResourceSet()
    s1 = cache.set_snapshot("k", empty)
    _assert_fresh(s1, empty)
    s2 = cache.set_snapshot("k", ResourceSet())
    assert s2.version == s1.version
    rs = ResourceSet(clusters={"a": cluster("a")})
    _assert_fresh(cache.set_snapshot("k", rs), rs)
    _assert_fresh(cache.set_snapshot("k", empty), empty)


def test_same_objects_under_swapped_names_are_not_carried_over() -> None:
    a, b = cluster("a"), cluster("b")
    cache = SnapshotCache()
    cache.set_snapshot("k", ResourceSet(clusters={"x": a, "y": b}))
    swapped = ResourceSet(clusters={"x": b, "y": a})
    snap = cache.set_snapshot("k", swapped)
    assert snap.versions(CLUSTER_TYPE) == {"x": resource_version(b), "y": resource_version(a)}
    _assert_fresh(snap, swapped)


def test_resource_set_dicts_mutated_after_set_are_not_taken_as_unchanged() -> None:
    """The cache compares against its own copy of the name -> message maps."""
    cache = SnapshotCache()
    clusters = {"a": cluster("a")}
    rs = ResourceSet(clusters=clusters)
    cache.set_snapshot("k", rs)
    clusters["b"] = cluster("b")
    _assert_fresh(cache.set_snapshot("k", rs), rs)


def test_random_series_equals_a_fresh_cache() -> None:
    rng = random.Random(1)
    pool = {
        "clusters": [cluster(f"c{i % 4}") for i in range(8)],
        "endpoints": [endpoints(f"c{i % 4}", 1000 + i) for i in range(8)],
        "listeners": [listener(f"l{i % 3}", 10000 + i) for i in range(6)],
        "routes": [route_config(f"r{i % 3}", body=str(i)) for i in range(6)],
    }

    def random_set() -> ResourceSet:
        kw = {}
        for kind, msgs in pool.items():
            d = {}
            for m in rng.sample(msgs, rng.randrange(len(msgs) + 1)):
                d[getattr(m, "name", None) or m.cluster_name] = m
            if d and rng.random() < 0.2:
                d["dup"] = next(iter(d.values()))  # one object under two names
            kw[kind] = d
        return ResourceSet(**kw)

    cache = SnapshotCache()
    last: dict[str, ResourceSet] = {}
    for _ in range(600):
        key = rng.choice(["a", "b", "c"])
        op = rng.randrange(5)
        if op == 0:
            cache.delete(key)
            last.pop(key, None)
            continue
        if op == 1 and last:
            rs = rng.choice(list(last.values()))  # another node cluster's set
        elif op == 2 and key in last:
            rs = last[key]
        elif op == 3 and key in last:
            rs = dataclasses.replace(last[key])
        else:
            rs = random_set()
        snap = cache.set_snapshot(key, rs)
        _assert_fresh(snap, rs)
        last[key] = rs
        for type_url, packed in cache._packed[key].items():
            assert len(packed) <= len(rs.by_type()[type_url])
    assert set(cache._packed) == set(cache._given) == set(cache.snapshots())
