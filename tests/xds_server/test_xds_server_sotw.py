"""State-of-the-world ADS against an in-process gRPC client playing Envoy."""

from __future__ import annotations

import grpc
from testkit import wait_until_async as wait_until
from xds_server_helpers import (
    Recorder,
    SotwClient,
    acked,
    cluster,
    endpoints,
    listener,
    names_of,
    proxy,
    resource_set,
    route_config,
    run,
    running,
    secret,
)

from egobs.xds.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    ResourceSet,
)
from egobs.xds.server import NACK_MESSAGE_LIMIT
from egobs.xds.snapshot import SnapshotCache

GW = "default/gw"
C, E, L, R, S = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE


def two_clusters(body: str = "one", a_port: int = 1001) -> ResourceSet:
    return resource_set(
        listeners=[listener("l", 10080)],
        routes=[route_config(body=body)],
        clusters=[cluster("a"), cluster("b")],
        cla=[endpoints("a", a_port), endpoints("b", 1002)],
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


class Envoyish(SotwClient):
    """Remembers, like Envoy, the names and nonce last received per type."""

    def __init__(self, port: int, cluster: str, node_id: str = "envoy-1") -> None:
        super().__init__(port, cluster, node_id)
        self.last_names: dict[str, list[str]] = {}
        self.nonces: dict[str, str] = {}


async def sync(client: Envoyish) -> dict[str, str]:
    """The Envoy startup dance for all four types; returns the ACKed versions."""
    versions = {}
    for type_url in (C, E, L, R):
        names: list[str] = {E: sorted(client.last_names.get(C, [])), R: ["rc"]}.get(type_url, [])
        await client.send(type_url, names)
        resp = await client.recv()
        assert resp.type_url == type_url
        client.last_names[type_url] = names_of(resp.resources)
        client.nonces[type_url] = resp.nonce
        await client.ack(resp, names)
        versions[type_url] = resp.version_info
    return versions


def test_initial_sync_order_and_status() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        snap = cache.set_snapshot(GW, two_clusters(), context="c1")
        rec = Recorder()
        async with running(cache, rec) as server:
            client = Envoyish(server.port, GW)
            await client.send(C)
            cds = await client.recv()
            assert names_of(cds.resources) == ["a", "b"]
            assert cds.version_info == snap.type_versions[C]
            # Envoy asks for endpoints before it ACKs CDS (and holds that ACK until new
            # clusters have them): EDS goes out at once.
            await client.send(E, ["a", "b"])
            eds = await client.recv()
            assert eds.type_url == E and names_of(eds.resources) == ["a", "b"]
            # Listeners wait until clusters and endpoints are ACKed.
            await client.send(L)
            await client.expect_nothing()
            st = proxy(server, GW)
            assert st.node_id == "envoy-1" and not st.delta and st.connected_since > 0
            assert st.types[C].sent_version == cds.version_info
            assert st.types[C].sent_nonce == cds.nonce
            assert st.types[C].acked_version is None
            await client.ack(cds)
            await client.expect_nothing()
            await client.ack(eds, ["a", "b"])
            lds = await client.recv()
            assert lds.type_url == L
            await client.ack(lds)
            await client.send(R, ["rc"])
            rds = await client.recv()
            await client.ack(rds, ["rc"])
            await wait_until(lambda: acked(server, snap), "all ACKs")
            assert st.types[C].acked_snapshot == snap.version
            assert st.types[C].acked_at is not None and st.types[C].sent_at is not None
            await client.expect_nothing()
            assert [e[1] for e in rec.of("push")] == [C, E, L, R]
            assert [e[1] for e in rec.of("ack")] == [C, E, L, R]
            assert all(e[-1] == "c1" for e in rec.of("push") + rec.of("ack"))
            push = rec.of("push")[0]
            assert push[3] == 2 and push[4] == cds.ByteSize()
            await client.close()
            await wait_until(lambda: len(server.registry) == 0, "unregistered")
            assert rec.events[0] == ("connect", "envoy-1")
            assert rec.events[-1] == ("disconnect", "envoy-1")

    run(scenario())


def test_only_a_matching_nonce_acks_or_nacks() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters())
        rec = Recorder()
        async with running(cache, rec) as server:
            client = Envoyish(server.port, GW)
            await client.send(C)
            cds = await client.recv()
            st = proxy(server, GW).types[C]
            # A stale nonce, even with an error, is neither ACK nor NACK.
            await client.send(C, nonce="not-ours", error="boom")
            await client.send(C, nonce="not-ours")
            await client.expect_nothing()
            assert st.acked_version is None and st.nack_message is None
            await client.ack(cds)
            await wait_until(lambda: st.acked_version == cds.version_info, "ACK")
            # The same nonce again (already ACKed) is no second ACK and no NACK.
            await client.send(C, nonce=cds.nonce, error="late")
            await client.expect_nothing()
            assert st.nack_message is None
            assert len(rec.of("ack")) == 1 and rec.of("nack") == []

    run(scenario())


