"""The ``egobs sink`` configuration file::

    apiVersion: egobs.dev/v1alpha1
    kind: SinkConfig
    address: 127.0.0.1
    port: 18090
    maxQueue: 50000
    maxQueueBytes: 50331648
    jsonl:
      path: /var/log/egobs/access.jsonl   # "-" for stdout
      maxBytes: 104857600
      maxAgeS: 3600
      backups: 5
    metrics: {address: 127.0.0.1, port: 18091, labelCap: 200}
    otlp: {endpoint: 127.0.0.1:4317}
    tls:                       # optional mTLS (egobs certgen): client certificates required
      certFile: certs/sink.pem
      keyFile: certs/sink-key.pem
      caFile: certs/ca.pem

Relative paths are relative to the file. Unknown fields are errors, reported like resource
errors (file, field path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from egobs.resources._base import Model
from egobs.resources.loader import load_model_file

__all__ = [
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_REDACTED_HEADERS",
    "JsonlConfig",
    "MetricsConfig",
    "OtlpConfig",
    "SinkConfig",
    "SinkTLSConfig",
    "load_sink_config",
]

Port = Annotated[int, Field(ge=0, le=65535)]

# The queue's memory budget. The sink's own baseline is about 70 MiB resident; with this
# much queued, per-stream gRPC buffers and allocator slack it stays well under 150 MiB.
DEFAULT_MAX_QUEUE_BYTES = 48 * 1024 * 1024

DEFAULT_REDACTED_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
)


class JsonlConfig(Model):
    # None disables the JSON lines output; "-" writes to stdout (never rotated).
    path: str | None = None
    max_bytes: Annotated[int, Field(ge=1024)] = 100 * 1024 * 1024
    # Rotate a file this old even when small, so a quiet sink still rolls over daily logs.
    max_age_s: Annotated[float, Field(gt=0)] | None = 24 * 3600.0
    # Rotated files kept; older ones are deleted.
    backups: Annotated[int, Field(ge=0, le=10_000)] = 5
    # Request/response headers kept in a line (lower-case); None keeps what Envoy logged.
    header_allowlist: list[str] | None = None
    redact_headers: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACTED_HEADERS))


class MetricsConfig(Model):
    enabled: bool = True
    address: str = "127.0.0.1"
    port: Port = 18091
    # Distinct values kept per route / upstream cluster / gateway label; later ones are
    # counted under "other".
    label_cap: Annotated[int, Field(ge=1, le=100_000)] = 200


class OtlpConfig(Model):
    # host:port of an OTLP/gRPC collector; None disables forwarding.
    endpoint: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 512
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_queue: Annotated[int, Field(ge=1, le=10_000_000)] = 20_000
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    initial_backoff_s: Annotated[float, Field(gt=0, le=60)] = 0.2
    max_backoff_s: Annotated[float, Field(gt=0, le=300)] = 5.0


class SinkTLSConfig(Model):
    """mTLS on the gRPC port: the sink presents ``certFile``/``keyFile`` and requires a
    client certificate that chains to ``caFile``; a proxy's logs are taken only for the
    Gateway its certificate names."""

    cert_file: str
    key_file: str
    ca_file: str


class SinkConfig(Model):
    api_version: Literal["egobs.dev/v1alpha1"] = "egobs.dev/v1alpha1"
    kind: Literal["SinkConfig"] = "SinkConfig"
    address: str = "127.0.0.1"
    port: Port = 18090
    # Entries held between the gRPC streams and the outputs; beyond it, batches are dropped.
    max_queue: Annotated[int, Field(ge=1, le=10_000_000)] = 50_000
    # Estimated memory those entries may hold (wire size x 1.5 + 1 KiB per entry: a decoded
    # entry costs far more than its bytes on the wire); beyond it, batches are dropped too.
    max_queue_bytes: Annotated[int, Field(ge=64 * 1024, le=64 * 1024**3)] = DEFAULT_MAX_QUEUE_BYTES
    # How long a stream waits for room in a full queue before its batch is dropped; the wait
    # turns a burst into gRPC flow control instead of loss.
    queue_full_wait_s: Annotated[float, Field(ge=0, le=10)] = 0.25
    # A single gRPC message larger than this is rejected and counted.
    max_message_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 4 * 1024 * 1024
    # Streams (access-log streams and OTLP calls) served at once; one more is refused with
    # RESOURCE_EXHAUSTED and counted. What gRPC buffers for the streams is bounded by this
    # times (HTTP/2 window of 4 MiB + one message). Envoy holds one access-log stream per
    # worker and logger, for as long as it runs.
    max_streams: Annotated[int, Field(ge=1, le=100_000)] = 64
    # How long shutdown may take to drain the queue and the forwarder.
    shutdown_grace_s: Annotated[float, Field(ge=0, le=300)] = 10.0
    jsonl: JsonlConfig = Field(default_factory=JsonlConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)
    # None: plaintext (the default, for a sink on loopback).
    tls: SinkTLSConfig | None = None


def load_sink_config(path: str | Path) -> SinkConfig:
    """Read and validate a sink config file; raises :class:`LoadError` naming file and field."""
    cfg = load_model_file(path, SinkConfig, ref="SinkConfig")
    if cfg.tls is not None:
        base = Path(path).resolve().parent
        for field in ("cert_file", "key_file", "ca_file"):
            value = getattr(cfg.tls, field)
            if not Path(value).is_absolute():
                setattr(cfg.tls, field, str(base / value))
    return cfg
