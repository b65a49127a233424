"""Incremental (delta) ADS against an in-process gRPC client playing Envoy."""

from __future__ import annotations

from testkit import wait_until_async as wait_until
from xds_server_helpers import (
    DeltaClient,
    Recorder,
    acked,
    cluster,
    delta_names,
    endpoints,
    listener,
    proxy,
    resource_set,
    route_config,
    run,
    running,
)

from egobs.xds.resources import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, ResourceSet
from egobs.xds.snapshot import SnapshotCache

GW = "default/gw"
C, E, L, R = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE


def three_clusters(a_port: int = 1001, b_port: int = 1002, body: str = "one") -> ResourceSet:
    return resource_set(
        listeners=[listener("l", 10080)],
        routes=[route_config(body=body)],
        clusters=[cluster("a"), cluster("b"), cluster("c")],
        cla=[endpoints("a", a_port), endpoints("b", b_port), endpoints("c", 1003)],
    )


def routed(to: str, vhost: str = "all") -> ResourceSet:
    rc = route_config(cluster=to)
    rc.virtual_hosts[0].name = vhost
    return resource_set(
        listeners=[listener("l", 10080)],
        routes=[rc],
        clusters=[cluster(to)],
        cla=[endpoints(to, 2000)],
    )


async def sync(client: DeltaClient, eds: list[str], rds: list[str] = ["rc"]) -> None:  # noqa: B006
    for type_url, names in ((C, []), (E, eds), (L, []), (R, rds)):
        await client.send(type_url, names)
        resp = await client.recv()
        assert resp.type_url == type_url
        await client.ack(resp)


def test_initial_sync_and_only_changed_resources() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        snap = cache.set_snapshot(GW, three_clusters(), context="c1")
        rec = Recorder()
        async with running(cache, rec) as server:
            client = DeltaClient(server.port, GW)
            await client.send(C)
            cds = await client.recv()
            assert delta_names(cds) == ["a", "b", "c"] and list(cds.removed_resources) == []
            assert cds.system_version_info == snap.version
            assert [r.version for r in cds.resources] == [
                snap.resources[C][n].version for n in ("a", "b", "c")
            ]
            await client.send(E, ["a", "b"])  # before the CDS ACK: served at once
            eds = await client.recv()
            assert delta_names(eds) == ["a", "b"]
            await client.send(L)  # waits for the CDS and EDS ACKs
            await client.expect_nothing()
            await client.ack(cds)
            await client.ack(eds)
            lds = await client.recv()
            assert lds.type_url == L
            await client.ack(lds)
            await client.send(R, ["rc"])
            await client.ack(await client.recv())
            assert proxy(server, GW).delta
            await wait_until(lambda: acked(server, snap, (C, L, R)), "ACKs")
            # Only the changed endpoint is pushed; c is not subscribed, so not pushed either.
            cache.set_snapshot(GW, three_clusters(a_port=1111))
            eds2 = await client.recv()
            assert delta_names(eds2) == ["a"] and list(eds2.removed_resources) == []
            await client.ack(eds2)
            await client.expect_nothing()
            assert [e[1] for e in rec.of("push")] == [C, E, L, R, E]
            assert rec.of("push")[-1][3] == 1  # resource count

    run(scenario())


def test_reconnect_with_initial_versions_resends_only_differences() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        snap = cache.set_snapshot(GW, three_clusters())
        versions = {t: snap.versions(t) for t in (C, E, L, R)}
        async with running(cache) as server:
            client = DeltaClient(server.port, GW)
            await client.send(C, initial=versions[C])
            await client.send(E, ["a", "b"], initial={"a": versions[E]["a"], "b": "old"})
            await client.send(L, initial=versions[L])
            eds = await client.recv()
            assert eds.type_url == E and delta_names(eds) == ["b"]
            await client.ack(eds)
            await client.expect_nothing()
            await wait_until(lambda: acked(server, snap, (C, L)), "versions adopted")
            # What the proxy says it holds but the snapshot lacks is removed, once its
            # listeners (which may still route to it) are known to be in their final state.
            other = DeltaClient(server.port, GW, node_id="envoy-2")
            await other.send(C, initial={**versions[C], "gone": "x"})
            await other.expect_nothing()
            await other.send(L, initial=versions[L])
            cds = await other.recv()
            assert delta_names(cds) == [] and list(cds.removed_resources) == ["gone"]
            await client.close()
            await other.close()

    run(scenario())


def test_nonces_nack_and_stale_requests() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, three_clusters(), context="c1")
        rec = Recorder()
        async with running(cache, rec) as server:
            client = DeltaClient(server.port, GW)
            await client.send(C)
            await client.ack(await client.recv())
            await client.send(E, ["a"])
            first = await client.recv()
            st = proxy(server, GW).types[E]
            # A stale nonce is no ACK, but its subscription still counts.
            await client.send(E, ["b"], nonce="stale")
            await client.send(E, nonce="stale", error="no")
            await client.expect_nothing()
            assert st.acked_version is None and st.nack_message is None
            await client.ack(first)
            then = await client.recv()
            assert delta_names(then) == ["b"]
            await client.ack(then)
            await wait_until(lambda: len(rec.of("ack")) == 3, "third ACK")
            # Rejected versions are not sent again; the proxy keeps the old ones.
            good = st.acked_version
            cache.set_snapshot(GW, three_clusters(a_port=2001, b_port=2002), context="c2")
            bad = await client.recv()
            assert delta_names(bad) == ["a", "b"]
            await client.send(E, nonce=bad.nonce, error="invalid endpoints")
            await wait_until(lambda: st.nack_message == "invalid endpoints", "NACK")
            assert st.acked_version == good and st.nack_version != good
            assert rec.of("nack")[-1][-1] == "c2"
            await client.expect_nothing()
            # Another change to a: only a goes out; b's rejected version stays back.
            cache.set_snapshot(GW, three_clusters(a_port=3001, b_port=2002))
            fix = await client.recv()
            assert delta_names(fix) == ["a"]
            await client.ack(fix)
            # Unsubscribed names are neither pushed nor removed.
            await wait_until(lambda: len(rec.of("ack")) == 4, "fourth ACK")
            held = st.acked_version
            await client.send(E, unsubscribe=["a"])
            await wait_until(lambda: st.acked_version != held, "unsubscribed")
            cache.set_snapshot(GW, three_clusters(a_port=4001, b_port=2002))
            await client.expect_nothing()

    run(scenario())


