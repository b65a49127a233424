"""The proxies' own telemetry end to end: `egobs serve` starts a real Envoy whose access logs,
traces and stats an EnvoyProxy (Gateway ``infrastructure.parametersRef``) sends to in-test
receivers, and whose stats listener answers Prometheus scrapes.

One `egobs serve` for the module. Its EnvoyProxy (:func:`base_telemetry`) sets every kind of
sink at once; a test that edits it puts it back before returning. Requests are marked by
path: Envoy replaces an edge client's ``x-request-id``.
"""

from __future__ import annotations

import copy
import gzip
import http.client
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataplane_helpers import (
    HOST,
    Stack,
    backend,
    envoy_proxy,
    fetch_text,
    free_port,
    gateway,
    http_route,
    prometheus_samples,
    request,
    service,
    wait_until,
)
from receivers import GrpcTelemetryReceiver, OtlpHttpReceiver, ReceivedAccessLog, ReceivedSpan

from egobs.echo import EchoServer, start_echo_in_thread

pytestmark = pytest.mark.envoy

EP_FILE = "11-envoyproxy.yaml"
ALL_LOG = "all"  # ALS logName of the setting that logs every request
ERROR_LOG = "errors"  # ALS logName of the `response.code >= 400` setting
VHOST = "default/eg/http/www_example_com"
ECHO_CLUSTER = "service/default/echo/8080"
FLUSH_S = 1.0  # Envoy's stats flush interval here (default 5 s)


def route_stat(route: str) -> str:
    return f"httproute/default/{route}/rule/0"


def base_telemetry(rx: GrpcTelemetryReceiver, errors_file: Path) -> dict[str, Any]:
    """Every sink kind, each destination form (host/port, Service, Backend)."""
    return {
        "accessLog": {
            "settings": [
                {
                    "sinks": [
                        {
                            "type": "ALS",
                            "als": {
                                "type": "HTTP",
                                "logName": ALL_LOG,
                                "backendRefs": [
                                    {
                                        "group": "gateway.envoyproxy.io",
                                        "kind": "Backend",
                                        "name": "rx",
                                    }
                                ],
                                "http": {"requestHeaders": ["x-tenant"]},
                            },
                        }
                    ]
                },
                {
                    "format": {
                        "type": "JSON",
                        "json": {
                            "method": "%REQ(:METHOD)%",
                            "path": "%REQ(:PATH)%",
                            "code": "%RESPONSE_CODE%",
                            "route": "%ROUTE_NAME%",
                            "cluster": "%UPSTREAM_CLUSTER%",
                            "trace": "%TRACE_ID%",
                        },
                    },
                    "sinks": [
                        {
                            "type": "OpenTelemetry",
                            "openTelemetry": {
                                "host": "127.0.0.1",
                                "port": rx.port,
                                "resourceAttributes": {"service.name": "edge-logs"},
                            },
                        }
                    ],
                },
                {
                    "matches": ["response.code >= 400"],
                    "format": {"type": "Text", "text": "%RESPONSE_CODE% %REQ(:PATH)%"},
                    "sinks": [
                        {
                            "type": "ALS",
                            "als": {
                                "type": "HTTP",
                                "logName": ERROR_LOG,
                                "backendRefs": [{"name": "rx", "port": 8080}],
                            },
                        },
                        {"type": "File", "file": {"path": str(errors_file)}},
                    ],
                },
            ]
        },
        "tracing": {
            "samplingRate": 100,
            "customTags": {
                "env": {"type": "Literal", "literal": {"value": "test"}},
                "tenant": {
                    "type": "RequestHeader",
                    "requestHeader": {"name": "x-tenant", "defaultValue": "none"},
                },
            },
            "provider": {"host": "127.0.0.1", "port": rx.port, "serviceName": "edge"},
        },
        "metrics": {
            "prometheus": {"compression": {"type": "Gzip"}},
            "enableRouteStats": True,
            # Only the echo backends' clusters and the route stats: the sinks parse less,
            # and the Prometheus output shows the inclusion list at work.
            "matches": [
                {"type": "Prefix", "value": "cluster.service/"},
                {"type": "Prefix", "value": "vhost."},
            ],
            "sinks": [
                {
                    "type": "OpenTelemetry",
                    "openTelemetry": {"host": "127.0.0.1", "port": rx.port},
                },
                {
                    "type": "MetricsService",
                    "metricsService": {"backendRefs": [{"name": "rx", "port": 8080}]},
                },
            ],
        },
    }


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = start_echo_in_thread(name="echo")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rx() -> Iterator[GrpcTelemetryReceiver]:
    with GrpcTelemetryReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def http_rx() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def errors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs") / "errors.log"


