"""Listeners: which Envoy listeners and filter chains a Gateway needs, then the messages.

Translation happens in two steps. :func:`plan` looks at the IR listeners (not at HTTP
routes) and decides the Envoy listeners, one per (socket protocol, port), and their filter
chains, as small hashable values. :func:`build_listener` turns one plan into a Listener.
The translator caches listeners by plan, so an HTTP route change never rebuilds a listener.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.http.stateful_session.v3 import stateful_session_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import route_pb2 as udp_route_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import udp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from egobs import ir

from ._common import BLACKHOLE_CLUSTER, CORS_FILTER, STATEFUL_SESSION_FILTER, pack, set_ads
from .accesslog import http_access_logs, listener_access_logs, tcp_access_logs
from .tracing import build_tracing

__all__ = [
    "HCM_FILTER",
    "SCOPED_ROUTES_NAME",
    "TLS_TRANSPORT_SOCKET",
    "HTTPChain",
    "ListenerPlan",
    "Plan",
    "TCPChain",
    "TLSPlan",
    "UDPListenerPlan",
    "build_listener",
    "plan",
    "split_by_hostname",
]

HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
UDP_PROXY_FILTER = "envoy.filters.udp_listener.udp_proxy"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
ROUTER_FILTER = "envoy.filters.http.router"
SCOPED_ROUTES_NAME = "hostnames"

_ROUTER = pack(router_pb2.Router())
_CORS = pack(cors_pb2.Cors())
# No session state of its own: only routes with a session policy of theirs have sessions.
_STATEFUL_SESSION = pack(stateful_session_pb2.StatefulSession())
_TLS_INSPECTOR = pack(tls_inspector_pb2.TlsInspector())


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class TLSPlan:
    certificates: tuple[str, ...]  # SDS secret names
    alpn_protocols: tuple[str, ...]
    client_validation: ir.ClientValidation | None = None


@dataclass(frozen=True, slots=True)
class HTTPChain:
    """A filter chain with an HTTP connection manager whose routes come over RDS.

    ``split_by_hostname``: the routes of ``route_config`` come as one RouteConfiguration
    per hostname instead, each named by a scope (SRDS) keyed on the request's host, so a
    change to one hostname's routes ships and rebuilds only that hostname's table.
    """

    name: str
    route_config: str
    stat_prefix: str
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""
    tls: TLSPlan | None = None
    # Whether some route it serves has a CORS policy (or session persistence): the filter
    # is in the chain then (it reads each route's policy; routes without one pass through).
    cors: bool = False
    sessions: bool = False
    split_by_hostname: bool = False


@dataclass(frozen=True, slots=True)
class TCPChain:
    """A filter chain with a TCP proxy; ``clusters`` are (name, weight) pairs."""

    name: str
    stat_prefix: str
    clusters: tuple[tuple[str, int], ...]
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    """A TCP-socket listener (HTTP, HTTPS, TLS passthrough, TCP)."""

    name: str
    address: str
    port: int
    chains: tuple[HTTPChain | TCPChain, ...]
    access_logs: tuple[ir.AccessLog, ...] = ()
    tracing: ir.Tracing | None = None


@dataclass(frozen=True, slots=True)
class UDPListenerPlan:
    name: str
    address: str
    port: int
    stat_prefix: str
    cluster: str


@dataclass(slots=True)
class Plan:
    """Everything :func:`plan` decided for one Gateway.

    ``route_configs`` name each route configuration with the IR listeners whose routes it
    holds (several when plain HTTP listeners share a port). ``clusters`` are the upstreams
    the TCP and UDP listeners use; HTTP routes bring their own.
    """

    listeners: list[ListenerPlan | UDPListenerPlan] = field(default_factory=list)
    route_configs: list[tuple[str, tuple[ir.HTTPListener, ...]]] = field(default_factory=list)
    clusters: list[ir.Cluster] = field(default_factory=list)
    blackhole: bool = False


@dataclass(slots=True)
class _Port:
    address: str
    name: str
    http: list[ir.HTTPListener] = field(default_factory=list)
    https: list[ir.HTTPListener] = field(default_factory=list)
    tcp: list[ir.TCPListener] = field(default_factory=list)
    passthrough: list[ir.TCPListener] = field(default_factory=list)
    udp: list[ir.UDPListener] = field(default_factory=list)


class _ServerNames:
    """SNI names already claimed by a filter chain of one listener.

    Envoy rejects a listener where two chains match the same server name, so a later chain
    only keeps the names nobody claimed before it, and disappears if none is left. ``()``
    (no names) is the catch-all chain, which can also exist only once.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._catch_all = False

    def claim(self, hostnames: tuple[str, ...]) -> tuple[str, ...] | None:
        if not hostnames or "*" in hostnames:
            if self._catch_all:
                return None
            self._catch_all = True
            return ()
        free = tuple(dict.fromkeys(h for h in hostnames if h not in self._taken))
        if not free:
            return None
        self._taken.update(free)
        return free