def test_empty_wildcard_is_answered() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, ResourceSet())
        async with running(cache) as server:
            client = DeltaClient(server.port, GW)
            await client.send(C)
            cds = await client.recv()
            assert delta_names(cds) == [] and cds.nonce
            await client.ack(cds)
            await client.send(R, ["missing"])
            await client.expect_nothing()

    run(scenario())


def test_cluster_switch_removes_last() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, routed("a"))
        rec = Recorder()
        async with running(cache, rec) as server:
            client = DeltaClient(server.port, GW)
            await sync(client, ["a"])
            rec.events.clear()
            snap = cache.set_snapshot(GW, routed("b"))
            cds = await client.recv()
            assert delta_names(cds) == ["b"] and list(cds.removed_resources) == []
            await client.send(E, ["b"])
            await client.ack(cds)
            eds = await client.recv()
            assert delta_names(eds) == ["b"] and list(eds.removed_resources) == []
            await client.ack(eds)
            rds = await client.recv()
            assert rds.type_url == R and delta_names(rds) == ["rc"]
            await client.ack(rds)
            removal = await client.recv()
            assert removal.type_url == C
            assert delta_names(removal) == [] and list(removal.removed_resources) == ["a"]
            await client.ack(removal)
            # This client kept its subscription to a's endpoints: they go last.
            eds_removal = await client.recv()
            assert eds_removal.type_url == E and list(eds_removal.removed_resources) == ["a"]
            await client.ack(eds_removal)
            await client.expect_nothing()
            assert [e[1] for e in rec.of("push")] == [C, E, R, C, E]
            await wait_until(lambda: acked(server, snap), "converged")

    run(scenario())


def test_nacked_routes_keep_the_old_cluster() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, routed("a"))
        async with running(cache) as server:
            client = DeltaClient(server.port, GW)
            await sync(client, ["a"])
            cache.set_snapshot(GW, routed("b"))
            cds = await client.recv()
            await client.send(E, ["b"])
            await client.ack(cds)
            await client.ack(await client.recv())
            rds = await client.recv()
            await client.send(R, nonce=rds.nonce, error="rejected")
            await client.expect_nothing()
            snap = cache.set_snapshot(GW, routed("b", vhost="fixed"))
            rds2 = await client.recv()
            assert rds2.type_url == R
            # Envoy drops a's endpoints with the cluster: no EDS removal needed then.
            await client.ack(rds2)
            removal = await client.recv()
            assert list(removal.removed_resources) == ["a"]
            await client.send(E, unsubscribe=["a"])
            await client.ack(removal)
            await client.expect_nothing()
            await wait_until(lambda: acked(server, snap), "converged")

    run(scenario())


def test_an_updated_cluster_gets_its_unchanged_endpoints_again() -> None:
    """Envoy re-creates a cluster whose definition changed and keeps it warming until its
    ClusterLoadAssignment arrives, which in delta it does not ask for again: the server
    sends it unasked (only for the clusters that changed)."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, three_clusters())
        async with running(cache) as server:
            client = DeltaClient(server.port, GW)
            await sync(client, ["a", "b", "c"])
            changed = three_clusters()
            changed.clusters["b"].connect_timeout.seconds = 7
            cache.set_snapshot(GW, changed)
            cds = await client.recv()
            assert cds.type_url == C and delta_names(cds) == ["b"]
            eds = await client.recv()  # before the CDS ACK, which Envoy holds back meanwhile
            assert eds.type_url == E and delta_names(eds) == ["b"]
            await client.ack(eds)
            await client.ack(cds)
            await client.expect_nothing()

    run(scenario())


def test_an_updated_cluster_gets_its_endpoints_even_when_they_were_in_flight() -> None:
    """The cluster changes while an update of its endpoints waits for its ACK: Envoy ACKs
    that update for the old cluster, then re-creates the cluster, which needs them again."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, three_clusters())
        async with running(cache) as server:
            client = DeltaClient(server.port, GW)
            await sync(client, ["a", "b", "c"])
            cache.set_snapshot(GW, three_clusters(b_port=2002))
            eds = await client.recv()
            assert eds.type_url == E and delta_names(eds) == ["b"]
            changed = three_clusters(b_port=2002)
            changed.clusters["b"].connect_timeout.seconds = 7
            cache.set_snapshot(GW, changed)
            cds = await client.recv()
            assert cds.type_url == C and delta_names(cds) == ["b"]
            await client.ack(eds)
            again = await client.recv()
            assert again.type_url == E and delta_names(again) == ["b"]
            await client.ack(again)
            await client.ack(cds)
            await client.expect_nothing()

    run(scenario())