@pytest.fixture(scope="module")
def telemetry(rx: GrpcTelemetryReceiver, errors_file: Path) -> dict[str, Any]:
    return base_telemetry(rx, errors_file)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    echo: EchoServer,
    rx: GrpcTelemetryReceiver,
    telemetry: dict[str, Any],
    envoy_bin: str,
) -> Iterator[Stack]:
    resources = {
        "10-gateway.yaml": gateway(),
        EP_FILE: envoy_proxy(telemetry),
        "20-echo.yaml": service("echo", echo.port),
        "21-rx.yaml": service("rx", rx.port) + "---\n" + backend("rx", rx.port),
        "30-echo.yaml": http_route("echo", "echo"),
        "31-counted.yaml": http_route("counted", "echo", prefix="/counted"),
        "32-sinks.yaml": http_route("sinks", "echo", prefix="/sinks"),
    }
    s = Stack.start(tmp_path_factory.mktemp("dataplane"), resources=resources, flush_s=FLUSH_S)
    try:
        yield s
    finally:
        s.stop()


def marked(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


def access_log(rx: GrpcTelemetryReceiver, log_name: str, path: str) -> ReceivedAccessLog:
    entries = rx.wait_for(
        lambda: [a for a in rx.access_logs if a.log_name == log_name and a.path == path],
        what=f"ALS entry {log_name} {path}",
    )
    assert len(entries) == 1, entries
    return entries[0]


def server_span(rx: GrpcTelemetryReceiver | OtlpHttpReceiver, path: str) -> ReceivedSpan:
    spans = rx.wait_for(
        lambda: [
            s
            for s in rx.spans
            if s.kind == "SERVER" and s.attributes.get("http.url") == f"http://{HOST}{path}"
        ],
        what=f"the server span of {path}",
    )
    assert len(spans) == 1, spans
    return spans[0]


def client_span(rx: GrpcTelemetryReceiver | OtlpHttpReceiver, server: ReceivedSpan) -> ReceivedSpan:
    spans = rx.wait_for(
        lambda: [s for s in rx.trace(server.trace_id) if s.kind == "CLIENT"],
        what=f"the client span of trace {server.trace_id}",
    )
    assert len(spans) == 1, spans
    return spans[0]


def keepalive_gets(stack: Stack, paths: list[str]) -> list[int]:
    """GET each path in turn on one connection, so one Envoy worker serves (and logs) them
    all, in order."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=5)
    try:
        codes = []
        for path in paths:
            conn.request("GET", path, headers={"Host": HOST})
            resp = conn.getresponse()
            resp.read()
            assert resp.getheader("connection", "").lower() != "close"
            codes.append(resp.status)
        return codes
    finally:
        conn.close()


def write_envoy_proxy(stack: Stack, telemetry: dict[str, Any]) -> None:
    stack.serve.write(EP_FILE, envoy_proxy(telemetry))


# --------------------------------------------------------------------------- access logs


def test_als_entry_names_route_cluster_and_log(stack: Stack, rx: GrpcTelemetryReceiver) -> None:
    path = marked("als")
    status, _, body = stack.get(path, headers={"x-tenant": "acme"})
    assert status == 200 and body["backend"] == "echo"

    entry = access_log(rx, ALL_LOG, path)
    assert entry.method == "GET"
    assert entry.response_code == 200
    assert entry.authority == HOST
    assert entry.route_name == "httproute/default/echo/rule/0/match/0"
    assert entry.upstream_cluster == ECHO_CLUSTER
    assert entry.request_headers == {"x-tenant": "acme"}, "only the headers asked for are sent"
    assert entry.request_id, "Envoy's generated request id"


def test_otlp_log_carries_json_fields_and_the_trace_of_its_request(
    stack: Stack, rx: GrpcTelemetryReceiver
) -> None:
    path = marked("otlp")
    assert stack.get(path, headers={"x-tenant": "acme"})[0] == 200

    (record,) = rx.wait_for(
        lambda: [r for r in rx.logs if r.attributes.get("path") == path], what=f"OTLP log {path}"
    )
    assert record.attributes == {
        "method": "GET",
        "path": path,
        "code": "200",
        "route": "httproute/default/echo/rule/0/match/0",
        "cluster": ECHO_CLUSTER,
        "trace": record.trace_id,
    }
    assert len(record.trace_id) == 32 and record.trace_id != "0" * 32
    assert record.service_name == "edge-logs"
    assert record.resource_attributes["cluster_name"] == "default/eg"

    # The same request's trace, over OTLP/gRPC to the same receiver.
    server = server_span(rx, path)
    assert server.trace_id == record.trace_id
    assert record.span_id == server.span_id, "the log record points at the server span"
    assert server.parent_id == ""
    assert server.service_name == "edge"
    assert server.attributes["http.status_code"] == "200"
    assert server.attributes["env"] == "test"
    assert server.attributes["tenant"] == "acme"
    client = client_span(rx, server)
    assert client.parent_id == server.span_id
    assert client.attributes["upstream_cluster"] == ECHO_CLUSTER


def test_cel_match_logs_only_errors(
    stack: Stack, rx: GrpcTelemetryReceiver, errors_file: Path
) -> None:
    ok, missing = marked("cel-ok"), f"/status/404?mark={uuid.uuid4().hex[:8]}"
    # One connection, one worker: were the 200 logged by the error sinks, it would be in
    # the same buffer as the 404, ahead of it.
    assert keepalive_gets(stack, [ok, missing]) == [200, 404]

    error = access_log(rx, ERROR_LOG, missing)
    assert error.response_code == 404
    assert error.route_name == "httproute/default/echo/rule/0/match/0"
    # The 200 was served and logged by the unfiltered setting...
    assert access_log(rx, ALL_LOG, ok).response_code == 200
    assert access_log(rx, ALL_LOG, missing).response_code == 404
    # ...but not by the filtered one.
    assert not [a for a in rx.access_logs if a.log_name == ERROR_LOG and a.path == ok]

    # The File sink of the same setting, in its Text format; Envoy flushes files every 1 s.
    wait_until(
        lambda: errors_file.exists() and f"404 {missing}" in errors_file.read_text().splitlines(),
        timeout=10,
        what="the 404 in the error file log",
    )
    assert ok not in errors_file.read_text()


# --------------------------------------------------------------------------- tracing


def test_tracing_over_otlp_http_with_tags_and_headers(
    stack: Stack, http_rx: OtlpHttpReceiver, telemetry: dict[str, Any]
) -> None:
    pid = stack.pid()
    assert pid is not None
    edited = copy.deepcopy(telemetry)
    edited["tracing"]["provider"] = {
        "host": "127.0.0.1",
        "port": http_rx.port,
        "serviceName": "edge-http",
        "openTelemetry": {
            "protocol": "HTTP",
            "headers": [{"name": "X-Collector-Token", "value": "s3cret"}],
            "resourceAttributes": {"deployment.environment": "e2e"},
        },
    }
    write_envoy_proxy(stack, edited)
    try:
        stack.wait_envoy_config(lambda c: "/v1/traces" in c, what="the OTLP/HTTP tracer applied")
        path = marked("traced")
        assert stack.get(path, headers={"x-tenant": "acme"})[0] == 200

        server = server_span(http_rx, path)
        client = client_span(http_rx, server)
        assert client.parent_id == server.span_id
        assert server.name == "ingress"
        assert client.name == f"router {ECHO_CLUSTER} egress"
        for span in (server, client):
            assert span.service_name == "edge-http"
            assert span.resource_attributes["deployment.environment"] == "e2e"
            assert span.attributes["env"] == "test"
        assert server.attributes["tenant"] == "acme"
        assert client.attributes["upstream_cluster"] == ECHO_CLUSTER

        exports = [r for r in http_rx.requests if r.path == "/v1/traces"]
        assert exports, "spans came over OTLP/HTTP"
        for r in exports:
            assert r.status == 200
            assert r.content_type == "application/x-protobuf"
            assert r.headers.get("x-collector-token") == "s3cret"
        assert stack.pid() == pid, "a tracing change is xDS: Envoy must not restart"
    finally:
        write_envoy_proxy(stack, telemetry)
        stack.wait_envoy_config(lambda c: "/v1/traces" not in c, what="gRPC tracing restored")


def test_span_names_from_the_envoy_proxy(
    stack: Stack, rx: GrpcTelemetryReceiver, telemetry: dict[str, Any]
) -> None:
    """``tracing.spanName``: Envoy command operators in the server and client span names."""
    pid = stack.pid()
    edited = copy.deepcopy(telemetry)
    edited["tracing"]["spanName"] = {
        "server": "in %REQ(:METHOD)% %ROUTE_NAME%",
        "client": "out %UPSTREAM_CLUSTER%",
    }
    write_envoy_proxy(stack, edited)
    try:
        stack.wait_envoy_config(lambda c: "in %REQ(:METHOD)%" in c, what="span names applied")
        path = marked("named")
        assert stack.get(path)[0] == 200
        server = server_span(rx, path)
        assert server.name == "in GET httproute/default/echo/rule/0/match/0"
        assert client_span(rx, server).name == f"out {ECHO_CLUSTER}"
        assert stack.pid() == pid, "a tracing change is xDS: Envoy must not restart"
    finally:
        write_envoy_proxy(stack, telemetry)
        stack.wait_envoy_config(lambda c: "in %REQ(:METHOD)%" not in c, what="names restored")


# --------------------------------------------------------------------------- stats sinks


def test_metrics_sinks_receive_route_and_cluster_stats(
    stack: Stack, rx: GrpcTelemetryReceiver
) -> None:
    n = 5
    for i in range(n):
        assert stack.get(f"/sinks/{i}")[0] == 200
    labels = {"envoy.route": route_stat("sinks"), "envoy.virtual_host": VHOST}

    # OpenTelemetry sink: tag-extracted names, tags as attributes, cumulative counters.
    def otlp_route_total() -> Any:
        return [
            (m, attrs, value)
            for m in rx.metrics_named("vhost.route.upstream_rq_total")
            for attrs, value in m.points
            if attrs == labels and value == n
        ]

    ((metric, _, _), *_) = rx.wait_for(
        otlp_route_total, timeout=10, what=f"OTLP vhost.route.upstream_rq_total == {n}"
    )
    assert metric.kind == "sum"
    assert metric.resource_attributes["telemetry.sdk.name"] == "envoy"
    cluster_totals = [
        value
        for m in rx.metrics_named("cluster.upstream_rq_total")
        for attrs, value in m.points
        if attrs == {"envoy.cluster_name": ECHO_CLUSTER}
    ]
    assert cluster_totals and max(cluster_totals) >= n

    # Metrics service sink: the same stats as Prometheus families with labels.
    def ms_route_total() -> Any:
        return [
            f
            for f in rx.metric_families
            if f.name == "vhost.route.upstream_rq_total" and (labels, float(n)) in f.samples
        ]

    (family, *_) = rx.wait_for(ms_route_total, timeout=10, what=f"metrics service family == {n}")
    assert family.type == "COUNTER"
    assert family.node_id.startswith("default/eg/")
    cluster = rx.metric_family("cluster.upstream_rq_total")
    assert cluster is not None
    assert any(
        labels == {"envoy.cluster_name": ECHO_CLUSTER} and value >= n
        for labels, value in cluster.samples
    )

    # The inclusion list holds for both sinks: echo clusters and route stats only.
    names = {m.name for m in rx.metrics} | {f.name for f in rx.metric_families}
    assert names and all(name.startswith(("cluster.", "vhost.")) for name in names), names
    clusters = {
        attrs["envoy.cluster_name"]
        for m in rx.metrics
        for attrs, _ in m.points
        if "envoy.cluster_name" in attrs
    }
    assert clusters == {ECHO_CLUSTER}, clusters


def test_metrics_sink_resource_attributes_reach_the_collector(
    stack: Stack, rx: GrpcTelemetryReceiver, telemetry: dict[str, Any]
) -> None:
    pid = stack.pid()
    edited = copy.deepcopy(telemetry)
    edited["metrics"]["sinks"][0]["openTelemetry"]["resourceAttributes"] = {
        "service.name": "edge-metrics"
    }
    write_envoy_proxy(stack, edited)
    try:
        # A stats sink lives in the bootstrap: a new Envoy.
        wait_until(lambda: stack.pid() not in (None, pid), timeout=20, what="Envoy restarted")
        rx.wait_for(
            lambda: [m for m in rx.metrics if m.service_name == "edge-metrics"],
            timeout=2 * FLUSH_S + 1,
            what="an OTLP metric with the configured service.name",
        )
    finally:
        pid = stack.pid()
        write_envoy_proxy(stack, telemetry)
        wait_until(lambda: stack.pid() not in (None, pid), timeout=20, what="Envoy restored")
        wait_until(lambda: stack.get("/")[0] == 200, timeout=20, what="restored Envoy serving")


# --------------------------------------------------------------------------- stats listener


def test_stats_listener_counts_route_requests(stack: Stack) -> None:
    url = stack.stats_url()
    assert url == f"http://127.0.0.1:{stack.serve.stats_port}/stats/prometheus"
    n = 7
    for i in range(n):
        assert stack.get(f"/counted/{i}")[0] == 200

    labels = {"envoy_virtual_host": VHOST, "envoy_route": route_stat("counted")}

    def total() -> float | None:
        for s in prometheus_samples(fetch_text(url)):
            if s.name == "envoy_vhost_route_upstream_rq_total" and s.labels == labels:
                return s.value
        return None

    assert wait_until(lambda: total() == n, timeout=10, what=f"route total == {n}")
    samples = prometheus_samples(fetch_text(url))
    by_code = [
        s.value
        for s in samples
        if s.name == "envoy_vhost_route_upstream_rq"
        and s.labels == {**labels, "envoy_response_code": "200"}
    ]
    assert by_code == [n]
    # metrics.matches is an inclusion list: nothing but cluster.service/* and vhost.*.
    names = {s.name for s in samples}
    assert not [name for name in names if name.startswith(("envoy_server_", "envoy_http_"))]
    assert "envoy_cluster_upstream_rq_total" in names


def test_stats_listener_serves_only_get_prometheus(stack: Stack) -> None:
    url = stack.stats_url()
    base = url.removesuffix("/stats/prometheus")
    status, headers, body = request(url)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "envoy_vhost_route_upstream_rq_total" in body
    for method, path in (
        ("POST", "/stats/prometheus"),
        ("PUT", "/stats/prometheus"),
        ("GET", "/stats"),
        ("GET", "/config_dump"),
        ("POST", "/quitquitquit"),
        ("GET", "/"),
    ):
        status, _, _ = request(base + path, method=method)
        assert status == 404, f"{method} {path} answered {status}"
    assert stack.pid() is not None, "the admin interface was not reached"


def test_stats_listener_gzip(stack: Stack) -> None:
    url = stack.stats_url()
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["content-encoding"] == "gzip"
        raw = resp.read()
    text = gzip.decompress(raw).decode()
    assert len(raw) < len(text)
    names = {s.name for s in prometheus_samples(text)}
    assert "envoy_vhost_route_upstream_rq_total" in names
    plain = urllib.request.Request(url)
    with urllib.request.urlopen(plain, timeout=5) as resp:
        assert resp.headers.get("content-encoding") is None
        prometheus_samples(resp.read().decode())


# --------------------------------------------------------------------------- restarts


def test_access_log_edit_applies_without_restart(
    stack: Stack, rx: GrpcTelemetryReceiver, telemetry: dict[str, Any]
) -> None:
    pid = stack.pid()
    assert pid is not None
    edited = copy.deepcopy(telemetry)
    edited["accessLog"]["settings"].append(
        {
            "type": "Route",
            "sinks": [
                {
                    "type": "ALS",
                    "als": {
                        "type": "HTTP",
                        "logName": "added",
                        "backendRefs": [{"name": "rx", "port": 8080}],
                    },
                }
            ],
        }
    )
    write_envoy_proxy(stack, edited)
    try:
        stack.wait_envoy_config(lambda c: '"added"' in c, what="the new access log applied")
        path = marked("added")
        assert stack.get(path)[0] == 200
        entry = access_log(rx, "added", path)
        assert entry.route_name == "httproute/default/echo/rule/0/match/0"
        assert stack.pid() == pid, "an access-log change is xDS: Envoy must not restart"
    finally:
        write_envoy_proxy(stack, telemetry)
        stack.wait_envoy_config(lambda c: '"added"' not in c, what="the access log removed")
    assert stack.pid() == pid


def test_stats_port_edit_restarts_envoy_on_the_new_port(
    stack: Stack, telemetry: dict[str, Any]
) -> None:
    pid = stack.pid()
    old_url = stack.stats_url()
    port = free_port()
    edited = copy.deepcopy(telemetry)
    edited["metrics"]["prometheus"]["port"] = port
    write_envoy_proxy(stack, edited)
    try:
        new_pid = wait_until(
            lambda: (p := stack.pid()) not in (None, pid) and p, timeout=20, what="a new Envoy"
        )
        new_url = stack.stats_url()
        assert new_url == f"http://127.0.0.1:{port}/stats/prometheus"
        text = wait_until(lambda: fetch_text(new_url), timeout=10, what="the new stats listener")
        assert "envoy_cluster_upstream_rq_total" in {s.name for s in prometheus_samples(text)}
        with pytest.raises(urllib.error.URLError):
            fetch_text(old_url)
        wait_until(lambda: stack.get("/")[0] == 200, timeout=20, what="new Envoy serving")
        assert stack.pid() == new_pid
    finally:
        pid = stack.pid()
        write_envoy_proxy(stack, telemetry)
        wait_until(lambda: stack.pid() not in (None, pid), timeout=20, what="Envoy restored")
        wait_until(lambda: stack.get("/")[0] == 200, timeout=20, what="restored Envoy serving")
    assert stack.stats_url() == old_url


# --------------------------------------------------------------------------- invalid


def test_invalid_cel_is_reported_and_the_gateway_keeps_serving(
    stack: Stack, telemetry: dict[str, Any]
) -> None:
    """An untranslatable edit of a serving Gateway's EnvoyProxy: Accepted=False naming the
    field, while the same Envoy keeps serving with the last good telemetry."""
    pid = stack.pid()
    edited = copy.deepcopy(telemetry)
    edited["accessLog"]["settings"][2]["matches"] = ["response.code >= 400 ||"]
    write_envoy_proxy(stack, edited)
    try:
        cond = wait_until(
            lambda: (c := stack.gateway_condition("Accepted")) and c["status"] == "False" and c,
            timeout=10,
            what="Gateway eg not accepted",
        )
        assert cond["reason"] == "InvalidParameters"
        assert "EnvoyProxy default/telemetry" in cond["message"]
        assert "spec.telemetry.accessLog.settings[2].matches[0]" in cond["message"]
        assert "response.code >= 400 ||" in cond["message"]
        assert "keep the last telemetry" in cond["message"]
        programmed = stack.gateway_condition("Programmed")
        assert programmed is not None and programmed["status"] == "True"
        assert stack.get("/")[0] == 200
        assert stack.pid() == pid
    finally:
        write_envoy_proxy(stack, telemetry)
        wait_until(
            lambda: (c := stack.gateway_condition("Accepted")) and c["status"] == "True",
            timeout=10,
            what="Gateway eg accepted again",
        )
        wait_until(lambda: stack.get("/")[0] == 200, timeout=20, what="Envoy serving again")
