"""Resolving backendRefs (Service or Envoy Gateway Backend) to IR clusters.

Endpoints are recorded in the translation's :class:`EndpointTable`, not in the cluster.

A cluster is named after what it points at (``service/<ns>/<name>/<port>``,
``backend/<ns>/<name>[/<port>]``, plus ``/udp`` when used by UDPRoutes), not after the
route using it, so many routes share one cluster. That only works if a name always maps to
one :class:`ir.Cluster` value; hence the protocol of a cluster depends on the backend and on
*every* route kind referencing it, never on the single route being translated (see
:meth:`Backends._protocol`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from egobs import ir
from egobs.gatewayapi.backendtls import BackendTLSPolicies
from egobs.gatewayapi.endpoints import EndpointTable, backend_endpoints
from egobs.gatewayapi.index import Index
from egobs.gatewayapi.status import (
    R_BACKEND_NOT_FOUND,
    R_INVALID_KIND,
    R_PORT_NOT_SPECIFIED,
    R_REF_NOT_PERMITTED,
    R_UNSUPPORTED_PROTOCOL_ROUTE,
    Issue,
)
from egobs.resources import Backend, Resources, Service

GATEWAY_GROUP = "gateway.networking.k8s.io"
EG_GROUP = "gateway.envoyproxy.io"

HTTP_ROUTE = "HTTPRoute"
GRPC_ROUTE = "GRPCRoute"
TCP_ROUTE = "TCPRoute"
TLS_ROUTE = "TLSRoute"
UDP_ROUTE = "UDPRoute"
L7_KINDS = frozenset({HTTP_ROUTE, GRPC_ROUTE})

# Service appProtocol values (KEP-3726 and common conventions) that mean cleartext HTTP/2.
_H2C_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "h2c", "http2", "grpc", "grpc-web"})
# Protocols needing TLS towards the backend: only with a BackendTLSPolicy saying how.
_TLS_APP_PROTOCOLS = frozenset(
    {"kubernetes.io/wss", "https", "tls", "grpcs", "gateway.envoyproxy.io/wss"}
)

BackendKey = tuple[str, ...]
Resolution = tuple[ir.Cluster | None, Issue | None]


class BackendRefLike(Protocol):
    """What BackendRef, HTTPBackendRef and BackendObjectReference have in common."""

    @property
    def group(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...


def _key(group: str, kind: str, namespace: str, name: str, port: int | None) -> BackendKey | None:
    if group == "" and kind == "Service":
        return ("service", namespace, name, str(port))
    if group == EG_GROUP and kind == "Backend":
        return ("backend", namespace, name)
    return None


def backend_keys(routes: Iterable[Any]) -> set[BackendKey]:
    """The Services and Backends that routes of any kind refer to (mirrors included)."""
    keys: set[BackendKey] = set()
    for route in routes:
        ns = route.namespace
        for rule in route.spec.rules:
            refs: list[BackendRefLike] = list(rule.backend_refs)
            filters = getattr(rule, "filters", ())  # L4 rules have none
            refs.extend(f.request_mirror.backend_ref for f in filters if f.request_mirror)
            for ref in refs:
                key = _key(ref.group, ref.kind, ref.namespace or ns, ref.name, ref.port)
                if key is not None:
                    keys.add(key)
    return keys


class Backends:
    """Resolves backend references with caching; one instance per translation."""

    def __init__(self, index: Index, resources: Resources, endpoints: EndpointTable) -> None:
        self._index = index
        # Where resolved clusters' endpoints go: routes get endpoint-free ir.Cluster values.
        self.endpoints = endpoints
        self._resources = resources
        self._grpc_refs = backend_keys(resources.grpc_routes)
        self.tls_policies = BackendTLSPolicies(resources)
        self._l7_refs: set[BackendKey] | None = None
        self._cache: dict[tuple[str, str, str, str, str, str, int | None], Resolution] = {}

    def resolve(self, ref: BackendRefLike, route_kind: str, route_ns: str) -> Resolution:
        """The cluster a reference from a ``route_kind`` in ``route_ns`` resolves to, or the
        issue (ResolvedRefs reason and message) explaining why it does not."""
        ns = ref.namespace or route_ns
        ck = (route_kind, route_ns, ref.group, ref.kind, ns, ref.name, ref.port)
        hit = self._cache.get(ck)
        if hit is None:
            hit = self._resolve(ref.group, ref.kind, ns, ref.name, ref.port, route_kind, route_ns)
            self._cache[ck] = hit
        return hit

    def _resolve(
        self,
        group: str,
        kind: str,
        ns: str,
        name: str,
        port: int | None,
        route_kind: str,
        route_ns: str,
    ) -> Resolution:
        key = _key(group, kind, ns, name, port)
        if key is None:
            shown = f"{group}/{kind}" if group else kind
            return None, Issue(
                R_INVALID_KIND,
                f"backendRef kind {shown} is not supported: use a Service or a {EG_GROUP} Backend",
            )
        # Permission before existence: a refused reference must not reveal what exists.
        if not self._index.grants.allowed(
            GATEWAY_GROUP, route_kind, route_ns, group, kind, ns, name
        ):
            return None, Issue(
                R_REF_NOT_PERMITTED,
                f"backendRef to {kind} {ns}/{name} is not permitted by any ReferenceGrant",
            )
        if kind == "Service":
            svc = self._index.services.get((ns, name))
            if svc is None:
                return None, Issue(R_BACKEND_NOT_FOUND, f"Service {ns}/{name} not found")
            return self._service(svc, key, port, route_kind)
        backend = self._index.backends.get((ns, name))
        if backend is None:
            return None, Issue(R_BACKEND_NOT_FOUND, f"Backend {ns}/{name} not found")
        return self._backend(backend, key, port, route_kind)

    # ------------------------------------------------------------------ protocol

    def _protocol(
        self, key: BackendKey, app_protocols: Iterable[str], route_kind: str
    ) -> ir.AppProtocol:
        if route_kind == UDP_ROUTE:
            return ir.AppProtocol.UDP  # UDP clusters have names of their own (see _udp)
        if any(p.lower() in _H2C_APP_PROTOCOLS for p in app_protocols) or key in self._grpc_refs:
            return ir.AppProtocol.HTTP2
        if route_kind in L7_KINDS:
            return ir.AppProtocol.HTTP1
        # An L4 route sharing a backend with HTTP routes uses their cluster unchanged: TCP
        # proxying ignores HTTP protocol options, and the name must keep one meaning.
        if self._l7_refs is None:
            self._l7_refs = backend_keys(
                [*self._resources.http_routes, *self._resources.grpc_routes]
            )
        if key in self._l7_refs:
            return ir.AppProtocol.HTTP1
        return ir.AppProtocol.TCP

    # ------------------------------------------------------------------ Service

    def _service(
        self, svc: Service, key: BackendKey, port: int | None, route_kind: str
    ) -> Resolution:
        ref = f"{svc.namespace}/{svc.name}"
        if port is None:
            return None, Issue(
                R_PORT_NOT_SPECIFIED, f"backendRef to Service {ref} must specify a port"
            )
        transport = "UDP" if route_kind == UDP_ROUTE else "TCP"
        sp = next((p for p in svc.spec.ports if p.port == port and p.protocol == transport), None)
        if sp is None:
            # BackendNotFound: the spec's reason for a reference to something that does not
            # exist (Envoy Gateway reports a missing port so too).
            return None, Issue(R_BACKEND_NOT_FOUND, f"Service {ref} has no {transport} port {port}")
        app = (sp.app_protocol or "").lower()
        policy = self.tls_policies.for_port(svc.namespace, svc.name, sp.name)
        l7 = route_kind in L7_KINDS
        tls = None
        if policy is not None and l7:
            if policy.tls is None:
                # Neither plaintext nor unverified TLS to a backend its owner says needs a
                # verified connection: the spec wants these requests to fail with a 5xx.
                return None, Issue(
                    R_UNSUPPORTED_PROTOCOL_ROUTE,
                    f"Service {ref} port {port} is the target of BackendTLSPolicy "
                    f"{policy.policy}, none of whose CA certificates resolved",
                )
            tls = policy.tls
        elif l7 and app in _TLS_APP_PROTOCOLS:
            return None, Issue(
                R_UNSUPPORTED_PROTOCOL_ROUTE,
                f"Service {ref} port {port} has appProtocol {sp.app_protocol}, which needs TLS "
                "to the backend: a BackendTLSPolicy targeting it says how to verify it",
            )
        name = _udp(f"service/{ref}/{port}", route_kind)
        if policy is not None and not l7 and route_kind != UDP_ROUTE:
            # A policy is about TLS the Gateway originates for HTTP routes (the spec's
            # extended support: HTTPRoute, GRPCRoute). What a TLS passthrough or TCP route
            # forwards is the client's own stream: it must not be wrapped in TLS again by
            # the HTTP routes' cluster, so it gets a cluster of its own.
            name += "/passthrough"
        address_type = self.endpoints.service_port(name, svc, sp, transport)
        cluster = ir.Cluster(
            name=name,
            protocol=self._protocol(key, (app,), route_kind),
            address_type=address_type,
            tls=tls,
        )
        return cluster, None

    # ------------------------------------------------------------------ Backend

    def _backend(
        self, backend: Backend, key: BackendKey, port: int | None, route_kind: str
    ) -> Resolution:
        ref = f"{backend.namespace}/{backend.name}"
        spec = backend.spec
        if spec.type != "Endpoints":
            return None, Issue(
                R_INVALID_KIND, f"Backend {ref} has type {spec.type}; only Endpoints is supported"
            )
        if spec.tls is not None or any(p in _TLS_APP_PROTOCOLS for p in spec.app_protocols):
            return None, Issue(
                R_UNSUPPORTED_PROTOCOL_ROUTE,
                f"Backend {ref} needs TLS to the backend; egobs does not originate TLS",
            )
        address_type, endpoints = backend_endpoints(backend)
        apps = ["h2c" if p == "gateway.envoyproxy.io/h2c" else p for p in spec.app_protocols]
        name = _udp(f"backend/{ref}" if port is None else f"backend/{ref}/{port}", route_kind)
        self.endpoints.backend(name, (backend.namespace, backend.name), address_type, endpoints)
        cluster = ir.Cluster(
            name=name,
            protocol=self._protocol(key, apps, route_kind),
            address_type=address_type,
        )
        return cluster, None


def _udp(name: str, route_kind: str) -> str:
    """Clusters of UDPRoutes end in ``/udp``: a Service may have the same port number for
    TCP and UDP (DNS) with different endpoints, and a name must mean one cluster."""
    return f"{name}/udp" if route_kind == UDP_ROUTE else name
