"""Envoy 1.40 API that xds-protos 1.85 lacks, built with envoy-data-plane's typed messages.

xds-protos' OpenTelemetryAccessLogConfig stops at ``common_config``, which Envoy 1.40
deprecates in favour of ``grpc_service`` (9) and ``log_name`` (10). envoy-data-plane
(betterproto2, pure Python) has the current message; it is about 1,000 times slower than
upb, which does not matter for the one small message per access-log sink built here. The
message is serialized once and packed into an ``Any`` under its type URL: a typed message
end to end, no hand-made bytes. The module is imported on first use (its import takes
~0.5 s), so configurations without OpenTelemetry access logs never pay for it.
"""

from __future__ import annotations

import datetime
import warnings

from google.protobuf import any_pb2

from egobs import ir

__all__ = ["OTEL_ACCESS_LOG_TYPE", "newer_to_dict", "otel_access_log_config"]

OTEL_ACCESS_LOG_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig"
)


def otel_access_log_config(
    sink: ir.OpenTelemetryAccessLog,
    fmt: ir.AccessLogFormat,
    *,
    buffer_bytes: int,
    flush_interval_ms: int,
) -> any_pb2.Any:
    """The OpenTelemetry access logger's config: a text format is the log record's body,
    a JSON format its attributes (each field one attribute)."""
    with warnings.catch_warnings():
        # envoy-data-plane's generated models trip pydantic deprecation warnings on import.
        warnings.simplefilter("ignore")
        from envoy_data_plane.envoy.config.core.v3 import (
            GrpcService,
            GrpcServiceEnvoyGrpc,
            HeaderValue,
        )
        from envoy_data_plane.envoy.extensions.access_loggers.open_telemetry.v3 import (
            OpenTelemetryAccessLogConfig,
        )
        from envoy_data_plane.opentelemetry.proto.common.v1 import AnyValue, KeyValue, KeyValueList

    def kv_list(attrs: tuple[ir.Attribute, ...]) -> KeyValueList:
        return KeyValueList(
            values=[KeyValue(key=a.key, value=AnyValue(string_value=a.value)) for a in attrs]
        )

    config = OpenTelemetryAccessLogConfig(
        grpc_service=GrpcService(
            envoy_grpc=GrpcServiceEnvoyGrpc(cluster_name=sink.cluster.name),
            initial_metadata=[HeaderValue(key=h.name.lower(), value=h.value) for h in sink.headers],
        ),
        log_name=sink.log_name,
        buffer_size_bytes=buffer_bytes,
        buffer_flush_interval=datetime.timedelta(milliseconds=flush_interval_ms),
    )
    if sink.resource_attributes:
        config.resource_attributes = kv_list(sink.resource_attributes)
    if fmt.text is not None:
        config.body = AnyValue(string_value=fmt.text)
    else:
        config.attributes = kv_list(fmt.json)
    return any_pb2.Any(type_url=OTEL_ACCESS_LOG_TYPE, value=bytes(config))


def newer_to_dict(packed: any_pb2.Any) -> dict[str, object] | None:
    """``packed`` as JSON-style data (camelCase, ``@type`` first) when it holds one of the
    messages built here, which xds-protos cannot print; None for any other type."""
    if packed.type_url != OTEL_ACCESS_LOG_TYPE:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from envoy_data_plane.envoy.extensions.access_loggers.open_telemetry.v3 import (
            OpenTelemetryAccessLogConfig,
        )
    message = OpenTelemetryAccessLogConfig.parse(packed.value)
    return {"@type": packed.type_url, **message.to_dict()}
