"""The intermediate representation between the Gateway API translator and the xDS translator.

Two halves, as in Envoy Gateway:

* the **xDS IR** (:class:`Gateway`): per Gateway, the listeners it serves and, for each, the
  routes with everything resolved (hostnames intersected, backends resolved to endpoints and
  weights, filters turned into concrete actions, TLS material read from Secrets);
* the **infra IR** (:class:`Proxy`): which Envoy proxies to run and which ports they bind.

Every type is a frozen dataclass built from tuples, so IR values are immutable, hashable and
comparable. The xDS translator relies on that: it keys its per-resource cache by IR value, so
an unchanged route is never rebuilt. Names are stable and readable because they become Envoy
resource and stat names (``httproute/<ns>/<name>/rule/<i>/match/<j>``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "AccessLogSink",
    "AddressType",
    "AppProtocol",
    "Certificate",
    "Cluster",
    "DestinationSetting",
    "DirectResponse",
    "Endpoint",
    "Gateway",
    "HTTPListener",
    "HTTPRoute",
    "HeaderMatch",
    "HeaderModifier",
    "HeaderValue",
    "Mirror",
    "PathMatch",
    "Protocol",
    "Proxy",
    "ProxyListener",
    "QueryParamMatch",
    "Redirect",
    "RouteDestination",
    "StringMatchType",
    "TCPListener",
    "TCPRoute",
    "TLSConfig",
    "Timeouts",
    "UDPListener",
    "UDPRoute",
    "URLRewrite",
]


class StringMatchType(enum.StrEnum):
    EXACT = "Exact"
    PREFIX = "PathPrefix"  # segment-aware prefix, as Gateway API defines PathPrefix
    REGEX = "RegularExpression"


class Protocol(enum.StrEnum):
    """Listener protocol after translation."""

    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TLS = "TLS"  # TLS passthrough routed by SNI (TLSRoute)
    TCP = "TCP"
    UDP = "UDP"


class AppProtocol(enum.StrEnum):
    """How Envoy talks to an upstream."""

    HTTP1 = "HTTP/1.1"
    HTTP2 = "HTTP/2"  # h2c, used for gRPC backends
    TCP = "TCP"
    UDP = "UDP"


class AddressType(enum.StrEnum):
    IP = "IP"
    FQDN = "FQDN"
    UNIX = "UNIX"


# --------------------------------------------------------------------------- destinations


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream address. ``port`` is 0 for unix sockets (``host`` is then the path)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """An upstream: one Service port or one Backend, shared by every route that uses it.

    ``name`` is ``service/<ns>/<name>/<port>`` or ``backend/<ns>/<name>[/<port>]``; the
    xDS translator turns it into one Envoy Cluster and one ClusterLoadAssignment, so an
    endpoint change touches only that assignment.
    """

    name: str
    protocol: AppProtocol
    address_type: AddressType
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class DestinationSetting:
    """One weighted share of a route's traffic."""

    cluster: Cluster
    weight: int


@dataclass(frozen=True, slots=True)
class RouteDestination:
    """Where a route sends its traffic.

    ``settings`` hold the valid backends with their weights (zero-weight ones dropped).
    ``invalid_weight`` is the weight of backendRefs that could not be resolved: Gateway API
    requires that share of requests to get HTTP 500. When there are no valid settings,
    every request gets 500.
    """

    name: str
    settings: tuple[DestinationSetting, ...]
    invalid_weight: int = 0

    @property
    def total_weight(self) -> int:
        return sum(s.weight for s in self.settings) + self.invalid_weight


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: StringMatchType
    value: str


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """Header match; ``name`` is lower-case. Also used for GRPCRoute header matches."""

    name: str
    value: str
    type: StringMatchType = StringMatchType.EXACT  # EXACT or REGEX


@dataclass(frozen=True, slots=True)
class QueryParamMatch:
    name: str
    value: str
    type: StringMatchType = StringMatchType.EXACT  # EXACT or REGEX


