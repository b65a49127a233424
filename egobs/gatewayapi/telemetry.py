"""EnvoyProxy ``spec.telemetry`` → the telemetry parts of the IR.

:class:`TelemetryCompiler` turns one EnvoyProxy (or none) plus the control plane's defaults
into a :class:`CompiledTelemetry`: access logs, tracing and stats with every destination
resolved to endpoints, or an :class:`Issue` naming the EnvoyProxy and the field that is
wrong (the GatewayClass or Gateway using it is then not accepted, reason
``InvalidParameters``, as Gateway API asks for malformed parameters).
:meth:`CompiledTelemetry.for_gateway` fills in what depends on the Gateway (the tracing
service name).

What the defaults add when the EnvoyProxy says nothing (or there is none):

* access logs: a JSON line per request to ``/dev/stdout`` with the fields an operator
  needs (the xDS translator's default format), plus the configured ``egobs sink`` over
  gRPC ALS;
* metrics: the Prometheus stats listener on port 19001 (mapped like listener ports);
* tracing: none.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from egobs import ir
from egobs.gatewayapi.backends import Backends
from egobs.gatewayapi.http import regex_problem
from egobs.gatewayapi.status import R_INVALID_PARAMETERS, Issue
from egobs.resources import EnvoyProxy
from egobs.resources.telemetry import (
    CustomTag,
    HTTPHeader,
    ProxyAccessLogFormat,
    ProxyAccessLogSetting,
    ProxyAccessLogSink,
    ProxyMetrics,
    ProxyTracing,
    TelemetryBackendRef,
)

__all__ = [
    "DEFAULT_STATS_PORT",
    "DEFAULT_TELEMETRY",
    "SINK_REQUEST_HEADERS",
    "SINK_RESPONSE_HEADERS",
    "Compiled",
    "CompiledTelemetry",
    "LastGood",
    "SinkAddress",
    "TelemetryCompiler",
    "TelemetryDefaults",
    "TelemetryError",
    "sink_access_log",
]

DEFAULT_STATS_PORT = 19001  # Envoy Gateway's

# What the egobs sink gets besides the ALS entry's own fields. Credentials are sent so the
# sink can show that a request carried them; the sink redacts them.
SINK_REQUEST_HEADERS = (
    "authorization",
    "cookie",
    "content-type",
    "content-length",
    "traceparent",
    "x-forwarded-for",
)
SINK_RESPONSE_HEADERS = ("content-type", "content-length", "location", "set-cookie")


class TelemetryError(Exception):
    """A telemetry field that cannot be translated; ``path`` is the field's spec path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class SinkAddress:
    """The ``egobs sink`` every proxy streams access logs to unless its EnvoyProxy says
    otherwise (``proxyTelemetry.accessLogSink`` of the egobs config)."""

    host: str
    port: int
    log_name: str = "egobs"
    tls: ir.TelemetryTLS | None = None


@dataclass(frozen=True, slots=True)
class TelemetryDefaults:
    """The control plane's telemetry defaults; the same for every Gateway."""

    sink: SinkAddress | None = None
    stdout_access_log: bool = True
    prometheus: bool = True


DEFAULT_TELEMETRY = TelemetryDefaults()
"""Stdout access logs and the stats listener; no sink (the egobs config adds one)."""


@dataclass(frozen=True, slots=True)
class CompiledTelemetry:
    """One EnvoyProxy's telemetry, resolved; shared by every Gateway that uses it."""

    access_logs: tuple[ir.AccessLog, ...] = ()
    tracing: ir.Tracing | None = None
    cluster_stats: ir.ClusterStats = field(default_factory=ir.ClusterStats)
    virtual_host_stats: bool = False
    route_stats: bool = False
    stats: ir.ProxyStats = field(default_factory=ir.ProxyStats)

    def for_gateway(self, namespace: str, name: str) -> CompiledTelemetry:
        """The telemetry of Gateway ``namespace/name``: the tracing service name defaults
        to ``<gateway>.<namespace>``, as in Envoy Gateway."""
        if self.tracing is None or self.tracing.service_name:
            return self
        tracing = dataclasses.replace(self.tracing, service_name=f"{name}.{namespace}")
        return dataclasses.replace(self, tracing=tracing)


