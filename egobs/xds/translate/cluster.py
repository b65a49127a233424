"""Upstreams: IR Cluster → Envoy Cluster (+ ClusterLoadAssignment for EDS clusters)."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from egobs import ir

from ._common import BLACKHOLE_CLUSTER, pack, set_ads, stat_safe

__all__ = [
    "HTTP2_OPTIONS",
    "HTTP_PROTOCOL_OPTIONS",
    "build_blackhole_cluster",
    "build_cluster",
    "build_load_assignment",
    "inline_endpoints",
]

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# wellKnownCACertificates: System: the host's trust store, Debian's bundle (the path
# Envoy's own images use too).
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
_SAN_TYPES = {
    ir.SubjectAltNameType.DNS: common_pb2.SubjectAltNameMatcher.DNS,
    ir.SubjectAltNameType.URI: common_pb2.SubjectAltNameMatcher.URI,
}
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


def inline_endpoints(cluster: ir.Cluster) -> bool:
    """Whether the cluster carries its endpoints itself: DNS names and unix sockets cannot be
    EDS endpoints. IP clusters get theirs over EDS, so an endpoint change replaces only the
    ClusterLoadAssignment."""
    return cluster.address_type is not ir.AddressType.IP


def _load_assignment(
    out: endpoint_pb2.ClusterLoadAssignment,
    cluster: ir.Cluster,
    endpoints: tuple[ir.Endpoint, ...],
) -> endpoint_pb2.ClusterLoadAssignment:
    out.cluster_name = cluster.name
    if not endpoints:
        return out
    lb_endpoints = out.endpoints.add().lb_endpoints
    unix = cluster.address_type is ir.AddressType.UNIX
    for endpoint in endpoints:
        address = lb_endpoints.add().endpoint.address
        if unix:
            address.pipe.path = endpoint.host
        else:
            socket = address.socket_address
            socket.address = endpoint.host
            socket.port_value = endpoint.port
    return out


_NO_CLUSTER_STATS = ir.ClusterStats()


def build_load_assignment(
    cluster: ir.Cluster, endpoints: tuple[ir.Endpoint, ...]
) -> endpoint_pb2.ClusterLoadAssignment:
    """The ClusterLoadAssignment an IP cluster gets over EDS."""
    return _load_assignment(endpoint_pb2.ClusterLoadAssignment(), cluster, endpoints)


def build_cluster(
    cluster: ir.Cluster,
    *,
    endpoints: tuple[ir.Endpoint, ...] = (),
    stats: ir.ClusterStats = _NO_CLUSTER_STATS,
    client_certificate: str | None = None,
) -> cluster_pb2.Cluster:
    """The Cluster; ``endpoints`` are used only by clusters that carry them inline
    (:func:`inline_endpoints`). ``stats`` turns on Envoy's optional per-endpoint and
    request/response size stats. ``client_certificate``: the SDS secret a TLS cluster
    presents to its backend (the Gateway's ``spec.tls.backend``).
    """
    out = _base(cluster.name)
    if stats.per_endpoint:
        out.track_cluster_stats.per_endpoint_stats = True
    if stats.request_response_sizes:
        out.track_cluster_stats.request_response_sizes = True
    if cluster.address_type is ir.AddressType.IP:
        out.type = cluster_pb2.Cluster.EDS
        set_ads(out.eds_cluster_config.eds_config)
    elif cluster.address_type is ir.AddressType.FQDN:
        out.type = cluster_pb2.Cluster.STRICT_DNS
        out.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
        _load_assignment(out.load_assignment, cluster, endpoints)
    else:
        out.type = cluster_pb2.Cluster.STATIC
        _load_assignment(out.load_assignment, cluster, endpoints)
    if cluster.protocol is ir.AppProtocol.HTTP2:
        out.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(HTTP2_OPTIONS)
    if cluster.tls is not None:
        out.transport_socket.name = "envoy.transport_sockets.tls"
        out.transport_socket.typed_config.Pack(
            _upstream_tls(
                cluster.tls,
                http2=cluster.protocol is ir.AppProtocol.HTTP2,
                client_certificate=client_certificate,
            ),
            deterministic=True,
        )
    return out


def _upstream_tls(
    tls: ir.UpstreamTLS, *, http2: bool, client_certificate: str | None
) -> tls_pb2.UpstreamTlsContext:
    """TLS as a BackendTLSPolicy asks: SNI, a CA to chain to, and the names the backend's
    certificate must carry (the SNI hostname unless the policy lists its own)."""
    context = tls_pb2.UpstreamTlsContext(sni=tls.sni)
    common = context.common_tls_context
    if client_certificate is not None:
        sds = common.tls_certificate_sds_secret_configs.add(name=client_certificate)
        set_ads(sds.sds_config)
    if http2:
        common.alpn_protocols.append("h2")  # HTTP/2 over TLS is negotiated, not assumed
    validation = common.validation_context
    if tls.ca_pem is None:
        validation.trusted_ca.filename = SYSTEM_CA_FILE
    else:
        validation.trusted_ca.inline_string = tls.ca_pem
    names = tls.subject_alt_names or (ir.SubjectAltName(ir.SubjectAltNameType.DNS, tls.sni),)
    for name in names:
        matcher = validation.match_typed_subject_alt_names.add()
        matcher.san_type = _SAN_TYPES[name.type]
        matcher.matcher.exact = name.value
    return context


def build_blackhole_cluster() -> cluster_pb2.Cluster:
    """A static cluster without endpoints, for traffic that has no valid backend."""
    out = _base(BLACKHOLE_CLUSTER)
    out.type = cluster_pb2.Cluster.STATIC
    out.load_assignment.cluster_name = BLACKHOLE_CLUSTER
    return out
