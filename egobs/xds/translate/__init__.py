"""IR → Envoy xDS translation (listeners, routes, clusters, endpoints, secrets)."""

from .translator import Translator, translate

__all__ = ["Translator", "translate"]
