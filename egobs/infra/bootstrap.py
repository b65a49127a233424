"""The Envoy bootstrap of a proxy, rendered from its infra IR.

Everything a proxy serves arrives over one ADS stream from the egobs xDS server. The
bootstrap says who the proxy is (``node.cluster`` selects its Gateway's snapshot), where
the xDS server and the admin interface are, and holds the telemetry that Envoy only reads
at start-up (:class:`egobs.ir.ProxyStats`):

* the Prometheus stats listener: ``GET /stats/prometheus`` on its own port, proxied to the
  admin interface (which stays on loopback), optionally gzip-compressed;
* stats sinks (OpenTelemetry, metrics service) and their clusters: Envoy resolves a stats
  sink's gRPC cluster once, at start-up, so a CDS cluster does not do;
* the stats inclusion list, and tag extractors for egobs's route stat names;
* the OpenTelemetry tracer's flush settings (static runtime), so spans are not lost under
  load (shared/notes/envoy-facts.md).

The host infra restarts an Envoy whenever its rendered bootstrap changes, so what changes
often (access logs, tracing) lives in xDS instead.

With :class:`ProxyTLS` the proxy speaks mTLS to the xDS server and/or the access-log sink.
Its identity is its Gateway's client certificate from ``egobs certgen``
(``<cert_dir>/<namespace>/<name>/cert.pem`` and ``key.pem``, read by Envoy at start-up),
held as static secrets with fixed names (:data:`XDS_CLIENT_SECRET`, :data:`XDS_CA_SECRET`,
:data:`SINK_CLIENT_SECRET`, :data:`SINK_CA_SECRET`): the xDS cluster here refers to the
first two, and the sink's cluster, which arrives over CDS and is the same for every
Gateway, can refer to the other two by name, so each proxy presents its own certificate
through the same cluster. The server must present a certificate that chains to the CA and
names the host the proxy connects to (a DNS name or IP SAN, as HTTPS checks it).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from egobs import ir
from egobs.certs import gateway_pair, is_ip
from egobs.xds.translate import build_telemetry_cluster

__all__ = [
    "ADMIN_CLUSTER",
    "SINK_CA_SECRET",
    "SINK_CLIENT_SECRET",
    "STATS_LISTENER",
    "TRACER_RUNTIME",
    "XDS_CA_SECRET",
    "XDS_CLIENT_SECRET",
    "XDS_CLUSTER",
    "ProxyTLS",
    "UpstreamTLS",
    "bootstrap",
]

XDS_CLUSTER = "xds_cluster"
ADMIN_CLUSTER = "egobs/admin"
STATS_LISTENER = "egobs/stats"
XDS_CLIENT_SECRET = "egobs/xds-client"
XDS_CA_SECRET = "egobs/xds-ca"
SINK_CLIENT_SECRET = "egobs/sink-client"
SINK_CA_SECRET = "egobs/sink-ca"

# The OpenTelemetry tracer flushes every 5 spans or 5 s by default: at thousands of
# requests a second that is thousands of export calls, which overflow the telemetry
# cluster's pending requests and lose spans (measured: shared/notes/envoy-facts.md).
# 512 spans or 1 s delivered every span at full rate on 2 cores.
TRACER_RUNTIME: Mapping[str, int] = {
    "tracing.opentelemetry.min_flush_spans": 512,
    "tracing.opentelemetry.flush_interval_ms": 1000,
}

_TYPE = "type.googleapis.com/"
_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
# Envoy rejects flush intervals outside [1 ms, 300 s) at startup; fail earlier, with our name.
_MIN_FLUSH_S = 0.001
_MAX_FLUSH_S = 300.0
# gzip only pays off on a full scrape (hundreds of KiB); small replies are sent as they are.
_GZIP_MIN_BYTES = 1024


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """mTLS from a proxy to one of egobs's gRPC servers.

    The proxy presents its Gateway's client certificate from ``cert_dir`` (``egobs
    certgen``'s ``gateways/``) and accepts the server only with a certificate that chains
    to ``ca_file`` and names ``server_name`` (None, for the xDS server only: the host the
    proxy connects to). Paths are as the Envoy sees them.
    """

    ca_file: str
    cert_dir: str
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyTLS:
    """Which of the proxy's connections to egobs use mTLS (None: plaintext)."""

    xds: UpstreamTLS | None = None
    sink: UpstreamTLS | None = None


