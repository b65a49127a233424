"""EnvoyProxy ``spec.telemetry``: access logs, metrics and tracing of the proxies.

Field names follow Envoy Gateway's ``gateway.envoyproxy.io/v1alpha1`` EnvoyProxy (v1.9.0)
where the two overlap, so an EnvoyProxy written for Envoy Gateway loads here unchanged as
long as it uses what egobs supports. The CEL rules of that CRD are checked as validators,
with the same messages. egobs extensions, each marked below:

* ``metrics.sinks[].type: MetricsService`` with ``metricsService`` — Envoy's gRPC metrics
  service sink (Envoy Gateway only offers OpenTelemetry);
* ``tracing.provider.openTelemetry.protocol: HTTP`` (and ``path``) — OTLP/HTTP traces
  (Envoy Gateway only speaks OTLP/gRPC, envoyproxy/gateway#8421);
* ``metrics.prometheus.port`` — the stats listener's port (Envoy Gateway fixes 19001);
* ``metrics.enableRouteStats`` — request stats per route rule.

Fields of Envoy Gateway's CRD that egobs does not implement (``backendSettings``, Zipkin
and Datadog providers, ``clusterStatName``, ``healthCheckLog``...) are not modelled, so a
spec using one fails to load with an "unknown field" error naming it rather than being
silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from egobs.resources._base import KubeModel, PortNumber

__all__ = [
    "ALSEnvoyProxyAccessLog",
    "ALSEnvoyProxyHTTPAccessLogConfig",
    "CustomTag",
    "FileEnvoyProxyAccessLog",
    "FractionalPercent",
    "HTTPHeader",
    "MetricsServiceSink",
    "OpenTelemetryEnvoyProxyAccessLog",
    "OpenTelemetrySink",
    "ProxyAccessLog",
    "ProxyAccessLogFormat",
    "ProxyAccessLogSetting",
    "ProxyAccessLogSink",
    "ProxyMetricSink",
    "ProxyMetrics",
    "ProxyPrometheusProvider",
    "ProxyTelemetry",
    "ProxyTracing",
    "StringMatch",
    "TelemetryBackendRef",
    "TracingProvider",
]

EG_GROUP = "gateway.envoyproxy.io"


class TelemetryBackendRef(KubeModel):
    """A Service or Backend that receives telemetry (``BackendRef`` in Envoy Gateway)."""

    group: str = ""
    kind: str = "Service"
    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str | None = None
    port: PortNumber | None = None
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    fallback: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> TelemetryBackendRef:
        if self.kind not in ("Service", "Backend"):
            raise ValueError("BackendRefs only support Service and Backend kind.")
        if self.group not in ("", EG_GROUP):
            raise ValueError("BackendRefs only support Core and gateway.envoyproxy.io group.")
        if self.group == "" and self.kind == "Service" and self.port is None:
            raise ValueError("Must have port for Service reference")
        return self


class _Destination(KubeModel):
    """Where a telemetry stream goes: ``host``/``port``, or ``backendRefs``."""

    host: str | None = None
    port: Annotated[int, Field(ge=0, le=65535)] = 4317
    backend_refs: list[TelemetryBackendRef] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _host_or_refs(self) -> _Destination:
        if not self.host and not self.backend_refs:
            raise ValueError("host or backendRefs needs to be set")
        return self


class HTTPHeader(KubeModel):
    name: Annotated[
        str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    ]
    value: Annotated[str, Field(min_length=1, max_length=4096)]


# --------------------------------------------------------------------------- access logs


class ProxyAccessLogFormat(KubeModel):
    type: Literal["Text", "JSON"] | None = None
    text: str | None = None
    # ``json`` on the wire; the attribute name avoids BaseModel's own ``json``.
    json_fields: dict[str, str] | None = Field(default=None, alias="json")

    @model_validator(mode="after")
    def _check(self) -> ProxyAccessLogFormat:
        if self.type == "Text":
            if self.text is None:
                raise ValueError("If AccessLogFormat type is Text, text field needs to be set.")
            if self.json_fields is not None:
                raise ValueError("If AccessLogFormat type is Text, json field must not be set.")
        elif self.type == "JSON":
            if self.json_fields is None:
                raise ValueError("If AccessLogFormat type is JSON, json field needs to be set.")
            if self.text is not None:
                raise ValueError("If AccessLogFormat type is JSON, text field must not be set.")
        elif self.text is None and self.json_fields is None:
            raise ValueError(
                "If AccessLogFormat type is unset, at least one of text or json must be set."
            )
        return self


class FileEnvoyProxyAccessLog(KubeModel):
    path: Annotated[str, Field(min_length=1)]


class ALSEnvoyProxyHTTPAccessLogConfig(KubeModel):
    request_headers: list[str] = Field(default_factory=list)
    response_headers: list[str] = Field(default_factory=list)
    response_trailers: list[str] = Field(default_factory=list)


class ALSEnvoyProxyAccessLog(KubeModel):
    """Envoy's gRPC access-log service (``egobs sink`` is one)."""

    backend_refs: list[TelemetryBackendRef] = Field(default_factory=list, max_length=16)
    type: Literal["HTTP", "TCP"]
    log_name: Annotated[str, Field(min_length=1)] | None = None
    http: ALSEnvoyProxyHTTPAccessLogConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> ALSEnvoyProxyAccessLog:
        if self.type != "HTTP" and self.http is not None:
            raise ValueError("The http field may only be set when type is HTTP.")
        if not self.backend_refs:
            raise ValueError("must have at least one backend in backendRefs")
        return self


