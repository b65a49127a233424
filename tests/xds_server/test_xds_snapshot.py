"""Snapshot building, per-resource versions, packing reuse, diff and watch."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from xds_server_helpers import cluster, endpoints, listener, resource_set, route_config, run

from egobs.xds.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    TYPE_URLS,
    ResourceSet,
    resource_version,
)
from egobs.xds.snapshot import SnapshotCache, TypeDiff, combined_version, diff

GW = "default/gw"


def base() -> ResourceSet:
    return resource_set(
        listeners=[listener("l", 10080)],
        routes=[route_config(body="one")],
        clusters=[cluster("a"), cluster("b")],
        cla=[endpoints("a", 1001), endpoints("b", 1002)],
    )


def test_versions_are_content_hashes() -> None:
    rs = base()
    snap = SnapshotCache().set_snapshot(GW, rs, context="ctx")
    assert snap.node_cluster == GW and snap.context == "ctx"
    assert list(snap.resources) == list(TYPE_URLS)
    assert snap.resources[SECRET_TYPE] == {}
    for name, msg in rs.clusters.items():
        packed = snap.resources[CLUSTER_TYPE][name]
        assert packed.version == resource_version(msg)
        assert packed.resource.type_url == CLUSTER_TYPE
    assert snap.type_versions[CLUSTER_TYPE] == combined_version(snap.versions(CLUSTER_TYPE).items())
    # Another cache, equal but distinct messages: same versions everywhere.
    again = SnapshotCache().set_snapshot(GW, base())
    assert again.version == snap.version
    assert dict(again.type_versions) == dict(snap.type_versions)


def test_snapshot_is_read_only() -> None:
    snap = SnapshotCache().set_snapshot(GW, base())
    with pytest.raises(TypeError):
        snap.resources[CLUSTER_TYPE]["x"] = snap.resources[CLUSTER_TYPE]["a"]  # type: ignore[index]
    with pytest.raises(TypeError):
        snap.resources[CLUSTER_TYPE] = {}  # type: ignore[index]
    with pytest.raises(AttributeError):
        snap.version = "x"  # type: ignore[misc]


def test_unchanged_message_objects_are_not_packed_again() -> None:
    cache = SnapshotCache()
    rs1 = base()
    s1 = cache.set_snapshot(GW, rs1)
    # Same objects except one new route object: only that one is packed anew.
    rs2 = ResourceSet(
        listeners=rs1.listeners,
        routes={"rc": route_config(body="two")},
        clusters=rs1.clusters,
        endpoints=rs1.endpoints,
    )
    s2 = cache.set_snapshot(GW, rs2)
    for t in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE):
        for name, packed in s2.resources[t].items():
            assert packed is s1.resources[t][name]
    assert s2.resources[ROUTE_TYPE]["rc"].version != s1.resources[ROUTE_TYPE]["rc"].version
    # An equal but new object is serialized again and gets the same version.
    rs3 = ResourceSet(
        listeners={"l": listener("l", 10080)},
        routes=rs2.routes,
        clusters=rs1.clusters,
        endpoints=rs1.endpoints,
    )
    s3 = cache.set_snapshot(GW, rs3)
    assert s3.resources[LISTENER_TYPE]["l"] is not s2.resources[LISTENER_TYPE]["l"]
    assert s3.resources[LISTENER_TYPE]["l"].version == s2.resources[LISTENER_TYPE]["l"].version
    assert s3.version == s2.version


def test_a_type_is_carried_over_only_when_every_message_is_the_same_object() -> None:
    cache = SnapshotCache()
    rs1 = base()
    s1 = cache.set_snapshot(GW, rs1)
    # Same names, same count, one different object with other content: not carried over.
    clusters = dict(rs1.clusters)
    other = cluster("b")
    other.connect_timeout.seconds = 7
    clusters["b"] = other
    s2 = cache.set_snapshot(GW, dataclasses.replace(rs1, clusters=clusters))
    assert s2.resources[CLUSTER_TYPE]["a"] is s1.resources[CLUSTER_TYPE]["a"]
    assert s2.resources[CLUSTER_TYPE]["b"].version != s1.resources[CLUSTER_TYPE]["b"].version
    assert s2.type_versions[CLUSTER_TYPE] != s1.type_versions[CLUSTER_TYPE]
    assert s2.resources[ENDPOINT_TYPE] is s1.resources[ENDPOINT_TYPE]
    # Back to the first objects: the first versions again.
    s3 = cache.set_snapshot(GW, rs1)
    assert dict(s3.type_versions) == dict(s1.type_versions)


def test_pack_cache_is_per_key_and_forgets_old_messages() -> None:
    cache = SnapshotCache()
    rs = base()
    a = cache.set_snapshot("ns/a", rs)
    b = cache.set_snapshot("ns/b", rs)
    assert a.resources[CLUSTER_TYPE]["a"].version == b.resources[CLUSTER_TYPE]["a"].version
    cache.set_snapshot("ns/a", ResourceSet())
    assert all(packed == {} for packed in cache._packed["ns/a"].values())
    cache.delete("ns/a")
    assert cache.get("ns/a") is None and "ns/a" not in cache._packed
    assert "ns/a" not in cache._given
    assert set(cache.snapshots()) == {"ns/b"}


def test_wrong_type_is_rejected() -> None:
    rs = ResourceSet(clusters={"l": listener("l", 10080)})  # type: ignore[dict-item,unused-ignore]
    with pytest.raises(TypeError, match="Listener"):
        SnapshotCache().set_snapshot(GW, rs)


def test_diff() -> None:
    cache = SnapshotCache()
    s1 = cache.set_snapshot(GW, base())
    rs2 = resource_set(
        listeners=[listener("l", 10080)],
        routes=[route_config(body="one")],
        clusters=[cluster("a"), cluster("c")],
        cla=[endpoints("a", 1009), endpoints("c", 1003)],
    )
    s2 = cache.set_snapshot(GW, rs2)
    assert diff(s1, s2) == {
        CLUSTER_TYPE: TypeDiff(frozenset({"c"}), frozenset({"b"})),
        ENDPOINT_TYPE: TypeDiff(frozenset({"a", "c"}), frozenset({"b"})),
    }
    assert diff(s2, s2) == {}
    first = diff(None, s1)
    assert list(first) == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]
    assert first[ROUTE_TYPE] == TypeDiff(frozenset({"rc"}), frozenset())
    gone = diff(s1, None)
    assert gone[LISTENER_TYPE] == TypeDiff(frozenset(), frozenset({"l"}))
    assert not TypeDiff(frozenset(), frozenset())


def test_watch_wakes_on_set_and_delete() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        # Unknown key: waits until a snapshot appears.
        waiter = asyncio.create_task(cache.watch(GW, None))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        s1 = cache.set_snapshot(GW, base(), context=1)
        assert await asyncio.wait_for(waiter, 1) is s1
        # Already different: returns at once.
        assert await cache.watch(GW, None) is s1
        # Several watchers on one key all wake, and see the latest.
        waiters = [asyncio.create_task(cache.watch(GW, s1)) for _ in range(3)]
        await asyncio.sleep(0.01)
        s2 = cache.set_snapshot(GW, base(), context=2)
        assert [await asyncio.wait_for(w, 1) for w in waiters] == [s2, s2, s2]
        # Same content is still a new snapshot (new context).
        assert s2 is not s1 and s2.version == s1.version
        deleted = asyncio.create_task(cache.watch(GW, s2))
        await asyncio.sleep(0.01)
        cache.delete(GW)
        assert await asyncio.wait_for(deleted, 1) is None
        # Other keys are not woken.
        other = asyncio.create_task(cache.watch("ns/other", None))
        cache.set_snapshot(GW, base())
        await asyncio.sleep(0.01)
        assert not other.done()
        other.cancel()

    run(scenario())
