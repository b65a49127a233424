"""Translated resources as plain data: config dumps, and a static bootstrap for real Envoy.

:func:`config_dump` is for reading (CLI output, golden files, the admin UI): secrets come
out redacted. :func:`static_bootstrap` is for running: every resource inlined into one
bootstrap, which ``envoy --mode validate`` can check and ``envoy -c`` can serve, without a
control plane.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from .resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    ResourceSet,
)

# The translator's modules import every message type that can sit inside an Any; the
# JSON printer needs them registered to expand typed_config.
from .translate import listener as _listener

__all__ = ["DUMP_TYPES", "config_dump", "static_bootstrap"]

DUMP_TYPES = ("listeners", "routes", "clusters", "endpoints", "secrets")
REDACTED = "[redacted]"

_TYPE_URLS = {
    "listeners": LISTENER_TYPE,
    "routes": ROUTE_TYPE,
    "clusters": CLUSTER_TYPE,
    "endpoints": ENDPOINT_TYPE,
    "secrets": SECRET_TYPE,
}


def _to_dict(msg: Message) -> dict[str, Any]:
    out = _plain(json_format.MessageToDict(msg, preserving_proto_field_name=False))
    assert isinstance(out, dict)
    return out


def _plain(value: Any) -> Any:
    # MessageToDict renders Any payloads as OrderedDict, which yaml.safe_dump refuses.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def config_dump(rs: ResourceSet, *, types: Collection[str] | None = None) -> dict[str, Any]:
    """Resources grouped by kind, each a dict with its ``@type``, secrets redacted.

    ``types`` picks among ``listeners``, ``routes``, ``clusters``, ``endpoints`` and
    ``secrets`` (all by default); the result keeps that fixed order.
    """
    if isinstance(types, str):
        types = (types,)
    wanted = DUMP_TYPES if types is None else tuple(types)
    unknown = sorted(set(wanted) - set(DUMP_TYPES))
    if unknown:
        raise ValueError(
            f"unknown resource type(s) {', '.join(unknown)}; expected some of "
            + ", ".join(DUMP_TYPES)
        )
    out: dict[str, Any] = {}
    for kind in DUMP_TYPES:
        if kind not in wanted:
            continue
        type_url = _TYPE_URLS[kind]
        items = []
        for msg in getattr(rs, kind).values():
            item = {"@type": type_url, **_to_dict(msg)}
            if kind == "secrets":
                _redact_secret(item)
            items.append(item)
        out[kind] = items
    return out


def _redact_secret(secret: dict[str, Any]) -> None:
    """Replace key material the way Envoy's own config dump does (an inline "[redacted]")."""
    cert = secret.get("tlsCertificate")
    if cert is not None:
        for key in ("privateKey", "password"):
            if key in cert:
                cert[key] = {"inlineString": REDACTED}
    generic = secret.get("genericSecret")
    if generic is not None and "secret" in generic:
        generic["secret"] = {"inlineString": REDACTED}
    tickets = secret.get("sessionTicketKeys")
    if tickets is not None and "keys" in tickets:
        tickets["keys"] = [{"inlineString": REDACTED} for _ in tickets["keys"]]


def static_bootstrap(
    rs: ResourceSet,
    *,
    admin_port: int = 0,
    node_id: str = "egobs-static",
    node_cluster: str = "egobs",
) -> dict[str, Any]:
    """A complete Envoy bootstrap serving ``rs`` from static resources.

    RDS references become inline ``route_config``, EDS clusters become STATIC clusters
    with the assignment inline, and SDS references point at static ``secrets``. The admin
    interface listens on 127.0.0.1:``admin_port`` (0: a free port, see Envoy's
    ``--admin-address-path``).
    """
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.node.id = node_id
    bootstrap.node.cluster = node_cluster
    admin = bootstrap.admin.address.socket_address
    admin.address = "127.0.0.1"
    admin.port_value = admin_port

    static = bootstrap.static_resources
    for cluster in rs.clusters.values():
        static.clusters.append(_static_cluster(cluster, rs))
    for listener in rs.listeners.values():
        static.listeners.append(_static_listener(listener, rs))
    static.secrets.extend(rs.secrets.values())
    return _to_dict(bootstrap)


def _static_cluster(cluster: cluster_pb2.Cluster, rs: ResourceSet) -> cluster_pb2.Cluster:
    if cluster.type != cluster_pb2.Cluster.EDS:
        return cluster
    out = cluster_pb2.Cluster()
    out.CopyFrom(cluster)
    out.ClearField("eds_cluster_config")
    out.type = cluster_pb2.Cluster.STATIC
    name = cluster.eds_cluster_config.service_name or cluster.name
    assignment = rs.endpoints.get(name)
    if assignment is not None:
        out.load_assignment.CopyFrom(assignment)
    out.load_assignment.cluster_name = cluster.name
    return out


def _static_listener(listener: listener_pb2.Listener, rs: ResourceSet) -> listener_pb2.Listener:
    out = listener_pb2.Listener()
    out.CopyFrom(listener)
    for chain in out.filter_chains:
        for network_filter in chain.filters:
            if network_filter.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                hcm = hcm_pb2.HttpConnectionManager()
                network_filter.typed_config.Unpack(hcm)
                if hcm.HasField("rds"):
                    name = hcm.rds.route_config_name
                    hcm.ClearField("rds")
                    config = rs.routes.get(name) or route_pb2.RouteConfiguration(name=name)
                    hcm.route_config.CopyFrom(config)
                network_filter.typed_config.Pack(hcm, deterministic=True)
        socket = chain.transport_socket
        if socket.name == _listener.TLS_TRANSPORT_SOCKET and socket.typed_config.Is(
            tls_pb2.DownstreamTlsContext.DESCRIPTOR
        ):
            context = tls_pb2.DownstreamTlsContext()
            socket.typed_config.Unpack(context)
            # An SDS reference without a config source names a static secret.
            for sds in context.common_tls_context.tls_certificate_sds_secret_configs:
                sds.ClearField("sds_config")
            socket.typed_config.Pack(context, deterministic=True)
    return out
