"""``egobs sink``: the gRPC access-log sink.

Envoy streams access logs to it (gRPC ALS, or OTLP logs); it turns them into per-route RED
metrics on its own ``/metrics``, JSON lines with rotation and header redaction, and OTLP
logs forwarded to a collector, with bounded memory and every lost entry counted.
"""

from .config import (
    JsonlConfig,
    MetricsConfig,
    OtlpConfig,
    SinkConfig,
    SinkTLSConfig,
    load_sink_config,
)
from .server import Sink, run_sink

__all__ = [
    "JsonlConfig",
    "MetricsConfig",
    "OtlpConfig",
    "Sink",
    "SinkConfig",
    "SinkTLSConfig",
    "load_sink_config",
    "run_sink",
]
