"""Upstreams: IR Cluster → Envoy Cluster (+ ClusterLoadAssignment for EDS clusters)."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from egobs import ir

from ._common import BLACKHOLE_CLUSTER, pack, set_ads, stat_safe

__all__ = ["HTTP2_OPTIONS", "HTTP_PROTOCOL_OPTIONS", "build_blackhole_cluster", "build_cluster"]

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_CONNECT_TIMEOUT_S = 10


def _http2_options() -> http_protocol_options_pb2.HttpProtocolOptions:
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    return options


# Upstream HTTP/2 (gRPC backends, the access-log sink), packed once for every cluster.
HTTP2_OPTIONS = pack(_http2_options())


def _base(name: str) -> cluster_pb2.Cluster:
    out = cluster_pb2.Cluster(name=name, lb_policy=cluster_pb2.Cluster.ROUND_ROBIN)
    out.connect_timeout.seconds = _CONNECT_TIMEOUT_S
    stat_name = stat_safe(name)
    if stat_name != name:
        out.alt_stat_name = stat_name
    return out


def _load_assignment(
    out: endpoint_pb2.ClusterLoadAssignment, cluster: ir.Cluster
) -> endpoint_pb2.ClusterLoadAssignment:
    out.cluster_name = cluster.name
    if not cluster.endpoints:
        return out
    lb_endpoints = out.endpoints.add().lb_endpoints
    unix = cluster.address_type is ir.AddressType.UNIX
    for endpoint in cluster.endpoints:
        address = lb_endpoints.add().endpoint.address
        if unix:
            address.pipe.path = endpoint.host
        else:
            socket = address.socket_address
            socket.address = endpoint.host
            socket.port_value = endpoint.port
    return out


_NO_CLUSTER_STATS = ir.ClusterStats()


def build_cluster(
    cluster: ir.Cluster, *, stats: ir.ClusterStats = _NO_CLUSTER_STATS
) -> tuple[cluster_pb2.Cluster, endpoint_pb2.ClusterLoadAssignment | None]:
    """The Cluster and, for IP clusters, the ClusterLoadAssignment served over EDS.

    IP endpoints go through EDS so that an endpoint change replaces only the assignment;
    DNS names and unix sockets cannot be EDS endpoints and stay inline. ``stats`` turns on
    Envoy's optional per-endpoint and request/response size stats.
    """
    out = _base(cluster.name)
    if stats.per_endpoint:
        out.track_cluster_stats.per_endpoint_stats = True
    if stats.request_response_sizes:
        out.track_cluster_stats.request_response_sizes = True
    assignment = None
    if cluster.address_type is ir.AddressType.IP:
        out.type = cluster_pb2.Cluster.EDS
        set_ads(out.eds_cluster_config.eds_config)
        assignment = _load_assignment(endpoint_pb2.ClusterLoadAssignment(), cluster)
    elif cluster.address_type is ir.AddressType.FQDN:
        out.type = cluster_pb2.Cluster.STRICT_DNS
        out.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
        _load_assignment(out.load_assignment, cluster)
    else:
        out.type = cluster_pb2.Cluster.STATIC
        _load_assignment(out.load_assignment, cluster)
    if cluster.protocol is ir.AppProtocol.HTTP2:
        out.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(HTTP2_OPTIONS)
    return out, assignment


def build_blackhole_cluster() -> cluster_pb2.Cluster:
    """A static cluster without endpoints, for traffic that has no valid backend."""
    out = _base(BLACKHOLE_CLUSTER)
    out.type = cluster_pb2.Cluster.STATIC
    out.load_assignment.cluster_name = BLACKHOLE_CLUSTER
    return out
