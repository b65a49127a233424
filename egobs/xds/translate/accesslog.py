"""Access logs: IR access-log settings → Envoy ``access_log`` entries, and telemetry clusters.

Every HTTP connection manager and TCP proxy of a Gateway gets the Gateway's access logs
(:func:`http_access_logs`, :func:`tcp_access_logs`); listener-type settings go on the
listener itself (:func:`listener_access_logs`). A setting's ``matches`` become a CEL
extension filter, all of which must hold. Sinks:

* File: ``envoy.access_loggers.file``, the format as text or JSON;
* ALS: ``envoy.access_loggers.http_grpc`` on HTTP, ``tcp_grpc`` on TCP (an HTTP-type ALS
  sink also gets TCP proxies' connection entries, so one sink sees all traffic);
* OpenTelemetry: ``envoy.access_loggers.open_telemetry``; a JSON format becomes the log
  record's attributes, a text format its body.

The clusters of gRPC sinks are ordinary CDS clusters (:func:`build_telemetry_cluster`):
unlike stats sinks, access loggers and tracers resolve their cluster when they first send,
so a change of sink is an xDS update, not a restart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as fmt_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2

from egobs import ir

from ._common import V3, pack, stat_safe
from .cluster import HTTP2_OPTIONS, HTTP_PROTOCOL_OPTIONS
from .newer_api import otel_access_log_config

__all__ = [
    "DEFAULT_JSON_FIELDS",
    "DEFAULT_OTLP_FORMAT",
    "FILE_LOGGER",
    "HTTP_GRPC_LOGGER",
    "OTEL_LOGGER",
    "TCP_GRPC_LOGGER",
    "build_telemetry_cluster",
    "http_access_logs",
    "listener_access_logs",
    "tcp_access_logs",
    "telemetry_clusters",
]

FILE_LOGGER = "envoy.access_loggers.file"
HTTP_GRPC_LOGGER = "envoy.access_loggers.http_grpc"
TCP_GRPC_LOGGER = "envoy.access_loggers.tcp_grpc"
OTEL_LOGGER = "envoy.access_loggers.open_telemetry"
_CEL_FILTER = "envoy.access_loggers.extension_filters.cel"

# A setting without a format: for files, a JSON line with what an operator reaches for
# first when a request went wrong, and the ids that join it to its trace and to the
# upstream's logs.
DEFAULT_JSON_FIELDS: tuple[ir.Attribute, ...] = tuple(
    ir.Attribute(k, v)
    for k, v in (
        ("start_time", "%START_TIME%"),
        ("method", "%REQ(:METHOD)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("protocol", "%PROTOCOL%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        ("connection_termination_details", "%CONNECTION_TERMINATION_DETAILS%"),
        ("upstream_transport_failure_reason", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration_ms", "%DURATION%"),
        ("upstream_service_time_ms", "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"),
        ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
        ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
        ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
        ("route_name", "%ROUTE_NAME%"),
        ("trace_id", "%TRACE_ID%"),
    )
)
_DEFAULT_FILE_FORMAT = ir.AccessLogFormat(json=DEFAULT_JSON_FIELDS)
# For OTLP, one text line as the record's body (Envoy's default format plus the route). The
# JSON fields as 25 attributes cost Envoy about a third of its request rate
# (bench/telemetry_overhead.py: 63k -> 28k rps on 2 cores, the text body 63k -> 54k); the
# record carries the trace and span ids in its own fields.
DEFAULT_OTLP_FORMAT = ir.AccessLogFormat(
    text='[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %ROUTE_NAME% '
    "%UPSTREAM_CLUSTER%"
)

# A request that matched a route has its name; one that did not (404 NR) has none. Route-
# type settings log the first, listener-type settings the second (Envoy Gateway's meaning).
_HAS_ROUTE = "xds.route_name != ''"
_NO_ROUTE = "xds.route_name == ''"

# 256 KiB batches (~900 entries at full rate) rather than Envoy's default 16 KiB: the sink's
# cost per gRPC message is large next to its cost per entry, so fewer, larger messages let it
# keep up with Envoy (bench/sink.py on 2 cores: 64 KiB dropped 1-3 % at ~58k entries/s in
# half the runs; 256 KiB dropped none at 60-62k/s, with less sink CPU). The flush interval
# bounds how stale logs get at low rates (Envoy's default is 1 s).
_BUFFER_BYTES = 256 * 1024
_FLUSH_INTERVAL_MS = 500
_CONNECT_TIMEOUT_S = 2
# Telemetry calls are many and small (one per flush per worker, one per span batch): Envoy's
# default of 1,024 pending requests per cluster is what overflowed and lost spans under load
# (shared/notes/envoy-facts.md); raise every limit so a slow collector queues, not drops.
_CIRCUIT_LIMIT = 1 << 20


def http_access_logs(logs: tuple[ir.AccessLog, ...]) -> list[accesslog_pb2.AccessLog]:
    """The access logs of an HTTP connection manager (one entry per request)."""
    return list(_http_access_logs(logs))


@functools.lru_cache(maxsize=64)
def _http_access_logs(logs: tuple[ir.AccessLog, ...]) -> tuple[accesslog_pb2.AccessLog, ...]:
    out = []
    for log in logs:
        cel = list(log.matches)
        if log.type is ir.AccessLogType.ROUTE:
            cel.append(_HAS_ROUTE)
        elif log.type is ir.AccessLogType.LISTENER:
            cel.append(_NO_ROUTE)
        for sink in log.sinks:
            out.append(_logger(sink, log.format, cel, http=True))
    return tuple(out)


def tcp_access_logs(logs: tuple[ir.AccessLog, ...]) -> list[accesslog_pb2.AccessLog]:
    """The access logs of a TCP proxy (one entry per connection); route-type settings and
    ones with CEL matches (request attributes) do not apply."""
    return [
        _logger(sink, log.format, [], http=False)
        for log in logs
        if log.type is None and not log.matches
        for sink in log.sinks
    ]


def listener_access_logs(logs: tuple[ir.AccessLog, ...]) -> list[accesslog_pb2.AccessLog]:
    """Listener-level logs (connections that never reach a filter chain's HTTP or TCP
    filter, e.g. failed TLS handshakes) for listener-type settings."""
    return [
        _logger(sink, log.format, [], http=False)
        for log in logs
        if log.type is ir.AccessLogType.LISTENER and not log.matches
        for sink in log.sinks
        if not isinstance(sink, ir.GrpcAccessLog) or not sink.http
    ]


def telemetry_clusters(gateway: ir.Gateway) -> Iterable[ir.TelemetryCluster]:
    """The clusters the Gateway's access logs and tracing send to, each once."""
    seen: set[str] = set()
    for log in gateway.access_logs:
        for sink in log.sinks:
            if isinstance(sink, ir.FileAccessLog) or sink.cluster.name in seen:
                continue
            seen.add(sink.cluster.name)
            yield sink.cluster
    if gateway.tracing is not None and gateway.tracing.cluster.name not in seen:
        yield gateway.tracing.cluster


