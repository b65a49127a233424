"""Helpers for the xDS server tests (a plain module: conftest names clash across test dirs).

Hand-built resources (so these tests do not depend on the translator), an in-process ADS
client for SotW and delta, a recording observer, and bounded waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

from egobs.xds.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    ResourceSet,
)
from egobs.xds.server import ProxyStatus, XdsServer, serve
from egobs.xds.snapshot import Snapshot, SnapshotCache

WAIT_S = 10.0
TYPES4 = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)


# --------------------------------------------------------------------------- resources


def _ads(source: config_source_pb2.ConfigSource) -> None:
    source.ads.SetInParent()
    source.resource_api_version = config_source_pb2.ApiVersion.V3


def listener(name: str, port: int, route_config: str = "rc") -> listener_pb2.Listener:
    lst = listener_pb2.Listener(name=name)
    lst.address.socket_address.address = "127.0.0.1"
    lst.address.socket_address.port_value = port
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=name)
    hcm.rds.route_config_name = route_config
    _ads(hcm.rds.config_source)
    router = hcm.http_filters.add()
    router.name = "envoy.filters.http.router"
    router.typed_config.Pack(router_pb2.Router())
    chain = lst.filter_chains.add()
    f = chain.filters.add()
    f.name = "envoy.filters.network.http_connection_manager"
    f.typed_config.Pack(hcm)
    return lst


def route_config(
    name: str = "rc",
    *,
    body: str | None = None,
    cluster: str | None = None,
    bad_regex: bool = False,
) -> route_pb2.RouteConfiguration:
    """One catch-all route: a direct response with ``body`` or a forward to ``cluster``.
    ``bad_regex`` adds a route Envoy rejects (an unbalanced regex)."""
    rc = route_pb2.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name="all", domains=["*"])
    if bad_regex:
        bad = vh.routes.add()
        bad.match.safe_regex.regex = "(("
        bad.direct_response.status = 500
    r = vh.routes.add()
    r.match.prefix = "/"
    if cluster is not None:
        r.route.cluster = cluster
    else:
        r.direct_response.status = 200
        r.direct_response.body.inline_string = body or ""
    return rc


def cluster(name: str) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.connect_timeout.seconds = 1
    _ads(c.eds_cluster_config.eds_config)
    return c


def endpoints(name: str, *ports: int) -> endpoint_pb2.ClusterLoadAssignment:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    group = cla.endpoints.add()
    for port in ports:
        sa = group.lb_endpoints.add().endpoint.address.socket_address
        sa.address = "127.0.0.1"
        sa.port_value = port
    return cla


def secret(name: str, chain: str) -> secret_pb2.Secret:
    s = secret_pb2.Secret(name=name)
    s.tls_certificate.certificate_chain.inline_string = chain
    return s


def resource_set(
    *,
    listeners: Iterable[listener_pb2.Listener] = (),
    routes: Iterable[route_pb2.RouteConfiguration] = (),
    clusters: Iterable[cluster_pb2.Cluster] = (),
    cla: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
    secrets: Iterable[secret_pb2.Secret] = (),
) -> ResourceSet:
    return ResourceSet(
        listeners={x.name: x for x in listeners},
        routes={x.name: x for x in routes},
        clusters={x.name: x for x in clusters},
        endpoints={x.cluster_name: x for x in cla},
        secrets={x.name: x for x in secrets},
    )


def names_of(resources: Iterable[any_pb2.Any]) -> list[str]:
    """Resource names in a SotW response, whatever their type."""
    out = []
    for a in resources:
        for cls in (
            listener_pb2.Listener,
            route_pb2.RouteConfiguration,
            cluster_pb2.Cluster,
            endpoint_pb2.ClusterLoadAssignment,
            secret_pb2.Secret,
        ):
            if a.Is(cls.DESCRIPTOR):
                msg = cls()
                a.Unpack(msg)
                out.append(getattr(msg, "cluster_name", None) or msg.name)
    return out


# --------------------------------------------------------------------------- clients


class _Client:
    """One ADS stream; responses are read by a background task into a queue, so waiting
    for one never cancels a gRPC read."""

    def __init__(self, port: int, *, delta: bool) -> None:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self.call: Any = (
            stub.DeltaAggregatedResources() if delta else stub.StreamAggregatedResources()
        )
        self.responses: asyncio.Queue[Any] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self._first = True

    async def _read(self) -> None:
        # The stream ending with an error (server stopped, stream refused) is for the test
        # to check through ``call.code()``, not a stray task exception.
        with contextlib.suppress(grpc.aio.AioRpcError):
            while True:
                resp = await self.call.read()
                if resp is grpc.aio.EOF:
                    return
                self.responses.put_nowait(resp)

    async def recv(self, timeout: float = 2.0) -> Any:
        return await asyncio.wait_for(self.responses.get(), timeout)

    async def expect_nothing(self, wait: float = 0.2) -> None:
        await asyncio.sleep(wait)
        assert self.responses.empty(), f"unexpected response: {self.responses.get_nowait()}"

    async def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close()

    def _node(self, req: Any, node_id: str, cluster: str) -> None:
        if self._first:
            req.node.id = node_id
            req.node.cluster = cluster
            self._first = False


class SotwClient(_Client):
    def __init__(self, port: int, cluster: str, node_id: str = "envoy-1") -> None:
        super().__init__(port, delta=False)
        self.cluster = cluster
        self.node_id = node_id

    async def send(
        self,
        type_url: str,
        names: Iterable[str] = (),
        *,
        nonce: str = "",
        version: str = "",
        error: str | None = None,
    ) -> None:
        req = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            resource_names=list(names),
            response_nonce=nonce,
            version_info=version,
        )
        if error is not None:
            req.error_detail.code = 3
            req.error_detail.message = error
        self._node(req, self.node_id, self.cluster)
        await self.call.write(req)

    async def ack(self, resp: discovery_pb2.DiscoveryResponse, names: Iterable[str] = ()) -> None:
        await self.send(resp.type_url, names, nonce=resp.nonce, version=resp.version_info)


class DeltaClient(_Client):
    def __init__(self, port: int, cluster: str, node_id: str = "envoy-1") -> None:
        super().__init__(port, delta=True)
        self.cluster = cluster
        self.node_id = node_id

    async def send(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        *,
        nonce: str = "",
        initial: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        req = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            response_nonce=nonce,
            initial_resource_versions=initial or {},
        )
        if error is not None:
            req.error_detail.code = 3
            req.error_detail.message = error
        self._node(req, self.node_id, self.cluster)
        await self.call.write(req)

    async def ack(self, resp: discovery_pb2.DeltaDiscoveryResponse) -> None:
        await self.send(resp.type_url, nonce=resp.nonce)


def delta_names(resp: discovery_pb2.DeltaDiscoveryResponse) -> list[str]:
    return [r.name for r in resp.resources]


# --------------------------------------------------------------------------- observer


@dataclass
class Recorder:
    """An XdsObserver that records every call as a tuple."""

    events: list[tuple[Any, ...]] = field(default_factory=list)

    def on_connect(self, proxy: ProxyStatus, /) -> None:
        self.events.append(("connect", proxy.node_id))

    def on_disconnect(self, proxy: ProxyStatus, /) -> None:
        self.events.append(("disconnect", proxy.node_id))

    def on_push(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        resource_count: int,
        size_bytes: int,
        context: object,
        /,
    ) -> None:
        self.events.append(("push", type_url, version, resource_count, size_bytes, context))

    def on_ack(self, proxy: ProxyStatus, type_url: str, version: str, context: object, /) -> None:
        self.events.append(("ack", type_url, version, context))

    def on_nack(
        self, proxy: ProxyStatus, type_url: str, version: str, message: str, context: object, /
    ) -> None:
        self.events.append(("nack", type_url, version, message, context))

    def on_refused(self, peer: str, gateway: str, reason: str, /) -> None:
        self.events.append(("refused", gateway, reason))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


# --------------------------------------------------------------------------- misc


def run(coro: Awaitable[None], timeout: float = 60.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout)

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def running(cache: SnapshotCache, observer: Any = None) -> AsyncIterator[XdsServer]:
    server = await serve(cache, observer=observer)
    try:
        yield server
    finally:
        await server.stop(None)


def proxy(server: XdsServer, cluster: str) -> ProxyStatus:
    (p,) = server.registry.for_cluster(cluster)
    return p


def acked(
    server: XdsServer,
    snap: Snapshot,
    types: tuple[str, ...] = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE),
) -> bool:
    """Every proxy of the snapshot's Gateway has ACKed each of ``types`` at its version."""
    return all(
        s.types.get(t) is not None and s.types[t].acked_version == snap.type_versions[t]
        for s in server.registry.for_cluster(snap.node_cluster)
        for t in types
    )