def sink_access_log(sink: SinkAddress, *, name: str = "egobs-sink") -> ir.AccessLog:
    """Every request and TCP connection, streamed over gRPC ALS to the ``egobs sink`` at
    ``sink`` through cluster ``telemetry/<name>``."""
    cluster = _cluster(f"telemetry/{name}", sink.host, sink.port, http2=True, tls=sink.tls)
    als = ir.GrpcAccessLog(
        cluster,
        sink.log_name,
        request_headers=SINK_REQUEST_HEADERS,
        response_headers=SINK_RESPONSE_HEADERS,
    )
    return ir.AccessLog(f"default/{name}", (als,))


@dataclass(frozen=True, slots=True)
class Compiled:
    """What :meth:`TelemetryCompiler.compile` decided for one EnvoyProxy.

    ``telemetry`` is what its users serve: its own, or, when it cannot be translated, the
    last telemetry it had that could (None if it never had any). ``issue`` is why it
    cannot be translated: its users report ``Accepted: False, InvalidParameters``, and
    are served only while there is a last good telemetry to serve.
    """

    telemetry: CompiledTelemetry | None
    issue: Issue | None = None


# The last telemetry each EnvoyProxy compiled to, by (namespace, name): kept by the caller
# across translations, so a typo in a serving Gateway's EnvoyProxy does not take it down.
LastGood = dict[tuple[str, str], CompiledTelemetry]


class TelemetryCompiler:
    """Compiles EnvoyProxy telemetry, once per EnvoyProxy and translation.

    ``last_good`` is read for fallbacks and updated with every telemetry that compiles;
    a pure translation passes a fresh dict.
    """

    def __init__(
        self, backends: Backends, defaults: TelemetryDefaults, last_good: LastGood
    ) -> None:
        self._backends = backends
        self._defaults = defaults
        self._last_good = last_good
        self._cache: dict[tuple[str, str] | None, Compiled] = {}

    def compile(self, proxy: EnvoyProxy | None) -> Compiled:
        key = (proxy.namespace, proxy.name) if proxy is not None else None
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._compile(proxy)
        return hit

    def _compile(self, proxy: EnvoyProxy | None) -> Compiled:
        try:
            telemetry = _Compile(proxy, self._backends, self._defaults).run()
        except TelemetryError as exc:
            assert proxy is not None, "the defaults alone always compile"
            last = self._last_good.get((proxy.namespace, proxy.name))
            kept = "; its proxies keep the last telemetry it had that could" if last else ""
            message = f"EnvoyProxy {proxy.namespace}/{proxy.name}: {exc}{kept}"
            return Compiled(last, Issue(R_INVALID_PARAMETERS, message))
        if proxy is not None:
            self._last_good[(proxy.namespace, proxy.name)] = telemetry
        return Compiled(telemetry)


