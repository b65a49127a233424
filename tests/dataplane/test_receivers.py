"""The in-test telemetry receivers, without Envoy: each service is fed by a real client (the
OpenTelemetry SDK's OTLP exporters, gRPC stubs, a raw generic call) and must decode what a
test will assert on — and must be able to say that nothing, or nothing matching, arrived."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

sys.path.insert(0, str(Path(__file__).resolve().parent))

from receivers import ENVOY_METRICS_METHOD, GrpcTelemetryReceiver, OtlpHttpReceiver

with warnings.catch_warnings():  # Pydantic deprecations in envoy-data-plane, once at import
    warnings.simplefilter("ignore", DeprecationWarning)
    from envoy_data_plane.envoy.config.core import v3 as edp_core
    from envoy_data_plane.envoy.service.metrics import v3 as envoy_metrics
    from envoy_data_plane.io.prometheus import client as prom

RESOURCE = Resource.create({"service.name": "receiver-test"})
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


@pytest.fixture
def grpc_rx() -> Iterator[GrpcTelemetryReceiver]:
    with GrpcTelemetryReceiver() as rx:
        yield rx


@pytest.fixture
def http_rx() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as rx:
        yield rx


@pytest.fixture
def channel(grpc_rx: GrpcTelemetryReceiver) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_rx.port}") as ch:
        yield ch


def _send_two_spans(exporter: GrpcSpanExporter | HttpSpanExporter) -> tuple[str, str, str]:
    """Export a server span with one child; returns (trace id, parent id, child id) as hex."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("receiver-test")
    with (
        tracer.start_as_current_span("ingress", kind=SpanKind.SERVER) as parent,
        tracer.start_as_current_span("router", attributes={"http.status": 200}) as child,
    ):
        pass
    provider.shutdown()
    p, c = parent.get_span_context(), child.get_span_context()
    return f"{p.trace_id:032x}", f"{p.span_id:016x}", f"{c.span_id:016x}"


# --------------------------------------------------------------------------- OTLP over gRPC


def test_grpc_traces_from_the_sdk_exporter(grpc_rx: GrpcTelemetryReceiver) -> None:
    exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{grpc_rx.port}", insecure=True, timeout=5)
    trace_id, parent_id, child_id = _send_two_spans(exporter)

    grpc_rx.wait_for(lambda: len(grpc_rx.trace(trace_id)) == 2, what="both spans")
    by_name = {s.name: s for s in grpc_rx.trace(trace_id)}
    assert by_name["ingress"].span_id == parent_id
    assert by_name["ingress"].parent_id == ""
    assert by_name["ingress"].kind == "SERVER"
    assert by_name["router"].span_id == child_id
    assert by_name["router"].parent_id == parent_id
    assert by_name["router"].kind == "INTERNAL"
    assert by_name["router"].attributes == {"http.status": 200}
    assert by_name["router"].service_name == "receiver-test"
    assert by_name["router"].resource_attributes["service.name"] == "receiver-test"
    assert grpc_rx.counts.trace_exports == 2  # SimpleSpanProcessor: one export per span
    assert grpc_rx.trace("0" * 32) == []


def test_grpc_logs_from_the_sdk_exporter(grpc_rx: GrpcTelemetryReceiver) -> None:
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"127.0.0.1:{grpc_rx.port}", insecure=True, timeout=5)
        )
    )
    logger = provider.get_logger("receiver-test")
    ctx = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1)))
    )
    logger.emit(body={"method": "GET", "code": 200}, attributes={"k": "v"}, context=ctx)
    logger.emit(body="plain text", severity_text="INFO")
    provider.shutdown()

    grpc_rx.wait_for(lambda: len(grpc_rx.logs) == 2, what="two logs")
    structured, plain = grpc_rx.logs
    assert structured.body == {"method": "GET", "code": 200}
    assert structured.attributes == {"k": "v"}
    assert structured.trace_id == f"{TRACE_ID:032x}"
    assert structured.span_id == f"{SPAN_ID:016x}"
    assert structured.service_name == "receiver-test"
    assert plain.body == "plain text"
    assert plain.severity_text == "INFO"
    assert plain.trace_id == ""
    assert grpc_rx.counts.log_exports == 2


