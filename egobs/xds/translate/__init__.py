"""IR → Envoy xDS translation (listeners, routes, clusters, endpoints, secrets)."""

from .accesslog import build_telemetry_cluster
from .translator import HOSTNAME_SCOPES_MIN_ROUTES, Translator, translate

__all__ = ["HOSTNAME_SCOPES_MIN_ROUTES", "Translator", "build_telemetry_cluster", "translate"]