# --------------------------------------------------------------------------- loggers


def _logger(
    sink: ir.AccessLogSink,
    fmt: ir.AccessLogFormat | None,
    cel: list[str],
    *,
    http: bool,
) -> accesslog_pb2.AccessLog:
    if isinstance(sink, ir.FileAccessLog):
        config = _file(sink.path, fmt or _DEFAULT_FILE_FORMAT)
        out = accesslog_pb2.AccessLog(name=FILE_LOGGER, typed_config=config)
    elif isinstance(sink, ir.GrpcAccessLog):
        if http and sink.http:
            out = accesslog_pb2.AccessLog(name=HTTP_GRPC_LOGGER, typed_config=_http_grpc(sink))
        else:
            out = accesslog_pb2.AccessLog(name=TCP_GRPC_LOGGER, typed_config=_tcp_grpc(sink))
    else:
        config = _otel(sink, fmt or DEFAULT_OTLP_FORMAT)
        out = accesslog_pb2.AccessLog(name=OTEL_LOGGER, typed_config=config)
    if cel:
        _set_cel(out.filter, cel)
    return out


def _set_cel(out: accesslog_pb2.AccessLogFilter, expressions: list[str]) -> None:
    def cel(expression: str, into: accesslog_pb2.AccessLogFilter) -> None:
        into.extension_filter.name = _CEL_FILTER
        into.extension_filter.typed_config.CopyFrom(
            pack(cel_pb2.ExpressionFilter(expression=expression))
        )

    if len(expressions) == 1:
        cel(expressions[0], out)
        return
    for expression in expressions:
        cel(expression, out.and_filter.filters.add())


def _format(fmt: ir.AccessLogFormat) -> fmt_pb2.SubstitutionFormatString:
    out = fmt_pb2.SubstitutionFormatString()
    if fmt.text is not None:
        # Envoy writes text formats as given: one line per entry needs the newline.
        text = fmt.text if fmt.text.endswith("\n") else fmt.text + "\n"
        out.text_format_source.inline_string = text
        return out
    for attr in fmt.json:
        out.json_format.fields[attr.key].string_value = attr.value
    return out


