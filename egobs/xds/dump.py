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
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from .resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
    SECRET_TYPE,
    ResourceSet,
)

# The translator's modules import every message type that can sit inside an Any; the
# JSON printer needs them registered to expand typed_config.
from .translate import listener as _listener
from .translate.newer_api import OTEL_ACCESS_LOG_TYPE, newer_to_dict

__all__ = ["DUMP_TYPES", "config_dump", "static_bootstrap"]

DUMP_TYPES = ("listeners", "scoped_routes", "routes", "clusters", "endpoints", "secrets")
REDACTED = "[redacted]"

_TYPE_URLS = {
    "listeners": LISTENER_TYPE,
    "scoped_routes": SCOPED_ROUTE_TYPE,
    "routes": ROUTE_TYPE,
    "clusters": CLUSTER_TYPE,
    "endpoints": ENDPOINT_TYPE,
    "secrets": SECRET_TYPE,
}


def _to_dict(msg: Message) -> dict[str, Any]:
    newer: dict[str, dict[str, object]] = {}
    if isinstance(msg, listener_pb2.Listener):
        msg = _set_newer_aside(msg, newer)
    elif isinstance(msg, bootstrap_pb2.Bootstrap):
        listeners = msg.static_resources.listeners
        swapped = [_set_newer_aside(lis, newer) for lis in listeners]
        if any(a is not b for a, b in zip(swapped, listeners, strict=True)):
            copy = bootstrap_pb2.Bootstrap()
            copy.CopyFrom(msg)
            for target, lis in zip(copy.static_resources.listeners, swapped, strict=True):
                target.CopyFrom(lis)
            msg = copy
    out = _plain(json_format.MessageToDict(msg, preserving_proto_field_name=False), newer)
    assert isinstance(out, dict)
    return out


_PLACEHOLDER = "egobs.newerApi"
# google.protobuf.Struct fields in what egobs builds (JSON access-log formats).
_STRUCT_FIELDS = frozenset({"jsonFormat"})


def _sorted(value: Any) -> Any:
    return {k: value[k] for k in sorted(value)} if isinstance(value, dict) else value


def _set_newer_aside(
    listener: listener_pb2.Listener, newer: dict[str, dict[str, object]]
) -> listener_pb2.Listener:
    """A copy of ``listener`` whose access loggers of types xds-protos lacks (see
    translate.newer_api) are replaced by placeholders, their data kept in ``newer``;
    :func:`_plain` puts it back. The protobuf JSON printer cannot expand those types."""

    def swap(logs: Any) -> bool:
        swapped = False
        for log in logs:
            data = newer_to_dict(log.typed_config)
            if data is not None:
                key = str(len(newer))
                newer[key] = data
                log.typed_config.Pack(
                    struct_pb2.Struct(fields={_PLACEHOLDER: struct_pb2.Value(string_value=key)})
                )
                swapped = True
        return swapped

    # The type URL appears verbatim in the bytes when such a logger is there at all.
    if OTEL_ACCESS_LOG_TYPE.encode() not in listener.SerializeToString():
        return listener
    out = listener_pb2.Listener()
    out.CopyFrom(listener)
    swap(out.access_log)
    for chain in out.filter_chains:
        for network_filter in chain.filters:
            for kind in (hcm_pb2.HttpConnectionManager, tcp_proxy_pb2.TcpProxy):
                inner = kind()
                if network_filter.typed_config.Unpack(inner):
                    if swap(inner.access_log):
                        network_filter.typed_config.Pack(inner, deterministic=True)
                    break
    return out


def _plain(value: Any, newer: dict[str, dict[str, object]]) -> Any:
    # MessageToDict renders Any payloads as OrderedDict, which yaml.safe_dump refuses.
    if isinstance(value, dict):
        held = value.get("value")
        if newer and isinstance(held, dict) and _PLACEHOLDER in held:
            return newer[held[_PLACEHOLDER]]
        return {
            # A Struct's keys print in map order, which differs from process to process.
            k: _sorted(v) if k in _STRUCT_FIELDS else _plain(v, newer)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_plain(v, newer) for v in value]
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
        if kind == "scoped_routes" and not rs.scoped_routes:
            continue  # only large route tables are split: most dumps have no scopes
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
    static_secrets = _with_static_secrets(cluster)
    if cluster.type != cluster_pb2.Cluster.EDS:
        return static_secrets or cluster
    out = cluster_pb2.Cluster()
    out.CopyFrom(static_secrets or cluster)
    out.ClearField("eds_cluster_config")
    out.type = cluster_pb2.Cluster.STATIC
    name = cluster.eds_cluster_config.service_name or cluster.name
    assignment = rs.endpoints.get(name)
    if assignment is not None:
        out.load_assignment.CopyFrom(assignment)
    out.load_assignment.cluster_name = cluster.name
    return out


def _with_static_secrets(cluster: cluster_pb2.Cluster) -> cluster_pb2.Cluster | None:
    """A copy of a TLS cluster whose client certificate (SDS over ADS) names the static
    secret instead, or None when it has none (Envoy crashes validating a static cluster
    that asks ADS for a secret)."""
    socket = cluster.transport_socket
    if not socket.typed_config.Is(tls_pb2.UpstreamTlsContext.DESCRIPTOR):
        return None
    context = tls_pb2.UpstreamTlsContext()
    socket.typed_config.Unpack(context)
    configs = context.common_tls_context.tls_certificate_sds_secret_configs
    if not configs:
        return None
    for sds in configs:
        sds.ClearField("sds_config")
    out = cluster_pb2.Cluster()
    out.CopyFrom(cluster)
    out.transport_socket.typed_config.Pack(context, deterministic=True)
    return out


def _static_routes(name: str, rs: ResourceSet) -> route_pb2.RouteConfiguration:
    return rs.routes.get(name) or route_pb2.RouteConfiguration(name=name)


def _inline_scopes(out: hcm_pb2.ScopedRoutes, rs: ResourceSet) -> None:
    # Inline scopes carry their route tables inline (Envoy refuses RDS names there). A
    # Gateway has at most one scoped connection manager, so every scope is its.
    out.ClearField("scoped_rds")
    listed = out.scoped_route_configurations_list.scoped_route_configurations
    for scope in rs.scoped_routes.values():
        static = listed.add()
        static.CopyFrom(scope)
        static.ClearField("route_configuration_name")
        static.route_configuration.CopyFrom(_static_routes(scope.route_configuration_name, rs))


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
                    hcm.route_config.CopyFrom(_static_routes(name, rs))
                if hcm.HasField("scoped_routes"):
                    _inline_scopes(hcm.scoped_routes, rs)
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
