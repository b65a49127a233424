"""Small builders shared by the listener, route and cluster translators."""

from __future__ import annotations

from envoy.config.core.v3 import config_source_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

V3 = config_source_pb2.ApiVersion.V3

# Where the translated resources go when a Gateway has none to offer: a cluster with no
# endpoints. Connections and requests sent there fail fast (no healthy upstream) and show
# up as `cluster.<name>.upstream_cx_none_healthy`, which is easier to find than a missing
# cluster. IR cluster names always start with "service/" or "backend/", so it cannot clash.
BLACKHOLE_CLUSTER = "egobs/invalid-backend"


def pack(msg: Message) -> any_pb2.Any:
    # Deterministic bytes inside every Any (here and wherever Pack is called), so equal
    # configurations get equal resource versions.
    out = any_pb2.Any()
    out.Pack(msg, deterministic=True)
    return out


def set_ads(source: config_source_pb2.ConfigSource) -> None:
    """Point a ConfigSource at the ADS stream the resources are served on."""
    source.ads.SetInParent()
    source.resource_api_version = V3


def set_seconds(duration: duration_pb2.Duration, seconds: float) -> None:
    """Set a Duration field from seconds, marking it present even when zero."""
    duration.SetInParent()
    whole = int(seconds)
    duration.seconds = whole
    duration.nanos = round((seconds - whole) * 1e9)


def stat_safe(name: str) -> str:
    """``name`` as one component of an Envoy stat name.

    Envoy splits stat names at dots and its tag extractors take the text up to the next dot
    as a tag's value (``^cluster\\.((.+?)\\.)`` for the cluster name), so a dot inside a
    name would cut the tag short and mix the rest into the metric name (Envoy Gateway
    #9576). Dots become underscores, which no Kubernetes name or hostname contains, so two
    names never map to one stat name. Slashes survive into Prometheus labels as they are.
    """
    return name.replace(".", "_")


CORS_FILTER = "envoy.filters.http.cors"
"""The HTTP filter that applies each route's CORS policy (``typed_per_filter_config``)."""

STATEFUL_SESSION_FILTER = "envoy.filters.http.stateful_session"
"""The HTTP filter that keeps a route's sessions on one endpoint (``typed_per_filter_config``;
without it a route has no sessions)."""
