"""The xDS resources of one Gateway, as xds-protos messages, keyed by resource name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.config.route.v3.scoped_route_pb2 import ScopedRouteConfiguration
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from google.protobuf.message import Message

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SCOPED_ROUTE_TYPE",
    "SECRET_TYPE",
    "TYPE_URLS",
    "ResourceSet",
    "content_version",
    "resource_version",
]

_PREFIX = "type.googleapis.com/"
LISTENER_TYPE = _PREFIX + Listener.DESCRIPTOR.full_name
ROUTE_TYPE = _PREFIX + RouteConfiguration.DESCRIPTOR.full_name
SCOPED_ROUTE_TYPE = _PREFIX + ScopedRouteConfiguration.DESCRIPTOR.full_name
CLUSTER_TYPE = _PREFIX + Cluster.DESCRIPTOR.full_name
ENDPOINT_TYPE = _PREFIX + ClusterLoadAssignment.DESCRIPTOR.full_name
SECRET_TYPE = _PREFIX + Secret.DESCRIPTOR.full_name

# In the order Envoy wants them applied (clusters before the listeners that use them, and
# a listener's scopes before the route tables they name).
TYPE_URLS = (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    SECRET_TYPE,
    LISTENER_TYPE,
    SCOPED_ROUTE_TYPE,
    ROUTE_TYPE,
)


@dataclass(frozen=True, slots=True)
class ResourceSet:
    """Everything one Gateway's proxies need, per xDS type, keyed by resource name.

    Frozen so it can be handed to the xDS server and other readers as is; the messages
    themselves must be treated as read-only because the translator reuses them across
    translations.
    """

    listeners: dict[str, Listener] = field(default_factory=dict)
    routes: dict[str, RouteConfiguration] = field(default_factory=dict)
    # The scopes of the one route table split by hostname, if any (see the translator).
    scoped_routes: dict[str, ScopedRouteConfiguration] = field(default_factory=dict)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    endpoints: dict[str, ClusterLoadAssignment] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)

    def by_type(self) -> dict[str, dict[str, Message]]:
        return {
            CLUSTER_TYPE: dict(self.clusters),
            ENDPOINT_TYPE: dict(self.endpoints),
            SECRET_TYPE: dict(self.secrets),
            LISTENER_TYPE: dict(self.listeners),
            SCOPED_ROUTE_TYPE: dict(self.scoped_routes),
            ROUTE_TYPE: dict(self.routes),
        }


def resource_version(msg: Message) -> str:
    """Short content hash: equal messages get equal versions on every run and process."""
    return content_version(msg.SerializeToString(deterministic=True))


def content_version(data: bytes) -> str:
    """The version of a resource serialized (deterministically) as ``data``.

    SHA-256, for speed rather than strength: with the CPU's SHA extensions it hashes a
    1.6 MB route table in ~0.9 ms, BLAKE2b in ~1.6 ms. 64 bits are plenty to tell versions
    of one resource apart.
    """
    return hashlib.sha256(data).hexdigest()[:16]