@functools.lru_cache(maxsize=64)
def _file(path: str, fmt: ir.AccessLogFormat) -> any_pb2.Any:
    config = file_pb2.FileAccessLog(path=path)
    config.log_format.CopyFrom(_format(fmt))
    return pack(config)


def _common(
    sink: ir.GrpcAccessLog | ir.OpenTelemetryAccessLog,
) -> als_pb2.CommonGrpcAccessLogConfig:
    out = als_pb2.CommonGrpcAccessLogConfig(log_name=sink.log_name, transport_api_version=V3)
    out.grpc_service.envoy_grpc.cluster_name = sink.cluster.name
    if isinstance(sink, ir.OpenTelemetryAccessLog):
        for header in sink.headers:
            out.grpc_service.initial_metadata.add(key=header.name.lower(), value=header.value)
    out.buffer_size_bytes.value = _BUFFER_BYTES
    out.buffer_flush_interval.FromMilliseconds(_FLUSH_INTERVAL_MS)
    return out


@functools.lru_cache(maxsize=64)
def _http_grpc(sink: ir.GrpcAccessLog) -> any_pb2.Any:
    config = als_pb2.HttpGrpcAccessLogConfig(common_config=_common(sink))
    config.additional_request_headers_to_log.extend(sink.request_headers)
    config.additional_response_headers_to_log.extend(sink.response_headers)
    config.additional_response_trailers_to_log.extend(sink.response_trailers)
    return pack(config)


@functools.lru_cache(maxsize=64)
def _tcp_grpc(sink: ir.GrpcAccessLog) -> any_pb2.Any:
    return pack(als_pb2.TcpGrpcAccessLogConfig(common_config=_common(sink)))


@functools.lru_cache(maxsize=64)
def _otel(sink: ir.OpenTelemetryAccessLog, fmt: ir.AccessLogFormat) -> any_pb2.Any:
    return otel_access_log_config(
        sink, fmt, buffer_bytes=_BUFFER_BYTES, flush_interval_ms=_FLUSH_INTERVAL_MS
    )


# --------------------------------------------------------------------------- clusters


@functools.lru_cache(maxsize=64)
def build_telemetry_cluster(cluster: ir.TelemetryCluster) -> cluster_pb2.Cluster:
    """The cluster of a telemetry destination; the same object for the same IR value.

    Inline endpoints rather than EDS: a collector's address is configuration, and an inline
    cluster is usable before any EDS response arrives.
    """
    out = cluster_pb2.Cluster(name=cluster.name)
    stat_name = stat_safe(cluster.name)  # an EnvoyProxy's namespace/name may hold dots
    if stat_name != cluster.name:
        out.alt_stat_name = stat_name
    if cluster.address_type is ir.AddressType.IP:
        out.type = cluster_pb2.Cluster.STATIC
    else:
        out.type = cluster_pb2.Cluster.STRICT_DNS
        out.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    out.connect_timeout.seconds = _CONNECT_TIMEOUT_S
    # No per_connection_buffer_limit_bytes: it does not bound what Envoy's gRPC access
    # logger holds back (with a sink that stopped reading, Envoy dropped after the same ~55k
    # entries with 1, 8 and 32 MiB). Bursts are absorbed by the sink's HTTP/2 window and queue.
    thresholds = out.circuit_breakers.thresholds.add()
    thresholds.max_connections.value = _CIRCUIT_LIMIT
    thresholds.max_pending_requests.value = _CIRCUIT_LIMIT
    thresholds.max_requests.value = _CIRCUIT_LIMIT
    out.load_assignment.cluster_name = out.name
    lb_endpoints = out.load_assignment.endpoints.add().lb_endpoints
    for endpoint in cluster.endpoints:
        socket = lb_endpoints.add().endpoint.address.socket_address
        socket.address = endpoint.host
        socket.port_value = endpoint.port
    if cluster.http2:
        # gRPC needs HTTP/2; without it Envoy silently never sends a request.
        out.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(HTTP2_OPTIONS)
    if cluster.tls is not None:
        out.transport_socket.name = "envoy.transport_sockets.tls"
        out.transport_socket.typed_config.Pack(_upstream_tls(cluster.tls))
    return out


def _upstream_tls(tls: ir.TelemetryTLS) -> tls_pb2.UpstreamTlsContext:
    # Secrets named without an SDS source are the bootstrap's static ones: each proxy
    # presents its own Gateway's certificate through this cluster, the same for every one.
    context = tls_pb2.UpstreamTlsContext(sni=tls.sni)
    common = context.common_tls_context
    common.tls_certificate_sds_secret_configs.add(name=tls.certificate_secret)
    common.validation_context_sds_secret_config.name = tls.validation_secret
    return context