class _Compile:
    def __init__(
        self, proxy: EnvoyProxy | None, backends: Backends, defaults: TelemetryDefaults
    ) -> None:
        self.proxy = proxy
        self.backends = backends
        self.defaults = defaults
        self.namespace = proxy.namespace if proxy is not None else ""
        # "<ns>/<envoyproxy>": names its access logs and, under "telemetry/", its clusters.
        self.owner = f"{proxy.namespace}/{proxy.name}" if proxy is not None else ""
        self.prefix = f"telemetry/{self.owner}"

    def run(self) -> CompiledTelemetry:
        telemetry = self.proxy.spec.telemetry if self.proxy is not None else None
        access_log = telemetry.access_log if telemetry is not None else None
        if access_log is not None and access_log.disable:
            access_logs: tuple[ir.AccessLog, ...] = ()
        elif access_log is not None and access_log.settings:
            access_logs = tuple(self._access_log(i, s) for i, s in enumerate(access_log.settings))
        else:
            access_logs = self._default_access_logs()
        metrics = telemetry.metrics if telemetry is not None else None
        tracing = telemetry.tracing if telemetry is not None else None
        return CompiledTelemetry(
            access_logs=access_logs,
            tracing=self._tracing(tracing) if tracing is not None else None,
            cluster_stats=ir.ClusterStats(
                per_endpoint=bool(metrics and metrics.enable_per_endpoint_stats),
                request_response_sizes=bool(
                    metrics and metrics.enable_request_response_sizes_stats
                ),
            ),
            virtual_host_stats=bool(metrics and metrics.enable_virtual_host_stats),
            route_stats=bool(metrics and metrics.enable_route_stats),
            stats=self._stats(metrics),
        )

    # ------------------------------------------------------------------ access logs

    def _default_access_logs(self) -> tuple[ir.AccessLog, ...]:
        out = []
        if self.defaults.stdout_access_log:
            out.append(ir.AccessLog("default/stdout", (ir.FileAccessLog("/dev/stdout"),)))
        if self.defaults.sink is not None:
            out.append(sink_access_log(self.defaults.sink))
        return tuple(out)

    def _access_log(self, i: int, setting: ProxyAccessLogSetting) -> ir.AccessLog:
        path = f"spec.telemetry.accessLog.settings[{i}]"
        for j, expression in enumerate(setting.matches):
            _check_cel(f"{path}.matches[{j}]", expression)
        sinks = tuple(
            self._access_log_sink(f"{path}.sinks[{j}]", f"{i}/{j}", sink)
            for j, sink in enumerate(setting.sinks)
        )
        return ir.AccessLog(
            name=f"{self.owner}/accesslog/{i}",
            sinks=sinks,
            format=_format(setting.format),
            matches=tuple(setting.matches),
            type=ir.AccessLogType(setting.type) if setting.type is not None else None,
        )

    def _access_log_sink(
        self, path: str, suffix: str, sink: ProxyAccessLogSink
    ) -> ir.AccessLogSink:
        name = f"{self.prefix}/accesslog/{suffix}"
        if sink.file is not None:
            return ir.FileAccessLog(sink.file.path)
        if sink.als is not None:
            als = sink.als
            cluster = self._refs_cluster(f"{path}.als", name, None, 0, als.backend_refs)
            http = als.http
            return ir.GrpcAccessLog(
                cluster,
                als.log_name or "accesslog",
                http=als.type == "HTTP",
                request_headers=tuple(http.request_headers) if http else (),
                response_headers=tuple(http.response_headers) if http else (),
                response_trailers=tuple(http.response_trailers) if http else (),
            )
        otel = sink.open_telemetry
        assert otel is not None, "the model requires one sink kind"
        cluster = self._refs_cluster(
            f"{path}.openTelemetry", name, otel.host, otel.port, otel.backend_refs
        )
        attributes = otel.resource_attributes or otel.resources or {}
        return ir.OpenTelemetryAccessLog(
            cluster,
            log_name="otel_envoy_accesslog",
            resource_attributes=_attributes(attributes),
            headers=_headers(otel.headers),
        )

    # ------------------------------------------------------------------ tracing

    def _tracing(self, tracing: ProxyTracing) -> ir.Tracing:
        provider = tracing.provider
        path = "spec.telemetry.tracing.provider"
        otel = provider.open_telemetry
        http = otel is not None and otel.protocol == "HTTP"
        cluster = self._refs_cluster(
            path,
            f"{self.prefix}/tracing",
            provider.host,
            provider.port,
            provider.backend_refs,
            http2=not http,
        )
        tags = [_custom_tag(name, tag) for name, tag in sorted(tracing.custom_tags.items())]
        tags.extend(
            ir.TracingTag(name, ir.TracingTagKind.FORMATTER, value)
            for name, value in sorted(tracing.tags.items())
        )
        span_name = tracing.span_name
        return ir.Tracing(
            cluster=cluster,
            service_name=provider.service_name or "",
            sampling_percent=tracing.sampling_percent,
            http_path=otel.path if http and otel is not None else None,
            authority=_authority(cluster.endpoints[0]) if http and cluster.endpoints else None,
            headers=_headers(otel.headers if otel is not None else None),
            resource_attributes=_attributes(
                (otel.resource_attributes if otel is not None else None) or {}
            ),
            tags=tuple(tags),
            span_name_server=span_name.server if span_name is not None else None,
            span_name_client=span_name.client if span_name is not None else None,
        )

    # ------------------------------------------------------------------ stats

    def _stats(self, metrics: ProxyMetrics | None) -> ir.ProxyStats:
        prometheus = metrics.prometheus if metrics is not None else None
        listener = None
        if self.defaults.prometheus and not (prometheus is not None and prometheus.disable):
            listener = ir.StatsListener(
                "0.0.0.0",
                (prometheus.port if prometheus is not None else None) or DEFAULT_STATS_PORT,
                gzip=prometheus is not None and prometheus.compression is not None,
            )
        if metrics is None:
            return ir.ProxyStats(prometheus=listener)
        sinks: list[ir.StatsSink] = []
        for i, sink in enumerate(metrics.sinks):
            path = f"spec.telemetry.metrics.sinks[{i}]"
            name = f"{self.prefix}/metrics/{i}"
            if sink.open_telemetry is not None:
                o = sink.open_telemetry
                cluster = self._refs_cluster(
                    f"{path}.openTelemetry", name, o.host, o.port, o.backend_refs
                )
                sinks.append(
                    ir.OpenTelemetryStatsSink(
                        cluster,
                        report_counters_as_deltas=o.report_counters_as_deltas,
                        report_histograms_as_deltas=o.report_histograms_as_deltas,
                        resource_attributes=_attributes(o.resource_attributes or {}),
                        headers=_headers(o.headers),
                    )
                )
            else:
                m = sink.metrics_service
                assert m is not None, "the model requires one sink kind"
                cluster = self._refs_cluster(
                    f"{path}.metricsService", name, m.host, m.port, m.backend_refs
                )
                sinks.append(
                    ir.MetricsServiceStatsSink(
                        cluster, report_counters_as_deltas=m.report_counters_as_deltas
                    )
                )
        matches = []
        for i, match in enumerate(metrics.matches):
            if match.type == "RegularExpression":
                _check_regex(f"spec.telemetry.metrics.matches[{i}].value", match.value)
            matches.append(ir.StatsMatch(ir.StatsMatchType(match.type), match.value))
        return ir.ProxyStats(prometheus=listener, sinks=tuple(sinks), matches=tuple(matches))

    # ------------------------------------------------------------------ destinations

    def _refs_cluster(
        self,
        path: str,
        name: str,
        host: str | None,
        port: int,
        refs: list[TelemetryBackendRef],
        *,
        http2: bool = True,
    ) -> ir.TelemetryCluster:
        """The cluster of a destination: its ``backendRefs`` resolved, else host/port."""
        if not refs:
            assert host, "the model requires host or backendRefs"
            if not 1 <= port <= 65535:
                raise TelemetryError(f"{path}.port", f"port {port} is outside 1..65535")
            return _cluster(name, host, port, http2=http2)
        endpoints: list[ir.Endpoint] = []
        address_types = set()
        for k, ref in enumerate(refs):
            cluster, issue = self.backends.resolve(ref, "EnvoyProxy", self.namespace)
            if issue is not None:
                raise TelemetryError(f"{path}.backendRefs[{k}]", issue.message)
            assert cluster is not None
            # Copied into the telemetry cluster: endpoint changes retranslate fully.
            self.backends.endpoints.pin(ref.kind, ref.namespace or self.namespace, ref.name)
            endpoints_of = self.backends.endpoints.endpoints(cluster.name)
            if not endpoints_of:
                raise TelemetryError(
                    f"{path}.backendRefs[{k}]", f"{ref.kind} {ref.name} has no ready endpoints"
                )
            if cluster.address_type is ir.AddressType.UNIX:
                raise TelemetryError(
                    f"{path}.backendRefs[{k}]", "unix socket endpoints are not supported here"
                )
            address_types.add(cluster.address_type)
            endpoints.extend(e for e in endpoints_of if e not in endpoints)
        if len(address_types) > 1:
            raise TelemetryError(
                f"{path}.backendRefs", "IP and FQDN endpoints cannot be mixed in one destination"
            )
        return ir.TelemetryCluster(name, tuple(endpoints), address_types.pop(), http2=http2)