def _l4_destination(dest: ir.RouteDestination, plan: Plan) -> tuple[tuple[str, int], ...]:
    clusters = [(s.cluster.name, s.weight) for s in dest.settings]
    plan.clusters.extend(s.cluster for s in dest.settings)
    if dest.invalid_weight > 0 or not clusters:
        # Gateway API: the invalid share of connections must be rejected.
        clusters.append((BLACKHOLE_CLUSTER, dest.invalid_weight or 1))
        plan.blackhole = True
    return tuple(clusters)


def plan(gateway: ir.Gateway) -> Plan:
    """Decide the Envoy listeners of a Gateway; the cost is per listener, not per route."""
    out = Plan()
    ports: dict[tuple[str, int], _Port] = {}

    def port_of(family: str, lis: ir.HTTPListener | ir.TCPListener | ir.UDPListener) -> _Port:
        key = (family, lis.port)
        group = ports.get(key)
        if group is None:
            group = ports[key] = _Port(address=lis.address or "0.0.0.0", name=lis.name)
        return group

    for http in gateway.http:
        group = port_of("tcp", http)
        (group.https if http.tls is not None else group.http).append(http)
    for tcp in gateway.tcp:
        group = port_of("tcp", tcp)
        (group.passthrough if tcp.tls_passthrough else group.tcp).append(tcp)
    for udp in gateway.udp:
        port_of("udp", udp).udp.append(udp)

    for (family, port), group in ports.items():
        if family == "udp":
            _plan_udp(out, group, port)
        else:
            _plan_stream(out, group, port)
    if gateway.access_logs or gateway.tracing is not None:
        out.listeners = [
            dataclasses.replace(lp, access_logs=gateway.access_logs, tracing=gateway.tracing)
            if isinstance(lp, ListenerPlan)
            else lp
            for lp in out.listeners
        ]
    return out


def _plan_udp(out: Plan, group: _Port, port: int) -> None:
    # One UDP socket per port: the first listener with a route serves it.
    for lis in group.udp:
        if lis.route is None:
            continue
        dest = lis.route.destination
        if dest.settings:
            # udp_proxy routes a session to one cluster; there is no weighted split, so the
            # heaviest backend takes all traffic.
            best = max(dest.settings, key=lambda s: s.weight)
            cluster = best.cluster.name
            out.clusters.append(best.cluster)
        else:
            cluster = BLACKHOLE_CLUSTER
            out.blackhole = True
        out.listeners.append(
            UDPListenerPlan(group.name, group.address, port, f"udp-{port}", cluster)
        )
        return