def bootstrap(
    proxy: ir.Proxy,
    *,
    node_id: str,
    xds_host: str,
    xds_port: int,
    admin_host: str = "127.0.0.1",
    admin_port: int,
    stats_flush_interval_s: float = 5.0,
    delta: bool = False,
    runtime: Mapping[str, Any] | None = None,
    tls: ProxyTLS | None = None,
) -> dict[str, Any]:
    """The bootstrap (JSON-able dict) of ``proxy``, taking all its resources from ADS.

    ``proxy.name`` (``<namespace>/<gateway>``) becomes ``node.cluster``, the key the
    snapshot cache serves. ``delta`` selects incremental xDS (``DELTA_GRPC``) instead of
    state-of-the-world. ``admin_port`` 0 lets Envoy pick a free port (read it back with
    ``--admin-address-path``); a proxy with a stats listener needs a real one, which the
    listener forwards to. ``runtime`` adds to the static runtime layer; the admin layer
    after it lets ``/runtime_modify`` override those keys on a live proxy. ``tls`` turns
    on mTLS to the xDS server and the sink (see the module docstring).
    """
    if not node_id or not proxy.name:
        raise ValueError("node_id and node_cluster must be non-empty: Envoy exits without them")
    if not 1 <= xds_port <= 65535:
        raise ValueError(f"xds_port {xds_port} is outside 1..65535")
    if not 0 <= admin_port <= 65535:
        raise ValueError(f"admin_port {admin_port} is outside 0..65535")
    if not _MIN_FLUSH_S <= stats_flush_interval_s < _MAX_FLUSH_S:
        raise ValueError(f"stats_flush_interval_s {stats_flush_interval_s} is outside [0.001, 300)")
    stats = proxy.stats
    if stats.prometheus is not None and admin_port == 0:
        raise ValueError("a proxy with a stats listener needs a fixed admin_port to forward to")
    host, static_ip = _connect_host(xds_host)
    xds_cluster = _xds_cluster(host, static_ip, xds_port)
    secrets: list[dict[str, Any]] = []
    if tls is not None and tls.xds is not None:
        server_name = tls.xds.server_name or host
        xds_cluster["transport_socket"] = _tls_socket(XDS_CLIENT_SECRET, XDS_CA_SECRET, server_name)
        secrets += _tls_secrets(proxy.name, tls.xds, XDS_CLIENT_SECRET, XDS_CA_SECRET, server_name)
    if tls is not None and tls.sink is not None:
        # Used by the sink's cluster, which comes over CDS (see the module docstring).
        sink_name = tls.sink.server_name
        if sink_name is None:
            raise ValueError("tls.sink.server_name: the name the sink's certificate carries")
        secrets += _tls_secrets(proxy.name, tls.sink, SINK_CLIENT_SECRET, SINK_CA_SECRET, sink_name)
    clusters: list[dict[str, Any]] = [xds_cluster]
    listeners: list[dict[str, Any]] = []
    if stats.prometheus is not None:
        admin_ip, _ = _connect_host(admin_host)
        clusters.append(_admin_cluster(admin_ip, admin_port))
        listeners.append(_stats_listener(stats.prometheus))
    clusters.extend(_cluster_dict(sink.cluster) for sink in stats.sinks)
    out: dict[str, Any] = {
        "node": {"id": node_id, "cluster": proxy.name},
        "admin": {"address": _socket_address(admin_host, admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                # The node is only needed to pick the snapshot; repeating it in every
                # request would only cost bytes.
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": clusters,
            **({"listeners": listeners} if listeners else {}),
            **({"secrets": secrets} if secrets else {}),
        },
        "stats_config": _stats_config(stats),
        "stats_flush_interval": _duration(stats_flush_interval_s),
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": {**TRACER_RUNTIME, **(runtime or {})}},
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }
    if stats.sinks:
        out["stats_sinks"] = [_stats_sink(sink) for sink in stats.sinks]
    return out


# --------------------------------------------------------------------------- clusters


def _xds_cluster(host: str, static_ip: bool, port: int) -> dict[str, Any]:
    return {
        "name": XDS_CLUSTER,
        # STATIC needs an IP literal; a host name is resolved (and re-resolved when the
        # control plane moves) with STRICT_DNS.
        "type": "STATIC" if static_ip else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}
            ],
        },
        # gRPC needs HTTP/2; without this Envoy keeps the cluster on HTTP/1.1, never sends
        # a request and logs nothing about it.
        "typed_extension_protocol_options": {
            _HTTP_PROTOCOL_OPTIONS: {
                "@type": _TYPE + _HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        # A control plane that vanishes without a FIN (host down, network cut) is noticed
        # and reconnected instead of leaving the stream hanging.
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_time": 30, "keepalive_interval": 10}
        },
    }