class OpenTelemetryEnvoyProxyAccessLog(_Destination):
    """OTLP/gRPC logs."""

    resource_attributes: dict[str, str] | None = None
    resources: dict[str, str] | None = None
    headers: list[HTTPHeader] | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _one_resource_field(self) -> OpenTelemetryEnvoyProxyAccessLog:
        if self.resources is not None and self.resource_attributes is not None:
            raise ValueError("only one of resources or resourceAttributes can be set")
        return self


class ProxyAccessLogSink(KubeModel):
    type: Literal["ALS", "File", "OpenTelemetry"]
    als: ALSEnvoyProxyAccessLog | None = None
    file: FileEnvoyProxyAccessLog | None = None
    open_telemetry: OpenTelemetryEnvoyProxyAccessLog | None = None

    @model_validator(mode="after")
    def _check(self) -> ProxyAccessLogSink:
        for type_, value, field in (
            ("ALS", self.als, "als"),
            ("File", self.file, "file"),
            ("OpenTelemetry", self.open_telemetry, "openTelemetry"),
        ):
            if (self.type == type_) != (value is not None):
                raise ValueError(
                    f"If AccessLogSink type is {type_}, {field} field needs to be set."
                    if self.type == type_
                    else f"{field} may only be set when type is {type_}"
                )
        return self


class ProxyAccessLogSetting(KubeModel):
    format: ProxyAccessLogFormat | None = None
    matches: list[str] = Field(default_factory=list, max_length=10)
    sinks: list[ProxyAccessLogSink] = Field(min_length=1, max_length=50)
    type: Literal["Listener", "Route"] | None = None


class ProxyAccessLog(KubeModel):
    disable: bool = False
    settings: list[ProxyAccessLogSetting] | None = Field(default=None, min_length=1, max_length=50)


# --------------------------------------------------------------------------- metrics


class StringMatch(KubeModel):
    type: Literal["Exact", "Prefix", "Suffix", "RegularExpression"] = "Exact"
    value: Annotated[str, Field(min_length=1, max_length=1024)]


class _Empty(KubeModel):
    pass


class Compression(KubeModel):
    type: Literal["Gzip"]  # Brotli and Zstd are Envoy Gateway options egobs does not offer
    gzip: _Empty | None = None


class ProxyPrometheusProvider(KubeModel):
    disable: bool = False
    compression: Compression | None = None
    port: PortNumber | None = None  # egobs extension; default 19001


class OpenTelemetrySink(_Destination):
    headers: list[HTTPHeader] | None = Field(default=None, min_length=1, max_length=32)
    report_counters_as_deltas: bool = False
    report_histograms_as_deltas: bool = False
    resource_attributes: dict[str, str] | None = None


class MetricsServiceSink(_Destination):
    """egobs extension: Envoy's gRPC metrics service (``envoy.stat_sinks.metrics_service``)."""

    port: Annotated[int, Field(ge=0, le=65535)] = 9000
    report_counters_as_deltas: bool = False