def test_nack_keeps_last_good_and_is_not_resent() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters(), context="c1")
        rec = Recorder()
        async with running(cache, rec) as server:
            client = Envoyish(server.port, GW)
            good = await sync(client)
            st = proxy(server, GW).types[R]
            cache.set_snapshot(GW, two_clusters(body="two"), context="c2")
            rds = await client.recv()
            assert rds.type_url == R
            huge = "é" * 5000
            await client.send(R, ["rc"], nonce=rds.nonce, version=good[R], error=huge)
            await wait_until(lambda: st.nack_message is not None, "NACK")
            assert st.acked_version == good[R]
            assert st.nack_version == rds.version_info
            assert st.nack_message is not None
            assert len(st.nack_message.encode()) <= NACK_MESSAGE_LIMIT
            assert st.nack_message.endswith("…")
            (nack,) = rec.of("nack")
            assert nack[1:3] == (R, rds.version_info) and nack[-1] == "c2"
            assert nack[3] == st.nack_message
            await client.expect_nothing()
            # A new snapshot with the same content: still nothing to resend.
            cache.set_snapshot(GW, two_clusters(body="two"), context="c3")
            await client.expect_nothing()
            # Changed content is pushed again.
            cache.set_snapshot(GW, two_clusters(body="three"), context="c4")
            fixed = await client.recv()
            assert fixed.type_url == R and fixed.version_info not in (good[R], rds.version_info)
            await client.ack(fixed, ["rc"])
            await wait_until(lambda: st.acked_version == fixed.version_info, "ACK")
            assert rec.of("ack")[-1][-1] == "c4"

    run(scenario())


def test_only_changed_types_are_pushed() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters())
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            await sync(client)
            cache.set_snapshot(GW, two_clusters(a_port=1111))
            eds = await client.recv()
            assert eds.type_url == E and names_of(eds.resources) == ["a", "b"]
            await client.ack(eds, ["a", "b"])
            await client.expect_nothing()
            cache.set_snapshot(GW, two_clusters(body="new", a_port=1111))
            rds = await client.recv()
            assert rds.type_url == R
            await client.ack(rds, ["rc"])
            await client.expect_nothing()

    run(scenario())


def test_requested_names_only_and_subscription_changes() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters())
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            await client.send(C)
            cds = await client.recv()
            await client.ack(cds)
            await client.send(E, ["a", "missing"])
            eds = await client.recv()
            assert names_of(eds.resources) == ["a"]
            # An ACK that also widens the subscription gets the wider set.
            await client.ack(eds, ["a", "b"])
            eds2 = await client.recv()
            assert names_of(eds2.resources) == ["a", "b"]
            await client.ack(eds2, ["a", "b"])
            # Asking only for names that do not exist yet gets no (empty) answer.
            await client.send(R, ["nope"])
            await client.expect_nothing()

    run(scenario())