def _cluster(
    name: str, host: str, port: int, *, http2: bool, tls: ir.TelemetryTLS | None = None
) -> ir.TelemetryCluster:
    try:
        ipaddress.ip_address(host)
        address_type = ir.AddressType.IP
    except ValueError:
        address_type = ir.AddressType.FQDN
    return ir.TelemetryCluster(name, (ir.Endpoint(host, port),), address_type, http2=http2, tls=tls)


def _format(fmt: ProxyAccessLogFormat | None) -> ir.AccessLogFormat | None:
    if fmt is None:
        return None
    if fmt.json_fields is not None and fmt.type != "Text":
        return ir.AccessLogFormat(json=_attributes(fmt.json_fields))
    return ir.AccessLogFormat(text=fmt.text)


def _authority(endpoint: ir.Endpoint) -> str:
    """The Host of OTLP/HTTP requests: ``host:port`` (bracketed IPv6), port 80 left out."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return host if endpoint.port == 80 else f"{host}:{endpoint.port}"


def _attributes(values: dict[str, str]) -> tuple[ir.Attribute, ...]:
    return tuple(ir.Attribute(k, v) for k, v in values.items())


def _headers(headers: list[HTTPHeader] | None) -> tuple[ir.HeaderValue, ...]:
    return tuple(ir.HeaderValue(h.name, h.value) for h in headers or ())


def _custom_tag(name: str, tag: CustomTag) -> ir.TracingTag:
    if tag.literal is not None and tag.type == "Literal":
        return ir.TracingTag(name, ir.TracingTagKind.LITERAL, tag.literal.value)
    if tag.environment is not None and tag.type == "Environment":
        env = tag.environment
        return ir.TracingTag(name, ir.TracingTagKind.ENVIRONMENT, env.name, env.default_value)
    header = tag.request_header
    assert header is not None, "the model requires the field of its type"
    return ir.TracingTag(name, ir.TracingTagKind.REQUEST_HEADER, header.name, header.default_value)


def _check_cel(path: str, expression: str) -> None:
    problem = _cel_problem(expression)
    if problem is not None:
        raise TelemetryError(path, f"invalid CEL expression {expression!r}: {problem}")


@functools.lru_cache(maxsize=1024)
def _cel_problem(expression: str) -> str | None:
    """Why Envoy's CEL filter would not parse ``expression``, so a typo is a status, not a
    NACK: cel-python's parser implements the same CEL grammar as cel-cpp. (Type and name
    errors pass Envoy's validation too; such an expression just never logs.)"""
    import celpy

    try:
        _cel_environment().compile(expression)
    except celpy.CELParseError as exc:
        column = getattr(exc, "column", None)
        return f"syntax error at column {column}" if column else "syntax error"
    except Exception as exc:  # anything else the parser raises: report, never crash
        return str(exc) or type(exc).__name__
    return None


@functools.cache
def _cel_environment() -> Any:
    import celpy

    return celpy.Environment()  # builds the grammar (~0.1 s): once per process


def _check_regex(path: str, pattern: str) -> None:
    problem = regex_problem(pattern)
    if problem is not None:
        raise TelemetryError(path, problem)
