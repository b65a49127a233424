"""The intermediate representation between the Gateway API translator and the xDS translator.

Two halves, as in Envoy Gateway:

* the **xDS IR** (:class:`Gateway`): per Gateway, the listeners it serves and, for each, the
  routes with everything resolved (hostnames intersected, backends resolved to clusters and
  weights, filters turned into concrete actions, TLS material read from Secrets), and the
  endpoint table of the clusters those routes name;
* the **infra IR** (:class:`Proxy`): which Envoy proxies to run and which ports they bind.

Every type is a frozen dataclass built from tuples, so IR values are immutable, hashable and
comparable. The xDS translator relies on that: it keys its per-resource cache by IR value, so
an unchanged route is never rebuilt. Names are stable and readable because they become Envoy
resource and stat names (``httproute/<ns>/<name>/rule/<i>/match/<j>``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CORS",
    "SCHEME_PORTS",
    "AccessLog",
    "AccessLogFormat",
    "AccessLogSink",
    "AccessLogType",
    "AddressType",
    "AppProtocol",
    "Attribute",
    "Certificate",
    "ClientValidation",
    "Cluster",
    "ClusterEndpoints",
    "ClusterStats",
    "DestinationSetting",
    "DirectResponse",
    "Endpoint",
    "FileAccessLog",
    "Gateway",
    "GrpcAccessLog",
    "HTTPListener",
    "HTTPRoute",
    "HeaderMatch",
    "HeaderModifier",
    "HeaderValue",
    "MetricsServiceStatsSink",
    "Mirror",
    "OpenTelemetryAccessLog",
    "OpenTelemetryStatsSink",
    "PathMatch",
    "Protocol",
    "Proxy",
    "ProxyListener",
    "ProxyStats",
    "QueryParamMatch",
    "Redirect",
    "RouteDestination",
    "StatsListener",
    "StatsMatch",
    "StatsMatchType",
    "StatsSink",
    "StringMatchType",
    "SubjectAltName",
    "SubjectAltNameType",
    "TCPListener",
    "TCPRoute",
    "TLSConfig",
    "TelemetryCluster",
    "TelemetryTLS",
    "Timeouts",
    "Tracing",
    "TracingTag",
    "TracingTagKind",
    "UDPListener",
    "UDPRoute",
    "URLRewrite",
    "UpstreamTLS",
    "to_data",
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


class SubjectAltNameType(enum.StrEnum):
    DNS = "DNS"
    URI = "URI"


@dataclass(frozen=True, slots=True)
class SubjectAltName:
    """A name the backend's certificate must carry (one of a policy's list suffices)."""

    type: SubjectAltNameType
    value: str


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """TLS from Envoy to a backend, as a BackendTLSPolicy asks: ``sni`` is sent, and the
    certificate must chain to ``ca_pem`` (PEM bundle; None: the system's trusted CAs) and
    carry one of ``subject_alt_names`` (empty: the DNS name ``sni``)."""

    sni: str
    ca_pem: str | None
    subject_alt_names: tuple[SubjectAltName, ...] = ()
    policy: str = ""  # ns/name of the BackendTLSPolicy, for debugging output


@dataclass(frozen=True, slots=True)
class Cluster:
    """An upstream: one Service port or one Backend, shared by every route that uses it.

    ``name`` is ``service/<ns>/<name>/<port>`` or ``backend/<ns>/<name>[/<port>]``; the
    xDS translator turns it into one Envoy Cluster. Routes refer to it by this value, which
    holds no endpoints: those are in the Gateway's endpoint table (:class:`ClusterEndpoints`),
    so an endpoint change recompiles no route and touches only that cluster's
    ClusterLoadAssignment.
    """

    name: str
    protocol: AppProtocol
    address_type: AddressType
    tls: UpstreamTLS | None = None  # None: plaintext


@dataclass(frozen=True, slots=True)
class ClusterEndpoints:
    """The endpoints of one cluster: one row of a Gateway's endpoint table.

    For an IP cluster this is its ClusterLoadAssignment (EDS); DNS names and unix sockets
    cannot be EDS endpoints, so those clusters carry them inline.
    """

    cluster: str
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class DestinationSetting:
    """One weighted share of a route's traffic, with the header changes that apply only to
    requests sent to this backend (HTTPRoute backendRef filters)."""

    cluster: Cluster
    weight: int
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None


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


SCHEME_PORTS: Mapping[str, int] = MappingProxyType({"http": 80, "https": 443})
"""The well-known port of each redirect scheme: a Location leaves it out."""


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
class CORS:
    """The cross-origin requests a route allows. ``allow_origins`` holds Gateway API origins:
    ``*``, or ``scheme://host[:port]`` where the host may start with ``*.``."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5
    allow_credentials: bool = False


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; ``None`` means Envoy's default, 0 means no timeout."""

    request: float | None = None
    backend_request: float | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """When a backend request is tried again (Gateway API ``retry``).

    Connection failures, refused streams and resets are always retried (the spec's SHOULD);
    ``codes`` adds those response statuses. ``attempts`` is the most retries (None: Envoy's
    default, 1); ``backoff`` the base wait in seconds (None: Envoy's 25 ms).
    """

    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: float | None = None


class SessionType(enum.Enum):
    COOKIE = "Cookie"
    HEADER = "Header"


@dataclass(frozen=True, slots=True)
class SessionPersistence:
    """Requests carrying the same session go to the same endpoint (Gateway API
    ``sessionPersistence``). ``name`` is the cookie or header; a cookie has ``path`` and,
    when permanent, ``ttl`` seconds (None: a session cookie)."""

    type: SessionType
    name: str
    path: str = "/"
    ttl: float | None = None


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
    cors: CORS | None = None
    timeouts: Timeouts | None = None
    retry: Retry | None = None
    session: SessionPersistence | None = None
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
class ClientValidation:
    """Client certificates an HTTPS listener checks (Gateway ``spec.tls.frontend``): they
    must chain to ``ca_pem``; with ``insecure_fallback`` a client without one, or with one
    that does not verify, is let in too."""

    ca_pem: str
    insecure_fallback: bool = False


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS termination on an HTTPS listener."""

    certificates: tuple[Certificate, ...]
    alpn_protocols: tuple[str, ...] = ("h2", "http/1.1")
    client_validation: ClientValidation | None = None


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


# --------------------------------------------------------------------------- telemetry


@dataclass(frozen=True, slots=True)
class Attribute:
    """A key and a value: OTLP resource attribute, log attribute or JSON log field."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class TelemetryTLS:
    """mTLS to a telemetry destination with the proxy's own identity: the names of the
    static secrets every proxy's bootstrap holds (its Gateway's client certificate, and the
    validation of the destination's certificate), and the SNI to send (empty: none)."""

    certificate_secret: str
    validation_secret: str
    sni: str = ""


@dataclass(frozen=True, slots=True)
class TelemetryCluster:
    """A collector that proxies stream telemetry to: one Envoy cluster, inline endpoints.

    ``name`` is the Envoy cluster name, ``telemetry/<what>/<ns>/<envoyproxy>/<i>`` (or
    ``telemetry/egobs-sink`` for the configured sink), so it cannot clash with route
    clusters. ``http2`` is True for gRPC (every sink but OTLP/HTTP traces). ``tls``: mTLS
    (the configured sink with ``proxyTelemetry.accessLogSink.tls``).
    """

    name: str
    endpoints: tuple[Endpoint, ...]
    address_type: AddressType = AddressType.IP
    http2: bool = True
    tls: TelemetryTLS | None = None


class AccessLogType(enum.StrEnum):
    """Which HTTP connection manager events log: per request (Route) or per connection
    without a route (Listener). ``None`` on an :class:`AccessLog` means both."""

    LISTENER = "Listener"
    ROUTE = "Route"


@dataclass(frozen=True, slots=True)
class AccessLogFormat:
    """Text with Envoy command operators, or a JSON object of named operators."""

    text: str | None = None
    json: tuple[Attribute, ...] = ()


@dataclass(frozen=True, slots=True)
class FileAccessLog:
    path: str


@dataclass(frozen=True, slots=True)
class GrpcAccessLog:
    """Envoy's gRPC access-log service (ALS); ``http`` False logs TCP connections only."""

    cluster: TelemetryCluster
    log_name: str
    http: bool = True
    request_headers: tuple[str, ...] = ()
    response_headers: tuple[str, ...] = ()
    response_trailers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenTelemetryAccessLog:
    """OTLP/gRPC logs; the log body is the access log's format."""

    cluster: TelemetryCluster
    log_name: str
    resource_attributes: tuple[Attribute, ...] = ()
    headers: tuple[HeaderValue, ...] = ()


AccessLogSink = FileAccessLog | GrpcAccessLog | OpenTelemetryAccessLog


@dataclass(frozen=True, slots=True)
class AccessLog:
    """One access-log setting: which entries (``matches``, CEL, all must hold), in which
    ``format``, to which sinks. ``format`` None is each sink's default: JSON lines with the
    fields an operator needs for files, a one-line text body for OTLP; ALS sinks have their
    own fixed fields."""

    name: str
    sinks: tuple[AccessLogSink, ...]
    format: AccessLogFormat | None = None
    matches: tuple[str, ...] = ()
    type: AccessLogType | None = None


class TracingTagKind(enum.StrEnum):
    LITERAL = "Literal"
    ENVIRONMENT = "Environment"
    REQUEST_HEADER = "RequestHeader"
    FORMATTER = "Formatter"  # a value with Envoy command operators (``tags``)


@dataclass(frozen=True, slots=True)
class TracingTag:
    """A span tag: a literal, an environment variable or request header (with a default),
    or a formatter string."""

    name: str
    kind: TracingTagKind
    value: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Tracing:
    """OpenTelemetry tracing on every HTTP connection manager of a Gateway.

    ``http_path`` set means OTLP/HTTP to that path of ``cluster``; otherwise OTLP/gRPC.
    ``sampling_percent`` is the share of requests without a sampling decision that start a
    trace. Span names default to Envoy's; ``span_name_server``/``_client`` override them.
    """

    cluster: TelemetryCluster
    service_name: str
    sampling_percent: float = 100.0
    http_path: str | None = None
    authority: str | None = None
    headers: tuple[HeaderValue, ...] = ()
    resource_attributes: tuple[Attribute, ...] = ()
    tags: tuple[TracingTag, ...] = ()
    span_name_server: str | None = None
    span_name_client: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """Optional per-cluster stats every cluster of a Gateway gets."""

    per_endpoint: bool = False
    request_response_sizes: bool = False


@dataclass(frozen=True, slots=True)
class Gateway:
    """The xDS IR of one Gateway: everything its proxies must serve.

    ``name`` is ``<ns>/<gateway>``; it is also the Envoy node cluster of its proxies.
    Its telemetry (``access_logs``, ``tracing``, ``cluster_stats``, ``virtual_host_stats``,
    ``route_stats``)
    comes from its EnvoyProxy and the control plane's defaults; what of it lives in the
    bootstrap is on the :class:`Proxy` instead.
    """

    name: str
    http: tuple[HTTPListener, ...] = ()
    tcp: tuple[TCPListener, ...] = ()
    udp: tuple[UDPListener, ...] = ()
    access_logs: tuple[AccessLog, ...] = ()
    tracing: Tracing | None = None
    cluster_stats: ClusterStats = ClusterStats()
    virtual_host_stats: bool = False
    route_stats: bool = False
    # The endpoint table: a row per cluster the routes above use, sorted by cluster name.
    endpoints: tuple[ClusterEndpoints, ...] = ()
    # What it presents to backends it reaches over TLS (Gateway spec.tls.backend).
    backend_client_certificate: Certificate | None = None


# --------------------------------------------------------------------------- infra


@dataclass(frozen=True, slots=True)
class ProxyListener:
    """A port the proxy binds; ``port`` is as declared by the Gateway."""

    name: str
    protocol: Protocol
    port: int


@dataclass(frozen=True, slots=True)
class StatsListener:
    """Envoy's stats in Prometheus exposition on a listener of their own (not the admin
    port): ``GET /stats/prometheus`` on ``address:port``, gzip-compressed when asked."""

    address: str
    port: int
    gzip: bool = False


@dataclass(frozen=True, slots=True)
class OpenTelemetryStatsSink:
    """Envoy's stats pushed as OTLP/gRPC metrics (``envoy.stat_sinks.open_telemetry``)."""

    cluster: TelemetryCluster
    report_counters_as_deltas: bool = False
    report_histograms_as_deltas: bool = False
    resource_attributes: tuple[Attribute, ...] = ()
    headers: tuple[HeaderValue, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsServiceStatsSink:
    """Envoy's stats pushed to a gRPC metrics service (``envoy.stat_sinks.metrics_service``)."""

    cluster: TelemetryCluster
    report_counters_as_deltas: bool = False


StatsSink = OpenTelemetryStatsSink | MetricsServiceStatsSink


class StatsMatchType(enum.StrEnum):
    EXACT = "Exact"
    PREFIX = "Prefix"
    SUFFIX = "Suffix"
    REGEX = "RegularExpression"


@dataclass(frozen=True, slots=True)
class StatsMatch:
    """One entry of the stats inclusion list; no entries means every stat."""

    type: StatsMatchType
    value: str


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """What of a proxy's telemetry lives in its bootstrap (a change restarts the proxy).

    Stats sinks are there because Envoy resolves their clusters at start-up only (a CDS
    cluster gives ``Unknown gRPC client cluster``); the inclusion list because Envoy reads
    it once. Access logs and tracing are in the xDS IR (:class:`Gateway`) and change live.
    """

    prometheus: StatsListener | None = None
    sinks: tuple[StatsSink, ...] = ()
    matches: tuple[StatsMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class Proxy:
    """The infra IR of one Gateway: one Envoy deployment.

    ``name`` is ``<ns>/<gateway>``. ``config`` names the EnvoyProxy (``<ns>/<name>``) that
    parametrizes it, when there is one. ``stats`` is what of its telemetry the bootstrap
    carries.
    """

    name: str
    gateway_class: str
    listeners: tuple[ProxyListener, ...]
    config: str | None = None
    stats: ProxyStats = ProxyStats()


# --------------------------------------------------------------------------- rendering


def to_data(value: object) -> object:
    """Plain data (dicts, lists, scalars) for printing an IR value.

    Keys are the fields' names in camelCase (the input models' own alias rule), as in every
    other document egobs prints (statuses, xDS JSON). Fields at their default are left out
    to keep dumps readable; private keys are redacted.
    """
    import dataclasses

    from pydantic.alias_generators import to_camel

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, object] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            key = to_camel(f.name)
            if f.name == "key_pem":
                out[key] = "[redacted]"
                continue
            default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
            if v is None or v == () or (default is not dataclasses.MISSING and v == default):
                continue
            out[key] = to_data(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    return value
