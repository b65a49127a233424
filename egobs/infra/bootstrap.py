"""The Envoy bootstrap every egobs proxy starts from.

Everything a proxy serves arrives over one ADS stream from the egobs xDS server; the
bootstrap only says who the proxy is (``node.cluster`` selects its Gateway's snapshot), where
the xDS server is, and where the admin interface listens. It must stay small and stable:
the host infra restarts an Envoy whenever its rendered bootstrap changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

__all__ = ["XDS_CLUSTER", "bootstrap"]

XDS_CLUSTER = "xds_cluster"

_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Envoy rejects flush intervals outside [1 ms, 300 s) at startup; fail earlier, with our name.
_MIN_FLUSH_S = 0.001
_MAX_FLUSH_S = 300.0


def bootstrap(
    *,
    node_id: str,
    node_cluster: str,
    xds_host: str,
    xds_port: int,
    admin_host: str = "127.0.0.1",
    admin_port: int,
    stats_flush_interval_s: float = 5.0,
    delta: bool = False,
    runtime: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An Envoy bootstrap (JSON-able dict) that takes all its resources from ADS.

    ``node_cluster`` must be the ``<namespace>/<gateway>`` key the snapshot cache uses.
    ``delta`` selects incremental xDS (``DELTA_GRPC``) instead of state-of-the-world.
    ``admin_port`` 0 lets Envoy pick a free port (read it back with
    ``--admin-address-path``). ``runtime`` fills the static runtime layer; the admin layer
    after it lets ``/runtime_modify`` override those keys on a live proxy.
    """
    if not node_id or not node_cluster:
        raise ValueError("node_id and node_cluster must be non-empty: Envoy exits without them")
    if not 1 <= xds_port <= 65535:
        raise ValueError(f"xds_port {xds_port} is outside 1..65535")
    if not 0 <= admin_port <= 65535:
        raise ValueError(f"admin_port {admin_port} is outside 0..65535")
    if not _MIN_FLUSH_S <= stats_flush_interval_s < _MAX_FLUSH_S:
        raise ValueError(f"stats_flush_interval_s {stats_flush_interval_s} is outside [0.001, 300)")
    host, static_ip = _connect_host(xds_host)
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": node_id, "cluster": node_cluster},
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
            "cds_config": dict(ads_source),
            "lds_config": dict(ads_source),
        },
        "static_resources": {
            "clusters": [
                {
                    "name": XDS_CLUSTER,
                    # STATIC needs an IP literal; a host name is resolved (and re-resolved
                    # when the control plane moves) with STRICT_DNS.
                    "type": "STATIC" if static_ip else "STRICT_DNS",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": XDS_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {"endpoint": {"address": _socket_address(host, xds_port)}}
                                ]
                            }
                        ],
                    },
                    # gRPC needs HTTP/2; without this Envoy keeps the cluster on HTTP/1.1,
                    # never sends a request and logs nothing about it.
                    "typed_extension_protocol_options": {
                        _HTTP_PROTOCOL_OPTIONS: {
                            "@type": "type.googleapis.com/" + _HTTP_PROTOCOL_OPTIONS,
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    # A control plane that vanishes without a FIN (host down, network cut)
                    # is noticed and reconnected instead of leaving the stream hanging.
                    "upstream_connection_options": {
                        "tcp_keepalive": {"keepalive_time": 30, "keepalive_interval": 10}
                    },
                }
            ]
        },
        "stats_flush_interval": _duration(stats_flush_interval_s),
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": dict(runtime or {})},
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }


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
