"""gRPC access logging to ``egobs sink``: the access-log configs and the cluster they use.

Every HTTP connection manager and TCP proxy of a Gateway with sinks gets one
``envoy.access_loggers.http_grpc`` / ``tcp_grpc`` logger per sink. The sink's cluster is
an ordinary CDS cluster: unlike stats sinks, access loggers resolve their gRPC cluster
when the first entry is flushed, so it does not have to be in the bootstrap.
"""

from __future__ import annotations

import functools
import ipaddress

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2

from egobs import ir

from ._common import V3, pack
from .cluster import HTTP2_OPTIONS, HTTP_PROTOCOL_OPTIONS

__all__ = [
    "HTTP_GRPC_LOGGER",
    "REQUEST_HEADERS_TO_LOG",
    "RESPONSE_HEADERS_TO_LOG",
    "TCP_GRPC_LOGGER",
    "build_access_log_cluster",
    "cluster_name",
    "http_access_logs",
    "tcp_access_logs",
]

HTTP_GRPC_LOGGER = "envoy.access_loggers.http_grpc"
TCP_GRPC_LOGGER = "envoy.access_loggers.tcp_grpc"

# The sink redacts credentials; they are still logged so a sink can show that a request
# carried them, and so the redaction is exercised rather than assumed.
REQUEST_HEADERS_TO_LOG = (
    "authorization",
    "cookie",
    "content-type",
    "content-length",
    "traceparent",
    "x-forwarded-for",
)
RESPONSE_HEADERS_TO_LOG = ("content-type", "content-length", "location", "set-cookie")

# 256 KiB batches (~900 entries at full rate) rather than Envoy's default 16 KiB: the sink's
# cost per gRPC message is large next to its cost per entry, so fewer, larger messages let it
# keep up with Envoy (bench/sink.py on 2 cores: 64 KiB dropped 1-3 % at ~58k entries/s in
# half the runs; 256 KiB dropped none at 60-62k/s, with less sink CPU). The flush interval
# bounds how stale logs get at low rates (Envoy's default is 1 s).
_BUFFER_BYTES = 256 * 1024
_FLUSH_INTERVAL_MS = 500
_CONNECT_TIMEOUT_S = 2


def cluster_name(sink: ir.AccessLogSink) -> str:
    return f"egobs/als/{sink.name}"


def _common(sink: ir.AccessLogSink, out: als_pb2.CommonGrpcAccessLogConfig) -> None:
    out.log_name = sink.log_name
    out.transport_api_version = V3
    out.grpc_service.envoy_grpc.cluster_name = cluster_name(sink)
    out.buffer_size_bytes.value = _BUFFER_BYTES
    out.buffer_flush_interval.FromMilliseconds(_FLUSH_INTERVAL_MS)


def http_access_logs(
    sinks: tuple[ir.AccessLogSink, ...],
    *,
    request_headers: tuple[str, ...] = REQUEST_HEADERS_TO_LOG,
    response_headers: tuple[str, ...] = RESPONSE_HEADERS_TO_LOG,
) -> list[accesslog_pb2.AccessLog]:
    """One HTTP gRPC access logger per sink, for an HTTP connection manager."""
    out = []
    for sink in sinks:
        config = als_pb2.HttpGrpcAccessLogConfig()
        _common(sink, config.common_config)
        config.additional_request_headers_to_log.extend(request_headers)
        config.additional_response_headers_to_log.extend(response_headers)
        out.append(accesslog_pb2.AccessLog(name=HTTP_GRPC_LOGGER, typed_config=pack(config)))
    return out


def tcp_access_logs(sinks: tuple[ir.AccessLogSink, ...]) -> list[accesslog_pb2.AccessLog]:
    """One TCP gRPC access logger per sink, for a TCP proxy (one entry per connection)."""
    out = []
    for sink in sinks:
        config = als_pb2.TcpGrpcAccessLogConfig()
        _common(sink, config.common_config)
        out.append(accesslog_pb2.AccessLog(name=TCP_GRPC_LOGGER, typed_config=pack(config)))
    return out


@functools.lru_cache(maxsize=64)
def build_access_log_cluster(sink: ir.AccessLogSink) -> cluster_pb2.Cluster:
    """The sink's HTTP/2 cluster; the same object for the same sink, like cached clusters.

    Inline endpoints rather than EDS: the sink's address comes from configuration, not from
    a Service, and an inline cluster is usable before any EDS response arrives.
    """
    out = cluster_pb2.Cluster(name=cluster_name(sink))
    try:
        ipaddress.ip_address(sink.host)
        out.type = cluster_pb2.Cluster.STATIC
    except ValueError:
        out.type = cluster_pb2.Cluster.STRICT_DNS
        out.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    out.connect_timeout.seconds = _CONNECT_TIMEOUT_S
    # No per_connection_buffer_limit_bytes: it does not bound what Envoy's gRPC access
    # logger holds back (with a sink that stopped reading, Envoy dropped after the same ~55k
    # entries with 1, 8 and 32 MiB). Bursts are absorbed by the sink's HTTP/2 window and queue.
    out.load_assignment.cluster_name = out.name
    socket = out.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    socket.address = sink.host
    socket.port_value = sink.port
    # gRPC needs HTTP/2 to the sink; without it Envoy silently never sends a request.
    out.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(HTTP2_OPTIONS)
    return out