def _plan_stream(out: Plan, group: _Port, port: int) -> None:
    names = _ServerNames()
    tls_chains: list[HTTPChain | TCPChain] = []
    for lis in group.https:
        assert lis.tls is not None
        server_names = names.claim(lis.hostnames)
        if server_names is None:
            continue  # every hostname is served by an earlier listener on this port
        tls = TLSPlan(
            tuple(c.name for c in lis.tls.certificates),
            lis.tls.alpn_protocols,
            lis.tls.client_validation,
        )
        tls_chains.append(
            HTTPChain(
                lis.name,
                lis.name,
                f"https-{port}",
                server_names,
                tls=tls,
                cors=_has_cors([lis]),
                sessions=_has_sessions([lis]),
            )
        )
        out.route_configs.append((lis.name, (lis,)))
    for passthrough in group.passthrough:
        for tls_route in passthrough.routes:
            server_names = names.claim(tls_route.sni_hostnames)
            if server_names is None:
                continue
            clusters = _l4_destination(tls_route.destination, out)
            tls_chains.append(
                TCPChain(tls_route.name, f"tls-passthrough-{port}", clusters, server_names)
            )

    plain: HTTPChain | TCPChain | None = None
    if group.http:
        first = group.http[0]
        plain = HTTPChain(
            first.name,
            first.name,
            f"http-{port}",
            cors=_has_cors(group.http),
            sessions=_has_sessions(group.http),
        )
        out.route_configs.append((first.name, tuple(group.http)))
    else:
        for tcp in group.tcp:
            if tcp.routes:
                # Several TCPRoutes on one listener is implementation-specific; the first wins.
                clusters = _l4_destination(tcp.routes[0].destination, out)
                plain = TCPChain(tcp.name, f"tcp-{port}", clusters)
                break

    if plain is not None and tls_chains:
        # Plaintext and TLS on one port: tell them apart by what tls_inspector detected.
        tls_chains = [dataclasses.replace(c, transport_protocol="tls") for c in tls_chains]
    chains = (*tls_chains, plain) if plain is not None else tuple(tls_chains)
    if chains:
        out.listeners.append(ListenerPlan(group.name, group.address, port, chains))


def split_by_hostname(
    p: ListenerPlan | UDPListenerPlan, route_config: str
) -> ListenerPlan | UDPListenerPlan:
    """``p`` with the HTTP chain serving ``route_config`` taking it split by hostname."""
    if isinstance(p, UDPListenerPlan):
        return p
    chains = tuple(
        dataclasses.replace(c, split_by_hostname=True)
        if isinstance(c, HTTPChain) and c.route_config == route_config
        else c
        for c in p.chains
    )
    return p if chains == p.chains else dataclasses.replace(p, chains=chains)


# --------------------------------------------------------------------------- messages


def build_listener(p: ListenerPlan | UDPListenerPlan) -> listener_pb2.Listener:
    out = listener_pb2.Listener(name=p.name)
    socket = out.address.socket_address
    socket.address = p.address
    socket.port_value = p.port
    if isinstance(p, UDPListenerPlan):
        _set_udp(out, p)
        return out

    if any(c.server_names or c.transport_protocol or _is_tls(c) for c in p.chains):
        inspector = out.listener_filters.add()
        inspector.name = TLS_INSPECTOR
        inspector.typed_config.CopyFrom(_TLS_INSPECTOR)
    for c in p.chains:
        chain = out.filter_chains.add()
        chain.name = c.name
        if c.server_names:
            chain.filter_chain_match.server_names.extend(c.server_names)
        if c.transport_protocol:
            chain.filter_chain_match.transport_protocol = c.transport_protocol
        network_filter = chain.filters.add()
        if isinstance(c, HTTPChain):
            network_filter.name = HCM_FILTER
            network_filter.typed_config.Pack(_hcm(c, p), deterministic=True)
            if c.tls is not None:
                chain.transport_socket.name = TLS_TRANSPORT_SOCKET
                chain.transport_socket.typed_config.Pack(_downstream_tls(c.tls), deterministic=True)
        else:
            network_filter.name = TCP_PROXY_FILTER
            network_filter.typed_config.Pack(_tcp_proxy(c, p.access_logs), deterministic=True)
    out.access_log.extend(listener_access_logs(p.access_logs))
    return out


def _is_tls(chain: HTTPChain | TCPChain) -> bool:
    return isinstance(chain, HTTPChain) and chain.tls is not None


