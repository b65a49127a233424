"""`egobs serve` with real Envoy and an in-test OTLP receiver: convergence metrics, one trace
from the file event to the proxy's ACK, and a NACK reaching metrics, spans and status."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from telemetry_helpers import (
    GATEWAY_CLASS,
    OtlpReceiver,
    Serve,
    Span,
    ancestry,
    free_port,
    metric_samples,
    request,
    total,
    wait_until,
)

from egobs.echo import EchoServer, start_echo_in_thread

pytestmark = pytest.mark.envoy

RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80}
"""


def backend(port: int) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: a, namespace: default}}
spec:
  ports: [{{name: http, port: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: a-1, namespace: default, labels: {{kubernetes.io/service-name: a}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def route(path_match: str) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [www.example.com]
  rules:
    - matches: [{{path: {path_match}}}]
      backendRefs: [{{name: a, port: 8080}}]
"""


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = start_echo_in_thread(name="a")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoServer, receiver: OtlpReceiver
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("telemetry")
    proxy_port = free_port()
    serve = Serve(tmp, port_map={80: proxy_port})
    serve.proxy_port = proxy_port  # type: ignore[attr-defined]
    cfg = yaml.safe_load(serve.config.read_text())
    cfg["telemetry"] = {
        "metrics": {"enabled": True},
        "tracing": {
            "enabled": True,
            "endpoint": f"127.0.0.1:{receiver.port}",
            "protocol": "grpc",
            "samplingRatio": 1.0,
            "exportIntervalS": 0.1,
        },
        "logging": {"format": "json", "level": "info"},
    }
    serve.config.write_text(yaml.safe_dump(cfg))
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-gateway.yaml", GATEWAY)
    serve.write("20-backend.yaml", backend(echo.port))
    serve.write("30-route.yaml", route("{type: PathPrefix, value: /v1}"))
    serve.start()
    try:
        wait_until(lambda: get(serve, "/v1") == 200, timeout=30, what="first route served")
        yield serve
    finally:
        serve.stop()


def get(stack: Serve, path: str) -> int:
    url = f"http://127.0.0.1:{stack.proxy_port}{path}"  # type: ignore[attr-defined]
    return request(url, host="www.example.com")[0]


def fetch(stack: Serve, path: str) -> Any:
    with urllib.request.urlopen(stack.admin + path, timeout=5) as resp:
        return json.load(resp)


def gateway_programmed(stack: Serve) -> dict[str, Any]:
    for obj in stack.status()["resources"]:
        if obj["kind"] == "Gateway" and obj["name"] == "eg":
            for cond in obj["status"]["conditions"]:
                if cond["type"] == "Programmed":
                    return cond  # type: ignore[no-any-return]
    raise AssertionError("Gateway eg has no Programmed condition")


def rds_push_spans(receiver: OtlpReceiver, *, after_ns: int) -> list[Span]:
    return [
        s
        for s in receiver.spans
        if s.name == "xds.push RouteConfiguration" and s.start_ns >= after_ns
    ]


def test_route_change_is_measured_and_traced_to_the_ack(
    stack: Serve, receiver: OtlpReceiver
) -> None:
    before = metric_samples(stack.admin)
    conv_before = total(before, "egobs_proxy_convergence_seconds_count", gateway="default/eg")
    acks_before = total(before, "egobs_xds_acks_total", type_url=RDS)
    import time

    changed_at = time.time_ns()
    stack.write("30-route.yaml", route("{type: PathPrefix, value: /v2}"))
    wait_until(lambda: get(stack, "/v2") == 200, timeout=20, what="changed route served")

    def converged() -> bool:
        s = metric_samples(stack.admin)
        return (
            total(s, "egobs_proxy_convergence_seconds_count", gateway="default/eg") > conv_before
            and total(s, "egobs_xds_acks_total", type_url=RDS) > acks_before
        )

    wait_until(converged, timeout=10, what="convergence and ACK samples")
    after = metric_samples(stack.admin)
    assert total(after, "egobs_xds_pushes_total", type_url=RDS) > 0
    assert total(after, "egobs_xds_push_duration_seconds_count", type_url=RDS) > 0
    assert total(after, "egobs_xds_connected_proxies", gateway="default/eg") == 1
    assert total(after, "egobs_xds_stale_proxies", gateway="default/eg") == 0
    assert total(after, "egobs_translation_duration_seconds_count", translator="xds") > 0
    assert total(after, "egobs_build_info") == 1

    # One trace: the push span of the new routes, ACKed, descends from the file event.
    def acked_push() -> Span | None:
        for span in rds_push_spans(receiver, after_ns=changed_at):
            if "ack" in span.events:
                return span
        return None

    push = wait_until(acked_push, timeout=10, what="an ACKed RDS push span")
    chain = [s.name for s in ancestry(push, receiver.trace(push.trace_id))]
    assert chain == [
        "xds.push RouteConfiguration",
        "xds.snapshot",
        "xds.translate",
        "translate",
        "provider.event",
    ], chain
    assert push.status_code == 1
    assert push.attributes["egobs.gateway"] == "default/eg"
    assert push.attributes["xds.size_bytes"] > 0
    root = ancestry(push, receiver.trace(push.trace_id))[-1]
    # Written by rename, as editors do: the watcher may report it as created or modified.
    assert root.attributes["egobs.files.modified"] + root.attributes["egobs.files.created"] >= 1

    syncz = fetch(stack, "/debug/syncz")
    (proxy,) = syncz["proxies"]
    assert proxy["synced"] and proxy["types"]["RDS"]["state"] == "SYNCED"
    table = subprocess.run(
        [sys.executable, "-m", "egobs.cli", "status", "--admin", stack.admin, "--proxies"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "default/eg" in table and "SYNCED" in table

    dump = fetch(stack, "/debug/config_dump")
    assert any("/v2" in json.dumps(rc) for rc in dump["default/eg"]["routes"]), (
        "config_dump shows the current routes"
    )


def test_rejected_change_reaches_metrics_span_and_status_and_clears(
    stack: Serve, receiver: OtlpReceiver
) -> None:
    import time

    nacks_before = total(metric_samples(stack.admin), "egobs_xds_nacks_total", gateway="default/eg")
    changed_at = time.time_ns()
    # Python's re accepts a repeat count above 1000, Envoy's RE2 does not: egobs accepts the
    # route, Envoy rejects the RouteConfiguration.
    stack.write("30-route.yaml", route('{type: RegularExpression, value: "/x{1001}"}'))

    wait_until(
        lambda: (
            total(metric_samples(stack.admin), "egobs_xds_nacks_total", gateway="default/eg")
            > nacks_before
        ),
        timeout=20,
        what="egobs_xds_nacks_total to increase",
    )
    cond = gateway_programmed(stack)
    assert cond["status"] == "False" and cond["reason"] == "Invalid", cond
    assert "rejected RouteConfiguration" in cond["message"]
    doc = stack.status()
    assert doc["xdsRejections"] and doc["xdsRejections"][0]["gateway"] == "default/eg"
    assert total(metric_samples(stack.admin), "egobs_xds_stale_proxies", gateway="default/eg") == 1
    assert get(stack, "/v2") == 200, "the proxy keeps its last accepted routes"

    def error_span() -> Span | None:
        for span in rds_push_spans(receiver, after_ns=changed_at):
            if span.status_code == 2 and "nack" in span.events:
                return span
        return None

    span = wait_until(error_span, timeout=10, what="an error span for the NACK")
    assert span.status_message, "the Envoy error is the span status"
    syncz = fetch(stack, "/debug/syncz")
    assert syncz["proxies"][0]["types"]["RDS"]["state"] == "NACK"
    table = subprocess.run(
        [sys.executable, "-m", "egobs.cli", "status", "--admin", stack.admin],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "XDS REJECTED" in table and "Invalid" in table

    stack.write("30-route.yaml", route("{type: PathPrefix, value: /v3}"))
    wait_until(lambda: get(stack, "/v3") == 200, timeout=20, what="fixed route served")
    wait_until(
        lambda: gateway_programmed(stack)["status"] == "True",
        timeout=10,
        what="the rejection to clear",
    )
    assert stack.status()["xdsRejections"] == []
    wait_until(
        lambda: (
            total(metric_samples(stack.admin), "egobs_xds_stale_proxies", gateway="default/eg") == 0
        ),
        timeout=10,
        what="no stale proxy",
    )


def test_log_lines_of_a_traced_change_carry_trace_ids(stack: Serve) -> None:
    lines = [
        json.loads(line) for line in stack.log_path.read_text().splitlines() if line.startswith("{")
    ]
    assert lines, "serve logs JSON lines"
    traced = [entry for entry in lines if "trace_id" in entry]
    assert traced, "some lines were emitted inside a traced change"
    assert all(len(entry["trace_id"]) == 32 for entry in traced)
