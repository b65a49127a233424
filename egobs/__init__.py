"""egobs: an observability-first Gateway API control plane for Envoy."""

__version__ = "0.1.0"