def _hcm(chain: HTTPChain, p: ListenerPlan) -> hcm_pb2.HttpConnectionManager:
    out = hcm_pb2.HttpConnectionManager(
        stat_prefix=chain.stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        merge_slashes=True,
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.UNESCAPE_AND_REDIRECT,
    )
    out.use_remote_address.value = True
    out.normalize_path.value = True
    # Host ports never select anything (Gateway API hostnames have none), and Envoy keeps
    # the client's port in a redirect's Location even where the spec wants the new scheme's
    # well-known port or the listener's (set by the route): the port goes at the door.
    out.strip_any_host_port = True
    if chain.split_by_hostname:
        _set_scoped_routes(out.scoped_routes, chain)
    else:
        set_ads(out.rds.config_source)
        out.rds.route_config_name = chain.route_config
    out.upgrade_configs.add().upgrade_type = "websocket"
    if chain.cors:
        cors = out.http_filters.add()
        cors.name = CORS_FILTER
        cors.typed_config.CopyFrom(_CORS)
    if chain.sessions:
        sessions = out.http_filters.add()
        sessions.name = STATEFUL_SESSION_FILTER
        sessions.typed_config.CopyFrom(_STATEFUL_SESSION)
    router = out.http_filters.add()
    router.name = ROUTER_FILTER
    router.typed_config.CopyFrom(_ROUTER)
    out.access_log.extend(http_access_logs(p.access_logs))
    if p.tracing is not None:
        out.tracing.CopyFrom(build_tracing(p.tracing))
    return out


def _set_scoped_routes(out: hcm_pb2.ScopedRoutes, chain: HTTPChain) -> None:
    # The scopes come over SRDS, which Envoy subscribes to whole (every scope there is goes
    # to every scoped connection manager): the translator splits at most one route table
    # per Gateway. The key is the host without a port (the connection manager strips it
    # first; the split on ":" keeps that true whatever the order). Envoy compares keys
    # exactly, which is why only tables of exact hostnames are split.
    # The name goes into Envoy's stat names (http.<prefix>.scoped_rds.<name>.*), where a
    # fixed word keeps one metric name per counter; there is one scoped manager per proxy.
    out.name = SCOPED_ROUTES_NAME
    extractor = out.scope_key_builder.fragments.add().header_value_extractor
    extractor.name = ":authority"
    extractor.element_separator = ":"
    extractor.index = 0
    set_ads(out.rds_config_source)
    set_ads(out.scoped_rds.scoped_rds_config_source)


def _downstream_tls(tls: TLSPlan) -> tls_pb2.DownstreamTlsContext:
    out = tls_pb2.DownstreamTlsContext()
    common = out.common_tls_context
    for name in tls.certificates:
        sds = common.tls_certificate_sds_secret_configs.add()
        sds.name = name
        set_ads(sds.sds_config)
    common.alpn_protocols.extend(tls.alpn_protocols)
    validation = tls.client_validation
    if validation is not None:
        context = common.validation_context
        context.trusted_ca.inline_string = validation.ca_pem
        # Set either way: Envoy warns that its default (not required) will change.
        out.require_client_certificate.value = not validation.insecure_fallback
        if validation.insecure_fallback:
            # AllowInsecureFallback: a certificate that does not verify, or none, still
            # gets in (the backend may look at what was presented).
            context.trust_chain_verification = (
                common_pb2.CertificateValidationContext.ACCEPT_UNTRUSTED
            )
    return out


def _tcp_proxy(chain: TCPChain, logs: tuple[ir.AccessLog, ...]) -> tcp_proxy_pb2.TcpProxy:
    out = tcp_proxy_pb2.TcpProxy(stat_prefix=chain.stat_prefix)
    if len(chain.clusters) == 1:
        out.cluster = chain.clusters[0][0]
    else:
        for name, weight in chain.clusters:
            out.weighted_clusters.clusters.add(name=name, weight=weight)
    out.access_log.extend(tcp_access_logs(logs))
    return out


def _set_udp(out: listener_pb2.Listener, p: UDPListenerPlan) -> None:
    out.address.socket_address.protocol = address_pb2.SocketAddress.UDP
    out.udp_listener_config.SetInParent()
    config = udp_proxy_pb2.UdpProxyConfig(stat_prefix=p.stat_prefix)
    action = config.matcher.on_no_match.action
    action.name = "route"
    action.typed_config.Pack(udp_route_pb2.Route(cluster=p.cluster), deterministic=True)
    udp_filter = out.listener_filters.add()
    udp_filter.name = UDP_PROXY_FILTER
    udp_filter.typed_config.Pack(config, deterministic=True)


def _has_cors(listeners: Iterable[ir.HTTPListener]) -> bool:
    return any(route.cors is not None for lis in listeners for route in lis.routes)


def _has_sessions(listeners: Iterable[ir.HTTPListener]) -> bool:
    return any(route.session is not None for lis in listeners for route in lis.routes)
