"""The control plane's tracer: OTLP over gRPC or HTTP, ratio sampling, nothing when off.

When tracing is off, :func:`setup_tracing` returns ``None`` and callers skip every span call,
so disabled tracing costs a single ``is None`` check per stage (not even the OpenTelemetry
no-op tracer's context handling).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from egobs import __version__

__all__ = ["Tracing", "setup_tracing"]

SERVICE_NAME = "egobs"


class Tracing:
    """A tracer and the provider that exports its spans; :meth:`shutdown` flushes."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: trace.Tracer = provider.get_tracer("egobs", __version__)

    def flush(self, timeout_s: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _exporter(
    *, endpoint: str, protocol: str, headers: Mapping[str, str], timeout_s: float
) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        # A plain host:port or http:// endpoint means no TLS, as for the OTel collector.
        insecure = not endpoint.startswith("https://")
        return GrpcExporter(
            endpoint=endpoint, insecure=insecure, headers=dict(headers), timeout=int(timeout_s)
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    url = endpoint if "/v1/traces" in endpoint else endpoint.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=url, headers=dict(headers), timeout=timeout_s)


def setup_tracing(
    *,
    enabled: bool,
    endpoint: str = "127.0.0.1:4317",
    protocol: str = "grpc",
    headers: Mapping[str, str] | None = None,
    sampling_ratio: float = 1.0,
    export_interval_s: float = 1.0,
    exporter: SpanExporter | None = None,
) -> Tracing | None:
    """A :class:`Tracing` exporting to ``endpoint``, or ``None`` when tracing is off.

    The provider is private to the control plane (not installed globally), so embedding
    egobs in a process with its own tracing leaves that tracing alone. ``exporter``
    replaces the OTLP exporter (tests, benchmarks).
    """
    if not enabled:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__}),
        # Parent-based: the spans of one change are all kept or all dropped.
        sampler=ParentBased(TraceIdRatioBased(sampling_ratio)),
    )
    if exporter is None:
        exporter = _exporter(
            endpoint=endpoint,
            protocol=protocol,
            headers=headers or {},
            timeout_s=max(1.0, export_interval_s * 5),
        )
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=max(1, int(export_interval_s * 1000)))
    )
    return Tracing(provider)