def test_grpc_metrics_from_the_sdk_exporter(grpc_rx: GrpcTelemetryReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=f"127.0.0.1:{grpc_rx.port}", insecure=True, timeout=5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("receiver-test")
    meter.create_counter("requests").add(3, {"route": "a"})
    meter.create_histogram("latency").record(5.0)
    meter.create_histogram("latency").record(7.0)
    provider.force_flush()

    grpc_rx.wait_for(lambda: grpc_rx.metrics_named("latency"), what="the latency histogram")
    provider.shutdown()
    (requests,) = grpc_rx.metrics_named("requests")[:1]
    assert requests.kind == "sum"
    assert requests.points == [({"route": "a"}, 3)]
    assert requests.service_name == "receiver-test"
    latency = grpc_rx.metrics_named("latency")[0]
    assert latency.kind == "histogram"
    assert latency.points == [({}, 2)]
    assert grpc_rx.counts.metric_exports >= 1


def test_an_empty_export_is_counted_but_holds_nothing(
    grpc_rx: GrpcTelemetryReceiver, channel: grpc.Channel
) -> None:
    assert grpc_rx.counts.trace_exports == 0
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
    assert grpc_rx.counts.trace_exports == 1
    assert grpc_rx.spans == []


def test_wait_for_times_out_naming_what_it_waited_for(grpc_rx: GrpcTelemetryReceiver) -> None:
    with pytest.raises(AssertionError, match=r"a span named nope.*trace_exports=0"):
        grpc_rx.wait_for(lambda: grpc_rx.spans_named("nope"), timeout=0.2, what="a span named nope")


def test_wait_for_wakes_on_arrival_not_at_its_timeout(
    grpc_rx: GrpcTelemetryReceiver, channel: grpc.Channel
) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="late")
    sender = threading.Timer(0.2, lambda: stub.Export(request, timeout=5))
    sender.start()
    try:
        started = time.monotonic()
        grpc_rx.wait_for(lambda: grpc_rx.spans_named("late"), timeout=5, what="the late span")
        assert time.monotonic() - started < 2
    finally:
        sender.join(5)


def test_stop_closes_the_port_and_ends_the_thread() -> None:
    rx = GrpcTelemetryReceiver()
    with rx:
        port = rx.port
        assert port > 0
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not rx._thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    rx.stop()  # idempotent


# --------------------------------------------------------------------------- Envoy's ALS


def _http_entry(path: str, code: int) -> accesslog_pb2.HTTPAccessLogEntry:
    entry = accesslog_pb2.HTTPAccessLogEntry()
    entry.common_properties.route_name = "httproute/default/r/rule/0/match/0"
    entry.common_properties.upstream_cluster = "httproute/default/r/rule/0"
    entry.common_properties.custom_tags["tag"] = "x"
    entry.request.request_method = base_pb2.RequestMethod.Value("GET")
    entry.request.path = path
    entry.request.authority = "example.test"
    entry.request.request_id = "req-1"
    entry.request.request_headers["traceparent"] = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
    entry.request.request_headers["x-custom"] = "yes"
    entry.response.response_code.value = code
    return entry


