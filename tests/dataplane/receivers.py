"""In-test receivers for the telemetry a real Envoy 1.40 sends, so end-to-end tests can
assert on what arrived.

    with GrpcTelemetryReceiver() as rx:          # point Envoy at 127.0.0.1:rx.port
        spans = rx.wait_for(lambda: rx.spans_named("ingress"), what="the ingress span")

``GrpcTelemetryReceiver`` serves, on one grpc.aio server and one port, OTLP traces, logs
and metrics, Envoy's gRPC access-log service (``StreamAccessLogs``) and Envoy's metrics
service (``StreamMetrics``). ``OtlpHttpReceiver`` serves OTLP/HTTP (``/v1/traces``,
``/v1/logs``, ``/v1/metrics``; protobuf or JSON) with aiohttp and records each request's
headers.

The rules they share:

- Each runs its own asyncio loop in a daemon thread and binds 127.0.0.1 on a port the
  kernel picks (no window between choosing a port and binding it); ``.port`` is known once
  ``start()`` (or ``with``) returns. ``stop()`` (or leaving ``with``) cancels open streams,
  closes the port, ends the thread. A receiver is started once.
- What arrived is kept as small immutable records (``Received*``) in lists guarded by one
  lock; the properties return copies.
- ``.counts`` counts requests per service, so a test can tell "nothing arrived" (count 0)
  from "arrived empty" (count > 0, no records).
- ``wait_for(predicate)`` is woken by each arrival (no polling); on timeout it raises
  AssertionError naming ``what`` and the counts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Self, TypeVar

import grpc
from aiohttp import web
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

# envoy-data-plane's generated models trip Pydantic deprecation warnings once, at import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from envoy_data_plane.envoy.service.metrics import v3 as envoy_metrics
    from envoy_data_plane.io.prometheus import client as prom

__all__ = [
    "ENVOY_METRICS_METHOD",
    "GrpcTelemetryReceiver",
    "OtlpHttpReceiver",
    "ReceivedAccessLog",
    "ReceivedHttpRequest",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedMetricFamily",
    "ReceivedSpan",
    "ReceivedTcpAccessLog",
    "RequestCounts",
]

T = TypeVar("T")

ENVOY_METRICS_SERVICE = "envoy.service.metrics.v3.MetricsService"
ENVOY_METRICS_METHOD = f"/{ENVOY_METRICS_SERVICE}/StreamMetrics"

# Envoy's OpenTelemetry stats sink sends every stat in one export; gRPC's 4 MiB default
# would refuse that on a busy Envoy. BDP probing off: a lagging receiver otherwise buffers
# hundreds of MiB inside gRPC core (measured for egobs's sink, see egobs/sink/server.py).
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.so_reuseport", 0),
]
_START_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One OTLP span. Ids are lowercase hex; ``parent_id`` is "" for a root span;
    ``kind`` is the SpanKind without its prefix ("SERVER", "CLIENT", "INTERNAL", ...)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    service_name: str


@dataclass(frozen=True, slots=True)
class ReceivedLog:
    """One OTLP log record. ``body`` is the AnyValue as Python (str, int, float, bool, bytes,
    list, or dict for a kvlist; None when unset); ids are hex, "" when unset."""

    body: Any
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    trace_id: str
    span_id: str
    severity_text: str
    service_name: str


@dataclass(frozen=True, slots=True)
class ReceivedMetric:
    """One OTLP metric. ``kind`` is the data oneof: "gauge", "sum", "histogram",
    "exponential_histogram" or "summary"; each point is ``(attributes, value)`` where value
    is the number for gauges and sums and the count for the others."""

    name: str
    kind: str
    points: list[tuple[dict[str, Any], float]]
    resource_attributes: dict[str, Any]
    service_name: str


@dataclass(frozen=True, slots=True)
class ReceivedAccessLog:
    """One HTTP entry of Envoy's gRPC access log.

    ``log_name`` comes from the stream's identifier (sent once per stream); ``method`` is
    e.g. "GET" ("" when unset); ``response_code`` is None when Envoy sent none;
    ``request_headers`` holds only the headers the logger was told to log
    (``additional_request_headers_to_log``); ``trace_id`` is taken from a ``traceparent``
    or ``x-b3-traceid`` among them, else None.
    """

    log_name: str
    method: str
    path: str
    authority: str
    response_code: int | None
    route_name: str
    upstream_cluster: str
    request_headers: dict[str, str]
    request_id: str
    trace_id: str | None
    custom_tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class ReceivedTcpAccessLog:
    """One TCP entry of Envoy's gRPC access log."""

    log_name: str
    upstream_cluster: str
    received_bytes: int
    sent_bytes: int