class ProxyMetricSink(KubeModel):
    type: Literal["OpenTelemetry", "MetricsService"] = "OpenTelemetry"
    open_telemetry: OpenTelemetrySink | None = None
    metrics_service: MetricsServiceSink | None = None

    @model_validator(mode="after")
    def _check(self) -> ProxyMetricSink:
        if (self.type == "OpenTelemetry") != (self.open_telemetry is not None):
            raise ValueError(
                "If MetricSink type is OpenTelemetry, openTelemetry field needs to be set."
            )
        if (self.type == "MetricsService") != (self.metrics_service is not None):
            raise ValueError(
                "If MetricSink type is MetricsService, metricsService field needs to be set."
            )
        return self


class ProxyMetrics(KubeModel):
    prometheus: ProxyPrometheusProvider | None = None
    sinks: list[ProxyMetricSink] = Field(default_factory=list, max_length=16)
    matches: list[StringMatch] = Field(default_factory=list)
    enable_virtual_host_stats: bool = False
    # egobs extension: per route rule request stats (envoy_vhost_route_upstream_rq_*). Off
    # by default: at 10,000 routes they make Envoy take ~4x as long to apply a route table
    # (bench/converge.py: ACK of a one-route edit ~60 -> ~270 ms).
    enable_route_stats: bool = False
    enable_per_endpoint_stats: bool = False
    enable_request_response_sizes_stats: bool = False


# --------------------------------------------------------------------------- tracing


class FractionalPercent(KubeModel):
    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _check(self) -> FractionalPercent:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self

    @property
    def percent(self) -> float:
        return 100.0 * self.numerator / self.denominator


class _LiteralTag(KubeModel):
    value: str


class _EnvironmentTag(KubeModel):
    name: str
    default_value: str | None = None


class _RequestHeaderTag(KubeModel):
    name: str
    default_value: str | None = None


class CustomTag(KubeModel):
    type: Literal["Literal", "Environment", "RequestHeader"] = "Literal"
    literal: _LiteralTag | None = None
    environment: _EnvironmentTag | None = None
    request_header: _RequestHeaderTag | None = None

    @model_validator(mode="after")
    def _check(self) -> CustomTag:
        fields = {
            "Literal": ("literal", self.literal),
            "Environment": ("environment", self.environment),
            "RequestHeader": ("requestHeader", self.request_header),
        }
        name, value = fields[self.type]
        if value is None:
            raise ValueError(f"If CustomTag type is {self.type}, {name} field needs to be set.")
        return self


class _OpenTelemetryTracing(KubeModel):
    headers: list[HTTPHeader] | None = Field(default=None, min_length=1, max_length=32)
    resource_attributes: dict[str, str] | None = None
    protocol: Literal["GRPC", "HTTP"] = "GRPC"  # egobs extension
    path: Annotated[str, Field(pattern=r"^/")] = "/v1/traces"  # egobs extension, HTTP only


class TracingProvider(_Destination):
    type: Literal["OpenTelemetry"] = "OpenTelemetry"
    service_name: Annotated[str, Field(min_length=1)] | None = None
    open_telemetry: _OpenTelemetryTracing | None = None


class _SpanName(KubeModel):
    client: str
    server: str


class ProxyTracing(KubeModel):
    provider: TracingProvider
    sampling_rate: Annotated[int, Field(ge=0, le=100)] | None = None
    sampling_fraction: FractionalPercent | None = None
    custom_tags: dict[str, CustomTag] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    span_name: _SpanName | None = None

    @model_validator(mode="after")
    def _check(self) -> ProxyTracing:
        if self.sampling_rate is not None and self.sampling_fraction is not None:
            raise ValueError("only one of SamplingRate or SamplingFraction can be specified")
        return self

    @property
    def sampling_percent(self) -> float:
        """Envoy Gateway's default is 100 %."""
        if self.sampling_fraction is not None:
            return self.sampling_fraction.percent
        return 100.0 if self.sampling_rate is None else float(self.sampling_rate)


class ProxyTelemetry(KubeModel):
    access_log: ProxyAccessLog | None = None
    metrics: ProxyMetrics | None = None
    tracing: ProxyTracing | None = None