def _tls_socket(client_secret: str, ca_secret: str, server_name: str) -> dict[str, Any]:
    """The TLS transport socket of a cluster to one of egobs's servers."""
    context: dict[str, Any] = {
        "@type": _TYPE + _UPSTREAM_TLS,
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [{"name": client_secret}],
            "validation_context_sds_secret_config": {"name": ca_secret},
        },
    }
    if not is_ip(server_name):
        context["sni"] = server_name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _tls_secrets(
    gateway: str, tls: UpstreamTLS, client_secret: str, ca_secret: str, server_name: str
) -> list[dict[str, Any]]:
    """The proxy's certificate and the server's validation, as static secrets: an SDS
    secret config with a name and no source refers to these."""
    pair = gateway_pair(tls.cert_dir, gateway)
    san_type = "IP_ADDRESS" if is_ip(server_name) else "DNS"
    return [
        {
            "name": client_secret,
            "tls_certificate": {
                "certificate_chain": {"filename": str(pair.cert)},
                "private_key": {"filename": str(pair.key)},
            },
        },
        {
            "name": ca_secret,
            "validation_context": {
                "trusted_ca": {"filename": tls.ca_file},
                "match_typed_subject_alt_names": [
                    {"san_type": san_type, "matcher": {"exact": server_name}}
                ],
            },
        },
    ]


def _admin_cluster(host: str, port: int) -> dict[str, Any]:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}
            ],
        },
    }


def _cluster_dict(cluster: ir.TelemetryCluster) -> dict[str, Any]:
    # The same cluster the xDS translator builds for access logs and tracing, as JSON.
    # (Through JSON: MessageToDict hands back OrderedDicts inside Any fields.)
    data = json_format.MessageToJson(
        build_telemetry_cluster(cluster), preserving_proto_field_name=True
    )
    out: dict[str, Any] = json.loads(data)
    return out


# --------------------------------------------------------------------------- stats