@dataclass(frozen=True, slots=True)
class ReceivedMetricFamily:
    """One Prometheus metric family from Envoy's metrics service.

    ``type`` is the MetricType name ("COUNTER", "GAUGE", "HISTOGRAM", ...); each sample is
    ``(labels, value)``: the value for counters, gauges and untyped, the sample count for
    histograms and summaries. ``node_id`` is from the stream's identifier.
    """

    node_id: str
    name: str
    type: str
    samples: list[tuple[dict[str, str], float]]


@dataclass(frozen=True, slots=True)
class ReceivedHttpRequest:
    """One OTLP/HTTP request as it arrived: path, headers (names lowercased) and status."""

    path: str
    headers: dict[str, str]
    content_type: str
    status: int


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Requests received per service, including those that carried nothing."""

    trace_exports: int = 0
    log_exports: int = 0
    metric_exports: int = 0
    access_log_streams: int = 0
    access_log_messages: int = 0
    envoy_metrics_streams: int = 0
    envoy_metrics_messages: int = 0
    rejected: int = 0  # OTLP/HTTP requests answered 4xx (bad path, type or body)


# --------------------------------------------------------------------------- decoding


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP AnyValue as Python: kvlists become dicts, arrays lists, unset None."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "kvlist_value":
        return key_values(value.kvlist_value.values)
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    return getattr(value, which)


def key_values(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """OTLP attributes as a dict."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def _resource(resource: resource_pb2.Resource) -> tuple[dict[str, Any], str]:
    attrs = key_values(resource.attributes)
    return attrs, str(attrs.get("service.name", ""))


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out = []
    for rs in request.resource_spans:
        attrs, service = _resource(rs.resource)
        for ss in rs.scope_spans:
            for s in ss.spans:
                kind = trace_pb2.Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_")
                out.append(
                    ReceivedSpan(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        kind=kind,
                        attributes=key_values(s.attributes),
                        resource_attributes=attrs,
                        service_name=service,
                    )
                )
    return out


def logs_of(request: logs_service_pb2.ExportLogsServiceRequest) -> list[ReceivedLog]:
    out = []
    for rl in request.resource_logs:
        attrs, service = _resource(rl.resource)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                out.append(
                    ReceivedLog(
                        body=any_value(r.body),
                        attributes=key_values(r.attributes),
                        resource_attributes=attrs,
                        trace_id=r.trace_id.hex(),
                        span_id=r.span_id.hex(),
                        severity_text=r.severity_text,
                        service_name=service,
                    )
                )
    return out


