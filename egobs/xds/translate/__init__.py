"""IR → Envoy xDS translation (listeners, routes, clusters, endpoints, secrets)."""

from .accesslog import build_telemetry_cluster
from .translator import Translator, translate

__all__ = ["Translator", "build_telemetry_cluster", "translate"]
