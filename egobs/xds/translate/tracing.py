"""Tracing: IR Tracing → the OpenTelemetry tracer of every HTTP connection manager.

Envoy starts a server span per request it samples (``random_sampling``; a request that
arrives with a sampled ``traceparent`` is traced whatever the percentage) and, with
``spawn_upstream_span``, a client span per upstream attempt, so a trace shows the time
spent in Envoy apart from the upstream's. Spans leave over OTLP/gRPC, or OTLP/HTTP when
``http_path`` is set. How often the tracer flushes is set in the bootstrap's runtime
(:mod:`egobs.infra.bootstrap`): with Envoy's defaults it loses spans under load.
"""

from __future__ import annotations

import functools

from envoy.config.trace.v3 import opentelemetry_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.tracers.opentelemetry.resource_detectors.v3 import (
    static_config_resource_detector_pb2 as static_pb2,
)
from envoy.type.tracing.v3 import custom_tag_pb2

from egobs import ir

from ._common import pack

__all__ = ["OTEL_TRACER", "build_tracing"]

OTEL_TRACER = "envoy.tracers.opentelemetry"
_STATIC_DETECTOR = "envoy.tracers.opentelemetry.resource_detectors.static_config"
_EXPORT_TIMEOUT_S = 5


@functools.lru_cache(maxsize=16)
def build_tracing(tracing: ir.Tracing) -> hcm_pb2.HttpConnectionManager.Tracing:
    """The HCM ``tracing`` block; the same object for the same IR value (copy it in)."""
    out = hcm_pb2.HttpConnectionManager.Tracing()
    out.random_sampling.value = tracing.sampling_percent
    out.spawn_upstream_span.value = True
    if tracing.span_name_server is not None:
        out.operation = tracing.span_name_server
    if tracing.span_name_client is not None:
        out.upstream_operation = tracing.span_name_client
    for tag in tracing.tags:
        out.custom_tags.append(_tag(tag))
    out.provider.name = OTEL_TRACER
    out.provider.typed_config.CopyFrom(pack(_tracer(tracing)))
    return out


def _tracer(tracing: ir.Tracing) -> opentelemetry_pb2.OpenTelemetryConfig:
    out = opentelemetry_pb2.OpenTelemetryConfig(service_name=tracing.service_name)
    if tracing.http_path is None:
        grpc = out.grpc_service
        grpc.envoy_grpc.cluster_name = tracing.cluster.name
        grpc.timeout.seconds = _EXPORT_TIMEOUT_S
        for header in tracing.headers:
            grpc.initial_metadata.add(key=header.name.lower(), value=header.value)
    else:
        http = out.http_service
        http.http_uri.cluster = tracing.cluster.name
        authority = tracing.authority or tracing.cluster.name
        http.http_uri.uri = f"http://{authority}{tracing.http_path}"
        http.http_uri.timeout.seconds = _EXPORT_TIMEOUT_S
        for header in tracing.headers:
            option = http.request_headers_to_add.add()
            option.header.key = header.name
            option.header.value = header.value
    if tracing.resource_attributes:
        detector = static_pb2.StaticConfigResourceDetectorConfig()
        for attr in tracing.resource_attributes:
            detector.attributes[attr.key] = attr.value
        config = out.resource_detectors.add()
        config.name = _STATIC_DETECTOR
        config.typed_config.CopyFrom(pack(detector))
    return out


def _tag(tag: ir.TracingTag) -> custom_tag_pb2.CustomTag:
    out = custom_tag_pb2.CustomTag(tag=tag.name)
    if tag.kind is ir.TracingTagKind.LITERAL:
        out.literal.value = tag.value
    elif tag.kind is ir.TracingTagKind.ENVIRONMENT:
        out.environment.name = tag.value
        if tag.default is not None:
            out.environment.default_value = tag.default
    elif tag.kind is ir.TracingTagKind.REQUEST_HEADER:
        out.request_header.name = tag.value
        if tag.default is not None:
            out.request_header.default_value = tag.default
    else:
        out.value = tag.value
    return out