@dataclass(frozen=True, slots=True)
class HeaderValue:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    """Gateway API header modifier: set overwrites, add appends, remove deletes."""

    set: tuple[HeaderValue, ...] = ()
    add: tuple[HeaderValue, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    """RequestRedirect. ``None`` fields keep the request's value.

    ``path_full`` replaces the whole path; ``path_prefix`` replaces the matched prefix (the
    route's path match is then a PREFIX match).
    """

    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path_full: str | None = None
    path_prefix: str | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class URLRewrite:
    hostname: str | None = None
    path_full: str | None = None
    path_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    """RequestMirror; ``percent`` in [0, 100]."""

    cluster: Cluster
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class DirectResponse:
    status_code: int
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; ``None`` means Envoy's default, 0 means no timeout."""

    request: float | None = None
    backend_request: float | None = None


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    """One match of one rule of an HTTPRoute or GRPCRoute, on one hostname.

    ``name`` is ``httproute/<ns>/<name>/rule/<i>/match/<j>`` (or ``grpcroute/…``).
    ``hostname`` is the virtual host it belongs to (``*`` for all). ``grpc`` marks routes from
    GRPCRoute, whose method matches are already turned into ``path_match``.

    Exactly one of ``destination``, ``redirect`` or ``direct_response`` is set.
    """

    name: str
    hostname: str
    path_match: PathMatch | None = None
    header_matches: tuple[HeaderMatch, ...] = ()
    query_param_matches: tuple[QueryParamMatch, ...] = ()
    method: str | None = None
    grpc: bool = False
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    url_rewrite: URLRewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    timeouts: Timeouts | None = None
    destination: RouteDestination | None = None
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None


@dataclass(frozen=True, slots=True)
class Certificate:
    """A TLS certificate from a kubernetes.io/tls Secret; ``name`` is ``<ns>/<secret>``."""

    name: str
    cert_pem: str
    key_pem: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS termination on an HTTPS listener."""

    certificates: tuple[Certificate, ...]
    alpn_protocols: tuple[str, ...] = ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class HTTPListener:
    """A Gateway listener of protocol HTTP or HTTPS.

    ``name`` is ``<ns>/<gateway>/<listener>``. ``hostnames`` is the listener's hostname
    (``("*",)`` when unset). Listeners that share a port are merged by the xDS translator
    into one Envoy listener: HTTP ones into one route configuration, HTTPS ones into one
    filter chain per listener, selected by SNI.
    """

    name: str
    address: str
    port: int
    hostnames: tuple[str, ...]
    routes: tuple[HTTPRoute, ...]
    tls: TLSConfig | None = None


@dataclass(frozen=True, slots=True)
class TCPRoute:
    """A TCPRoute rule, or a TLSRoute on a passthrough listener (``sni_hostnames`` set).

    ``name`` is ``tcproute/<ns>/<name>/rule/<i>`` or ``tlsroute/<ns>/<name>/rule/<i>``.
    """

    name: str
    destination: RouteDestination
    sni_hostnames: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPListener:
    """A TCP listener, or a TLS-passthrough listener (``tls_passthrough``)."""

    name: str
    address: str
    port: int
    routes: tuple[TCPRoute, ...]
    tls_passthrough: bool = False


@dataclass(frozen=True, slots=True)
class UDPRoute:
    name: str
    destination: RouteDestination


@dataclass(frozen=True, slots=True)
class UDPListener:
    name: str
    address: str
    port: int
    route: UDPRoute | None = None


@dataclass(frozen=True, slots=True)
class AccessLogSink:
    """A gRPC access-log service (``egobs sink``) every HTTP and TCP listener streams to.

    ``name`` names the Envoy cluster ``egobs/als/<name>``; ``log_name`` tells the sink which
    logger an entry came from when one sink serves several.
    """

    name: str
    host: str
    port: int
    log_name: str = "egobs"


@dataclass(frozen=True, slots=True)
class Gateway:
    """The xDS IR of one Gateway: everything its proxies must serve.

    ``name`` is ``<ns>/<gateway>``; it is also the Envoy node cluster of its proxies.
    """

    name: str
    http: tuple[HTTPListener, ...] = ()
    tcp: tuple[TCPListener, ...] = ()
    udp: tuple[UDPListener, ...] = ()
    access_log_sinks: tuple[AccessLogSink, ...] = ()


# --------------------------------------------------------------------------- infra


@dataclass(frozen=True, slots=True)
class ProxyListener:
    """A port the proxy binds; ``port`` is as declared by the Gateway."""

    name: str
    protocol: Protocol
    port: int


@dataclass(frozen=True, slots=True)
class Proxy:
    """The infra IR of one Gateway: one Envoy deployment.

    ``name`` is ``<ns>/<gateway>``. ``config`` names the EnvoyProxy (``<ns>/<name>``) that
    parametrizes it, when there is one.
    """

    name: str
    gateway_class: str
    listeners: tuple[ProxyListener, ...]
    config: str | None = None


# --------------------------------------------------------------------------- rendering


def to_data(value: object) -> object:
    """Plain data (dicts, lists, scalars) for printing an IR value.

    Fields at their default are left out to keep dumps readable; private keys are redacted.
    """
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, object] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.name == "key_pem":
                out[f.name] = "[redacted]"
                continue
            default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
            if v is None or v == () or (default is not dataclasses.MISSING and v == default):
                continue
            out[f.name] = to_data(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    return value