def test_access_log_stream_http_and_tcp_entries(
    grpc_rx: GrpcTelemetryReceiver, channel: grpc.Channel
) -> None:
    first = als_pb2.StreamAccessLogsMessage()
    first.identifier.log_name = "egobs-als"
    first.identifier.node.id = "envoy-1"
    first.http_logs.log_entry.append(_http_entry("/a", 200))
    second = als_pb2.StreamAccessLogsMessage()  # no identifier: Envoy sends it once per stream
    tcp = second.tcp_logs.log_entry.add()
    tcp.common_properties.upstream_cluster = "tcproute/default/t/rule/0"
    tcp.connection_properties.received_bytes = 10
    tcp.connection_properties.sent_bytes = 20
    stub = als_pb2_grpc.AccessLogServiceStub(channel)
    stub.StreamAccessLogs(iter([first, second]), timeout=5)

    (log,) = grpc_rx.access_logs
    assert log.log_name == "egobs-als"
    assert (log.method, log.path, log.authority, log.response_code) == (
        "GET",
        "/a",
        "example.test",
        200,
    )
    assert log.route_name == "httproute/default/r/rule/0/match/0"
    assert log.upstream_cluster == "httproute/default/r/rule/0"
    assert log.request_headers["x-custom"] == "yes"
    assert log.request_id == "req-1"
    assert log.trace_id == f"{TRACE_ID:032x}"
    assert log.custom_tags == {"tag": "x"}
    (tcp_log,) = grpc_rx.tcp_access_logs
    assert tcp_log.log_name == "egobs-als"
    assert (tcp_log.upstream_cluster, tcp_log.received_bytes, tcp_log.sent_bytes) == (
        "tcproute/default/t/rule/0",
        10,
        20,
    )
    counts = grpc_rx.counts
    assert (counts.access_log_streams, counts.access_log_messages) == (1, 2)


def test_access_log_without_trace_headers_has_no_trace_id(
    grpc_rx: GrpcTelemetryReceiver, channel: grpc.Channel
) -> None:
    entry = _http_entry("/b", 503)
    entry.request.request_headers.clear()
    entry.response.ClearField("response_code")
    msg = als_pb2.StreamAccessLogsMessage()
    msg.http_logs.log_entry.append(entry)
    als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(iter([msg]), timeout=5)

    (log,) = grpc_rx.access_logs
    assert (log.log_name, log.trace_id, log.response_code, log.request_headers) == (
        "",
        None,
        None,
        {},
    )


# --------------------------------------------------------------------------- Envoy's metrics service


def _family(name: str, kind: prom.MetricType, value: float, **labels: str) -> prom.MetricFamily:
    metric = prom.Metric(label=[prom.LabelPair(name=k, value=v) for k, v in labels.items()])
    if kind == prom.MetricType.COUNTER:
        metric.counter = prom.Counter(value=value)
    else:
        metric.gauge = prom.Gauge(value=value)
    return prom.MetricFamily(name=name, type=kind, metric=[metric])


def test_envoy_metrics_stream(grpc_rx: GrpcTelemetryReceiver, channel: grpc.Channel) -> None:
    first = envoy_metrics.StreamMetricsMessage(
        identifier=envoy_metrics.StreamMetricsMessageIdentifier(node=edp_core.Node(id="envoy-1")),
        envoy_metrics=[
            _family("envoy_cluster_upstream_rq", prom.MetricType.COUNTER, 7, envoy_cluster_name="c")
        ],
    )
    second = envoy_metrics.StreamMetricsMessage(
        envoy_metrics=[_family("envoy_server_live", prom.MetricType.GAUGE, 1)]
    )
    call = channel.stream_unary(
        ENVOY_METRICS_METHOD, request_serializer=None, response_deserializer=None
    )
    response = call(iter([bytes(first), bytes(second)]), timeout=5)
    assert (
        envoy_metrics.StreamMetricsResponse.parse(response) == envoy_metrics.StreamMetricsResponse()
    )

    counter = grpc_rx.metric_family("envoy_cluster_upstream_rq")
    assert counter is not None
    assert (counter.node_id, counter.type) == ("envoy-1", "COUNTER")
    assert counter.samples == [({"envoy_cluster_name": "c"}, 7.0)]
    gauge = grpc_rx.metric_family("envoy_server_live")
    assert gauge is not None
    assert (gauge.node_id, gauge.type, gauge.samples) == ("envoy-1", "GAUGE", [({}, 1.0)])
    assert grpc_rx.metric_family("envoy_missing") is None
    counts = grpc_rx.counts
    assert (counts.envoy_metrics_streams, counts.envoy_metrics_messages) == (1, 2)