def _stats_listener(listener: ir.StatsListener) -> dict[str, Any]:
    """A listener that serves only ``/stats/prometheus`` (from the admin interface), so
    scrapers never reach the admin's mutating endpoints."""
    http_filters: list[dict[str, Any]] = []
    if listener.gzip:
        http_filters.append(
            {
                "name": "envoy.filters.http.compressor",
                "typed_config": {
                    "@type": _TYPE + "envoy.extensions.filters.http.compressor.v3.Compressor",
                    "response_direction_config": {
                        "common_config": {"min_content_length": _GZIP_MIN_BYTES}
                    },
                    "compressor_library": {
                        "name": "gzip",
                        "typed_config": {
                            "@type": _TYPE + "envoy.extensions.compression.gzip.compressor.v3.Gzip"
                        },
                    },
                },
            }
        )
    http_filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _TYPE + "envoy.extensions.filters.http.router.v3.Router"},
        }
    )
    hcm = {
        "@type": _TYPE + _HCM,
        "stat_prefix": "egobs-stats",
        "codec_type": "AUTO",
        "route_config": {
            "name": STATS_LISTENER,
            "virtual_hosts": [
                {
                    "name": "stats",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"path": "/stats/prometheus", "headers": [_method_get()]},
                            "route": {"cluster": ADMIN_CLUSTER},
                        },
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {
                                "status": 404,
                                "body": {"inline_string": "only GET /stats/prometheus here\n"},
                            },
                        },
                    ],
                }
            ],
        },
        "http_filters": http_filters,
    }
    return {
        "name": STATS_LISTENER,
        "address": _socket_address(listener.address, listener.port),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _method_get() -> dict[str, Any]:
    return {"name": ":method", "string_match": {"exact": "GET"}}


def _stats_config(stats: ir.ProxyStats) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if stats.matches:
        patterns = [_string_matcher(m) for m in stats.matches]
        out["stats_matcher"] = {"inclusion_list": {"patterns": patterns}}
    return out


def _string_matcher(match: ir.StatsMatch) -> dict[str, Any]:
    if match.type is ir.StatsMatchType.REGEX:
        return {"safe_regex": {"regex": match.value}}
    key = {
        ir.StatsMatchType.EXACT: "exact",
        ir.StatsMatchType.PREFIX: "prefix",
        ir.StatsMatchType.SUFFIX: "suffix",
    }[match.type]
    return {key: match.value}


def _grpc_service(
    cluster: ir.TelemetryCluster, headers: tuple[ir.HeaderValue, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {"envoy_grpc": {"cluster_name": cluster.name}}
    if headers:
        out["initial_metadata"] = [{"key": h.name.lower(), "value": h.value} for h in headers]
    return out


def _static_resource(attributes: tuple[ir.Attribute, ...]) -> dict[str, Any]:
    return {
        "name": "envoy.tracers.opentelemetry.resource_detectors.static_config",
        "typed_config": {
            "@type": _TYPE + "envoy.extensions.tracers.opentelemetry.resource_detectors.v3."
            "StaticConfigResourceDetectorConfig",
            "attributes": {a.key: a.value for a in attributes},
        },
    }


def _stats_sink(sink: ir.StatsSink) -> dict[str, Any]:
    if isinstance(sink, ir.OpenTelemetryStatsSink):
        config: dict[str, Any] = {
            "@type": _TYPE + "envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig",
            "grpc_service": _grpc_service(sink.cluster, sink.headers),
            "report_counters_as_deltas": sink.report_counters_as_deltas,
            "report_histograms_as_deltas": sink.report_histograms_as_deltas,
            # Tags as attributes on the tag-extracted name: OTLP metrics with the same
            # names and labels as the Prometheus endpoint's.
            "emit_tags_as_attributes": True,
            "use_tag_extracted_name": True,
        }
        if sink.resource_attributes:
            config["resource_detectors"] = [_static_resource(sink.resource_attributes)]
        return {"name": "envoy.stat_sinks.open_telemetry", "typed_config": config}
    return {
        "name": "envoy.stat_sinks.metrics_service",
        "typed_config": {
            "@type": _TYPE + "envoy.config.metrics.v3.MetricsServiceConfig",
            "grpc_service": _grpc_service(sink.cluster, ()),
            "transport_api_version": "V3",
            "report_counters_as_deltas": sink.report_counters_as_deltas,
            "emit_tags_as_labels": True,
        },
    }


# --------------------------------------------------------------------------- helpers


def _connect_host(host: str) -> tuple[str, bool]:
    """The address to connect to for ``host``, and whether it is an IP literal.

    A server bound to the unspecified address (``0.0.0.0``/``::``) is reached on loopback.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host, False
    if ip.is_unspecified:
        return ("::1" if ip.version == 6 else "127.0.0.1"), True
    return str(ip), True


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _duration(seconds: float) -> str:
    # JSON Duration takes at most nanosecond precision; milliseconds are plenty here.
    return f"{seconds:.3f}s"