def test_reconnect_with_current_versions_gets_nothing() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        snap = cache.set_snapshot(GW, two_clusters())
        async with running(cache) as server:
            first = Envoyish(server.port, GW)
            versions = await sync(first)
            await first.close()
            await wait_until(lambda: len(server.registry) == 0, "disconnect")
            again = Envoyish(server.port, GW, node_id="envoy-1")
            # A reconnecting Envoy repeats the last nonce of the old stream: not stale here.
            await again.send(C, version=versions[C], nonce="17")
            await again.send(E, ["a", "b"], version=versions[E])
            await again.send(L, version=versions[L])
            await again.send(R, ["rc"], version=versions[R])
            await again.expect_nothing()
            await wait_until(lambda: acked(server, snap), "versions adopted")
            # Out of date: gets the current state.
            stale = Envoyish(server.port, GW, node_id="envoy-2")
            await stale.send(C, version="0123456789abcdef")
            cds = await stale.recv()
            assert cds.version_info == versions[C]
            await again.close()
            await stale.close()

    run(scenario())


def test_cluster_switch_is_make_before_break() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, routed("a"))
        rec = Recorder()
        async with running(cache, rec) as server:
            client = Envoyish(server.port, GW)
            await sync(client)
            rec.events.clear()
            snap = cache.set_snapshot(GW, routed("b"))
            cds = await client.recv()
            assert cds.type_url == C and names_of(cds.resources) == ["a", "b"]  # union
            # Envoy asks for the new cluster's endpoints before ACKing CDS.
            await client.send(E, ["a", "b"], nonce=client.nonces[E])
            await client.ack(cds)
            eds = await client.recv()
            assert eds.type_url == E and names_of(eds.resources) == ["a", "b"]
            await client.ack(eds, ["a", "b"])
            rds = await client.recv()  # LDS is unchanged: skipped
            assert rds.type_url == R
            route = route_config()
            rds.resources[0].Unpack(route)
            assert route.virtual_hosts[0].routes[0].route.cluster == "b"
            await client.ack(rds, ["rc"])
            final = await client.recv()
            assert final.type_url == C and names_of(final.resources) == ["b"]
            await client.send(E, ["b"], nonce=eds.nonce)
            await client.ack(final)
            eds2 = await client.recv()
            assert names_of(eds2.resources) == ["b"]
            await client.ack(eds2, ["b"])
            await client.expect_nothing()
            assert [e[1] for e in rec.of("push")] == [C, E, R, C, E]
            assert acked(server, snap)

    run(scenario())


def test_nacked_routes_keep_the_old_cluster() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, routed("a"))
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            await sync(client)
            cache.set_snapshot(GW, routed("b"))
            cds = await client.recv()
            await client.send(E, ["a", "b"], nonce=client.nonces[E])
            await client.ack(cds)
            eds = await client.recv()
            await client.ack(eds, ["a", "b"])
            rds = await client.recv()
            await client.send(R, ["rc"], nonce=rds.nonce, error="rejected")
            # The old routes still use cluster a: it must not be removed.
            await client.expect_nothing()
            # Fixed routes: ACKed, then the final CDS drops a.
            snap = cache.set_snapshot(GW, routed("b", vhost="fixed"))
            rds2 = await client.recv()
            assert rds2.type_url == R
            await client.ack(rds2, ["rc"])
            final = await client.recv()
            assert final.type_url == C and names_of(final.resources) == ["b"]
            await client.send(E, ["b"], nonce=eds.nonce)
            await client.ack(final)
            eds2 = await client.recv()
            await client.ack(eds2, ["b"])
            await wait_until(lambda: acked(server, snap), "converged")

    run(scenario())


def test_removed_listener_goes_at_once() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        two = two_clusters()
        two.listeners["l2"] = listener("l2", 10081)
        cache.set_snapshot(GW, two)
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            await sync(client)
            cache.set_snapshot(GW, two_clusters())
            lds = await client.recv()
            assert lds.type_url == L and names_of(lds.resources) == ["l"]
            await client.ack(lds)
            await client.expect_nothing()

    run(scenario())


def test_routes_of_a_new_listener_do_not_wait_for_the_lds_ack() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters())
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            await sync(client)
            rs = two_clusters()
            rs.listeners["l2"] = listener("l2", 10081, route_config="rc2")
            rs.routes["rc2"] = route_config("rc2", body="second")
            cache.set_snapshot(GW, rs)
            lds = await client.recv()
            assert lds.type_url == L and names_of(lds.resources) == ["l", "l2"]
            # The new listener warms until its routes arrive; Envoy ACKs LDS only then.
            await client.send(R, ["rc", "rc2"], nonce=client.nonces[R])
            rds = await client.recv()
            assert rds.type_url == R and names_of(rds.resources) == ["rc", "rc2"]
            await client.ack(rds, ["rc", "rc2"])
            await client.ack(lds)
            await client.expect_nothing()

    run(scenario())