# --------------------------------------------------------------------------- OTLP over HTTP


def _post(rx: OtlpHttpReceiver, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{rx.port}{path}",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_traces_from_the_sdk_exporter_with_headers_and_gzip(http_rx: OtlpHttpReceiver) -> None:
    exporter = HttpSpanExporter(
        endpoint=f"http://127.0.0.1:{http_rx.port}/v1/traces",
        headers={"x-egobs-test": "yes"},
        compression=Compression.Gzip,
        timeout=5,
    )
    trace_id, parent_id, _ = _send_two_spans(exporter)

    http_rx.wait_for(lambda: len(http_rx.trace(trace_id)) == 2, what="both spans")
    assert {s.parent_id for s in http_rx.trace(trace_id)} == {"", parent_id}
    requests = http_rx.requests
    assert [r.status for r in requests] == [200, 200]
    assert requests[0].path == "/v1/traces"
    assert requests[0].headers["x-egobs-test"] == "yes"
    assert requests[0].headers["content-encoding"] == "gzip"
    assert requests[0].content_type == "application/x-protobuf"
    assert http_rx.counts.trace_exports == 2


def test_http_protobuf_answer_is_an_empty_export_response(http_rx: OtlpHttpReceiver) -> None:
    status, body = _post(
        http_rx,
        "/v1/traces",
        trace_service_pb2.ExportTraceServiceRequest().SerializeToString(),
        "application/x-protobuf",
    )
    assert status == 200
    assert trace_service_pb2.ExportTraceServiceResponse.FromString(body) == (
        trace_service_pb2.ExportTraceServiceResponse()
    )
    assert http_rx.counts.trace_exports == 1
    assert http_rx.spans == []


def test_http_json_logs_and_metrics(http_rx: OtlpHttpReceiver) -> None:
    logs = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "body": {
                                    "kvlistValue": {
                                        "values": [{"key": "path", "value": {"stringValue": "/j"}}]
                                    }
                                },
                                "traceId": f"{TRACE_ID:032x}",
                                "spanId": f"{SPAN_ID:016x}",
                            }
                        ]
                    }
                ],
            }
        ]
    }
    metrics = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "up",
                                "gauge": {"dataPoints": [{"asDouble": 1.5, "attributes": []}]},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    assert _post(http_rx, "/v1/logs", json.dumps(logs).encode(), "application/json") == (
        200,
        b"{}",
    )
    assert _post(http_rx, "/v1/metrics", json.dumps(metrics).encode(), "application/json")[0] == 200

    (log,) = http_rx.logs
    assert log.body == {"path": "/j"}
    assert (log.trace_id, log.span_id, log.service_name) == (
        f"{TRACE_ID:032x}",
        f"{SPAN_ID:016x}",
        "j",
    )
    (metric,) = http_rx.metrics
    assert (metric.name, metric.kind, metric.points) == ("up", "gauge", [({}, 1.5)])


def test_http_rejects_what_it_cannot_read(http_rx: OtlpHttpReceiver) -> None:
    assert _post(http_rx, "/v1/traces", b"{}", "text/plain")[0] == 415
    assert _post(http_rx, "/v1/traces", b"\xff\xff\xff", "application/x-protobuf")[0] == 400
    assert _post(http_rx, "/v1/other", b"", "application/x-protobuf")[0] == 404
    counts = http_rx.counts
    assert (counts.rejected, counts.trace_exports) == (3, 0)
    assert [r.status for r in http_rx.requests] == [415, 400, 404]
    assert http_rx.spans == []