def metrics_of(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[ReceivedMetric]:
    out = []
    for rm in request.resource_metrics:
        attrs, service = _resource(rm.resource)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data") or ""
                points: list[tuple[dict[str, Any], float]] = []
                if kind in ("gauge", "sum"):
                    for p in getattr(m, kind).data_points:
                        which = p.WhichOneof("value")
                        points.append((key_values(p.attributes), getattr(p, which) if which else 0))
                elif kind:
                    for p in getattr(m, kind).data_points:
                        points.append((key_values(p.attributes), p.count))
                out.append(ReceivedMetric(m.name, kind, points, attrs, service))
    return out


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def _trace_id_from(headers: dict[str, str]) -> str | None:
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if match:
        return match.group(1)
    return headers.get("x-b3-traceid") or None


def http_access_log(log_name: str, entry: accesslog_pb2.HTTPAccessLogEntry) -> ReceivedAccessLog:
    common, rq, rs = entry.common_properties, entry.request, entry.response
    headers = dict(rq.request_headers)
    method = base_pb2.RequestMethod.Name(rq.request_method)
    return ReceivedAccessLog(
        log_name=log_name,
        method="" if method == "METHOD_UNSPECIFIED" else method,
        path=rq.path,
        authority=rq.authority,
        response_code=rs.response_code.value if rs.HasField("response_code") else None,
        route_name=common.route_name,
        upstream_cluster=common.upstream_cluster,
        request_headers=headers,
        request_id=rq.request_id,
        trace_id=_trace_id_from(headers),
        custom_tags=dict(common.custom_tags),
    )


def tcp_access_log(log_name: str, entry: accesslog_pb2.TCPAccessLogEntry) -> ReceivedTcpAccessLog:
    return ReceivedTcpAccessLog(
        log_name=log_name,
        upstream_cluster=entry.common_properties.upstream_cluster,
        received_bytes=entry.connection_properties.received_bytes,
        sent_bytes=entry.connection_properties.sent_bytes,
    )


def _sample_value(metric: prom.Metric) -> float:
    if metric.counter is not None:
        return metric.counter.value
    if metric.gauge is not None:
        return metric.gauge.value
    if metric.histogram is not None:
        return metric.histogram.sample_count_float or metric.histogram.sample_count
    if metric.summary is not None:
        return metric.summary.sample_count
    if metric.untyped is not None:
        return metric.untyped.value
    return 0.0


def metric_families_of(
    node_id: str, message: envoy_metrics.StreamMetricsMessage
) -> list[ReceivedMetricFamily]:
    return [
        ReceivedMetricFamily(
            node_id=node_id,
            name=family.name,
            type=prom.MetricType(family.type).name,
            samples=[
                ({lp.name: lp.value for lp in m.label}, _sample_value(m)) for m in family.metric
            ],
        )
        for family in message.envoy_metrics
    ]


# --------------------------------------------------------------------------- base


class _Receiver:
    """The loop thread, the lock-guarded records and ``wait_for`` shared by the receivers."""

    def __init__(self) -> None:
        self.port = 0
        # Re-entrant: a wait_for predicate runs under the lock and reads the properties.
        self._cond = threading.Condition(threading.RLock())
        self._counts: Counter[str] = Counter()
        self._spans: list[ReceivedSpan] = []
        self._logs: list[ReceivedLog] = []
        self._metrics: list[ReceivedMetric] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._started = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind and serve; returns self. ``.port`` is valid afterwards."""
        if self._started:
            raise RuntimeError(f"{type(self).__name__} can be started once")
        self._started = True
        self._thread.start()
        try:
            self._call(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel open streams, close the port and end the thread (idempotent)."""
        if not self._thread.is_alive():
            return
        try:
            self._call(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_START_TIMEOUT_S)

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ records

    def _record(self, counter: str | None, sink: list[Any] | None, items: Iterable[Any]) -> None:
        """Count one request and/or keep its records, then wake the waiters."""
        with self._cond:
            if counter is not None:
                self._counts[counter] += 1
            if sink is not None:
                sink.extend(items)
            self._cond.notify_all()

    @property
    def counts(self) -> RequestCounts:
        with self._cond:
            return RequestCounts(**{f.name: self._counts[f.name] for f in fields(RequestCounts)})

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    @property
    def logs(self) -> list[ReceivedLog]:
        with self._cond:
            return list(self._logs)

    @property
    def metrics(self) -> list[ReceivedMetric]:
        with self._cond:
            return list(self._metrics)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received for ``trace_id`` (hex)."""
        return [s for s in self.spans if s.trace_id == trace_id]

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def metrics_named(self, name: str) -> list[ReceivedMetric]:
        return [m for m in self.metrics if m.name == name]

    def wait_for(
        self, predicate: Callable[[], T], *, timeout: float = 10.0, what: str = "condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        The predicate runs under the receiver's lock, re-evaluated on each arrival; it may
        read this receiver's properties but must not block.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout:g}s waiting for {what}; received {self.counts}"
                    )
                self._cond.wait(left)


# --------------------------------------------------------------------------- gRPC


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, rx: GrpcTelemetryReceiver) -> None:
        self._rx = rx

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._rx._record("trace_exports", self._rx._spans, spans_of(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, rx: GrpcTelemetryReceiver) -> None:
        self._rx = rx

    async def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._rx._record("log_exports", self._rx._logs, logs_of(request))
        return logs_service_pb2.ExportLogsServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, rx: GrpcTelemetryReceiver) -> None:
        self._rx = rx

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._rx._record("metric_exports", self._rx._metrics, metrics_of(request))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _AccessLogService(als_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, rx: GrpcTelemetryReceiver) -> None:
        self._rx = rx

    async def StreamAccessLogs(
        self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage], context: Any
    ) -> als_pb2.StreamAccessLogsResponse:
        rx = self._rx
        rx._record("access_log_streams", None, ())
        log_name = ""  # Envoy sends the identifier in the first message of a stream only
        async for msg in request_iterator:
            if msg.HasField("identifier"):
                log_name = msg.identifier.log_name
            http = [http_access_log(log_name, e) for e in msg.http_logs.log_entry]
            tcp = [tcp_access_log(log_name, e) for e in msg.tcp_logs.log_entry]
            with rx._cond:
                rx._record("access_log_messages", rx._access_logs, http)
                rx._record(None, rx._tcp_access_logs, tcp)
        return als_pb2.StreamAccessLogsResponse()


class GrpcTelemetryReceiver(_Receiver):
    """OTLP traces/logs/metrics, Envoy's access-log service and Envoy's metrics service on
    one grpc.aio server at 127.0.0.1:``port``.

        with GrpcTelemetryReceiver() as rx:
            rx.wait_for(lambda: rx.access_logs, what="an access-log entry")
    """

    def __init__(self) -> None:
        super().__init__()
        self._access_logs: list[ReceivedAccessLog] = []
        self._tcp_access_logs: list[ReceivedTcpAccessLog] = []
        self._metric_families: list[ReceivedMetricFamily] = []
        self._server: grpc.aio.Server | None = None

    async def _start(self) -> None:
        server = grpc.aio.server(options=_GRPC_OPTIONS)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), server)
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(_AccessLogService(self), server)
        # xds-protos lacks envoy.service.metrics.v3: take raw bytes, parse with betterproto2.
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    ENVOY_METRICS_SERVICE,
                    {
                        "StreamMetrics": grpc.stream_unary_rpc_method_handler(
                            self._stream_metrics,
                            request_deserializer=None,
                            response_serializer=None,
                        )
                    },
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        if port == 0:
            raise OSError("cannot bind 127.0.0.1 for the gRPC telemetry receiver")
        await server.start()
        self._server, self.port = server, port

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    async def _stream_metrics(self, requests: AsyncIterator[bytes], context: Any) -> bytes:
        self._record("envoy_metrics_streams", None, ())
        node_id = ""  # the identifier comes in the stream's first message only
        async for raw in requests:
            # Pure-Python parsing: ~0.2 s for 3,000 families, so off the loop the other
            # services share.
            msg = await asyncio.to_thread(envoy_metrics.StreamMetricsMessage.parse, raw)
            if msg.identifier is not None and msg.identifier.node is not None:
                node_id = msg.identifier.node.id
            families = metric_families_of(node_id, msg)
            self._record("envoy_metrics_messages", self._metric_families, families)
        return bytes(envoy_metrics.StreamMetricsResponse())

    @property
    def access_logs(self) -> list[ReceivedAccessLog]:
        """HTTP entries of Envoy's gRPC access log."""
        with self._cond:
            return list(self._access_logs)

    @property
    def tcp_access_logs(self) -> list[ReceivedTcpAccessLog]:
        with self._cond:
            return list(self._tcp_access_logs)

    @property
    def metric_families(self) -> list[ReceivedMetricFamily]:
        """Families from Envoy's metrics service, in arrival order (every flush repeats them)."""
        with self._cond:
            return list(self._metric_families)

    def metric_family(self, name: str) -> ReceivedMetricFamily | None:
        """The latest family called ``name``, or None."""
        return next((f for f in reversed(self.metric_families) if f.name == name), None)


# --------------------------------------------------------------------------- OTLP/HTTP


class _Signal(NamedTuple):
    request: type[Message]
    response: type[Message]
    counter: str
    records: str  # the receiver's list the decoded records go to
    decode: Callable[[Any], list[Any]]


_HEX_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id"})
_HEX_ID = re.compile(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping wants bytes as base64."""
    if isinstance(node, dict):
        return {
            k: (
                base64.b64encode(bytes.fromhex(v)).decode()
                if k in _HEX_ID_KEYS and isinstance(v, str) and _HEX_ID.match(v)
                else _hex_ids_to_base64(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


class OtlpHttpReceiver(_Receiver):
    """OTLP/HTTP on 127.0.0.1:``port``: POST /v1/traces, /v1/logs, /v1/metrics with
    ``application/x-protobuf`` or ``application/json`` bodies (gzip accepted).

    Answers 200 with an empty Export*ServiceResponse in the request's encoding; 404, 415 or
    400 (counted as ``rejected``) for another path, content type or an undecodable body.
    Every request, answered or not, is kept in ``requests`` with its headers.

        with OtlpHttpReceiver() as rx:
            endpoint = f"http://127.0.0.1:{rx.port}/v1/traces"
    """

    _SIGNALS: dict[str, _Signal] = {
        "/v1/traces": _Signal(
            trace_service_pb2.ExportTraceServiceRequest,
            trace_service_pb2.ExportTraceServiceResponse,
            "trace_exports",
            "_spans",
            spans_of,
        ),
        "/v1/logs": _Signal(
            logs_service_pb2.ExportLogsServiceRequest,
            logs_service_pb2.ExportLogsServiceResponse,
            "log_exports",
            "_logs",
            logs_of,
        ),
        "/v1/metrics": _Signal(
            metrics_service_pb2.ExportMetricsServiceRequest,
            metrics_service_pb2.ExportMetricsServiceResponse,
            "metric_exports",
            "_metrics",
            metrics_of,
        ),
    }

    def __init__(self) -> None:
        super().__init__()
        self._requests: list[ReceivedHttpRequest] = []
        self._runner: web.AppRunner | None = None

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = int(runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        content_type = request.content_type
        response = await self._answer(request, content_type)
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen = ReceivedHttpRequest(request.path, headers, content_type, response.status)
        self._record(None, self._requests, (seen,))
        return response

    async def _answer(self, request: web.Request, content_type: str) -> web.Response:
        signal = self._SIGNALS.get(request.path)
        if signal is None or request.method != "POST":
            return self._reject(404, "not an OTLP path")
        body = await request.read()
        try:
            if content_type == "application/x-protobuf":
                message = signal.request.FromString(body)
            elif content_type == "application/json":
                message = json_format.ParseDict(
                    _hex_ids_to_base64(json.loads(body or b"{}")),
                    signal.request(),
                    ignore_unknown_fields=True,
                )
            else:
                return self._reject(415, f"unsupported content type {content_type!r}")
        except (DecodeError, json_format.ParseError, ValueError) as exc:
            return self._reject(400, f"cannot decode the request: {exc}")
        self._record(signal.counter, getattr(self, signal.records), signal.decode(message))
        if content_type == "application/json":
            return web.Response(body=b"{}", content_type="application/json")
        return web.Response(
            body=signal.response().SerializeToString(), content_type="application/x-protobuf"
        )

    def _reject(self, status: int, reason: str) -> web.Response:
        self._record("rejected", None, ())
        return web.Response(status=status, text=reason)

    @property
    def requests(self) -> list[ReceivedHttpRequest]:
        """Every request received, in order, with its headers."""
        with self._cond:
            return list(self._requests)