def test_secrets_before_listeners() -> None:
    def with_secret(chain: str, port: int) -> ResourceSet:
        rs = two_clusters()
        rs.secrets["cert"] = secret("cert", chain)
        rs.listeners["l"] = listener("l", port)
        return rs

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, with_secret("one", 10080))
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            await sync(client)
            await client.send(S, ["cert"])
            sds = await client.recv()
            await client.ack(sds, ["cert"])
            cache.set_snapshot(GW, with_secret("two", 10081))
            first = await client.recv()
            assert first.type_url == S
            await client.expect_nothing()  # LDS waits for the SDS ACK
            await client.ack(first, ["cert"])
            second = await client.recv()
            assert second.type_url == L

    run(scenario())


def test_unknown_cluster_waits_and_several_proxies_share_a_snapshot() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        async with running(cache) as server:
            one = Envoyish(server.port, "ns/later", node_id="one")
            two = Envoyish(server.port, "ns/later", node_id="two")
            await one.send(C)
            await two.send(C)
            await one.expect_nothing()
            await wait_until(lambda: len(server.registry.for_cluster("ns/later")) == 2, "both")
            cache.set_snapshot("ns/later", two_clusters())
            r1, r2 = await one.recv(), await two.recv()
            assert names_of(r1.resources) == names_of(r2.resources) == ["a", "b"]
            assert r1.nonce != r2.nonce
            # Deleting the snapshot pushes nothing: proxies keep what they have.
            await one.ack(r1)
            cache.delete("ns/later")
            await one.expect_nothing()
            cache.set_snapshot("ns/later", two_clusters(a_port=3))
            await one.expect_nothing()  # only EDS changed, and it was never requested
            await one.close()
            await two.close()

    run(scenario())


def test_first_request_without_node_cluster_is_refused() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        async with running(cache) as server:
            client = Envoyish(server.port, "")
            await client.send(C)
            await wait_until(lambda: client.call.done(), "stream ended")
            assert await client.call.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert len(server.registry) == 0
            await client.close()

    run(scenario())


def test_a_failing_observer_does_not_break_delivery() -> None:
    class Broken(Recorder):
        def on_push(self, *args: object) -> None:
            raise RuntimeError("telemetry bug")

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters())
        async with running(cache, Broken()) as server:
            client = Envoyish(server.port, GW)
            await sync(client)

    run(scenario())


def test_an_updated_cluster_gets_its_unchanged_endpoints_again() -> None:
    """Envoy re-creates a cluster whose definition changed and keeps it warming until its
    ClusterLoadAssignment arrives; it asks for it at the version it already holds, which
    must be answered anyway (a BackendTLSPolicy's new CA changes only the cluster)."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot(GW, two_clusters())
        async with running(cache) as server:
            client = Envoyish(server.port, GW)
            versions = await sync(client)
            changed = two_clusters()
            changed.clusters["a"].connect_timeout.seconds = 7
            cache.set_snapshot(GW, changed)
            cds = await client.recv()
            assert cds.type_url == C
            eds = await client.recv()  # before the CDS ACK, which Envoy holds back meanwhile
            assert eds.type_url == E and names_of(eds.resources) == ["a", "b"]
            assert eds.version_info == versions[E]  # the very same assignments
            await client.ack(eds, ["a", "b"])
            await client.ack(cds)
            await client.expect_nothing()
            # A cluster added (not updated) needs nothing of the kind.
            added = two_clusters()
            added.clusters["a"].connect_timeout.seconds = 7
            added.clusters["c"] = cluster("c")
            cache.set_snapshot(GW, added)
            cds = await client.recv()
            assert cds.type_url == C
            await client.ack(cds)
            await client.expect_nothing()

    run(scenario())
