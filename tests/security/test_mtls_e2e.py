"""mTLS end to end (issue 13): a real `egobs serve` with `xds.tls`, its host-mode Envoy, and
a real `egobs sink` with TLS.

The Envoy gets its configuration over mTLS with its Gateway's certificate from `egobs
certgen` and serves traffic; its access logs reach the sink over mTLS; raw gRPC clients
with another Gateway's certificate, or none, get no resource from the same xDS server.
127.0.0.1 only; every wait is on a condition; processes are stopped by their handles.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from e2e.e2e_helpers import GATEWAY_CLASS, Serve, request
from mtls_helpers import GW, OTHER, ads_stream, client_credentials, make_certs
from testkit import unused_port, wait_until

from egobs.certs import Layout
from egobs.echo import EchoServer, start_echo_in_thread

pytestmark = pytest.mark.envoy

HOST = "www.example.com"
RESOURCES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg, namespace: default}}
spec:
  gatewayClassName: egobs
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
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
ports: [{{name: http, port: {echo_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: main, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [www.example.com]
  rules:
    - backendRefs: [{{name: a, port: 8080}}]
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return make_certs(tmp_path_factory.mktemp("mtls-e2e") / "certs", GW, OTHER)


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = start_echo_in_thread(name="a")
    yield server
    server.stop()


class _Sink:
    """`egobs sink --tls-*` in a subprocess, writing JSON lines."""

    def __init__(self, tmp: Path, layout: Layout) -> None:
        self.port, self.metrics_port = unused_port(), unused_port()
        self.jsonl = tmp / "access.jsonl"
        self.log_path = tmp / "sink.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "egobs.cli",
                "sink",
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                "--jsonl",
                str(self.jsonl),
                "--tls-cert",
                str(layout.sink.cert),
                "--tls-key",
                str(layout.sink.key),
                "--tls-ca",
                str(layout.ca.cert),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=30, what="egobs sink ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"egobs sink exited: {self.log_path.read_text()[-3000:]}")
        return request(f"http://127.0.0.1:{self.metrics_port}/readyz")[0] == 200

    def lines(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(x) for x in self.jsonl.read_text().splitlines() if x]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory, layout: Layout) -> Iterator[_Sink]:
    server = _Sink(tmp_path_factory.mktemp("sink"), layout)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, layout: Layout, echo: EchoServer, sink: _Sink
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("serve")
    proxy_port = unused_port()
    serve = Serve(tmp, port_map={80: proxy_port}, sink_port=sink.port)
    serve.proxy_port = proxy_port  # type: ignore[attr-defined]
    config = yaml.safe_load(serve.config.read_text())
    config["xds"]["tls"] = {
        "certFile": str(layout.xds.cert),
        "keyFile": str(layout.xds.key),
        "caFile": str(layout.ca.cert),
    }
    config["proxyTelemetry"]["accessLogSink"] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": {"caFile": str(layout.ca.cert)},
    }
    serve.config.write_text(yaml.safe_dump(config))
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-resources.yaml", RESOURCES.format(echo_port=echo.port))
    serve.start()
    try:
        wait_until(lambda: _get(serve, "/ready")[0] == 200, timeout=30, what="route served")
        yield serve
    finally:
        serve.stop()


def _get(stack: Serve, path: str) -> tuple[int, dict[str, str], Any]:
    url = f"http://127.0.0.1:{stack.proxy_port}{path}"  # type: ignore[attr-defined]
    return request(url, host=HOST)


def test_envoy_gets_its_config_over_mtls_and_serves(stack: Serve) -> None:
    status, _, body = _get(stack, "/hello")
    assert status == 200 and body["backend"] == "a"
    bootstrap = json.loads((stack.tmp / "run" / "default_eg" / "bootstrap.json").read_text())
    (xds,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "xds_cluster"]
    assert xds["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    (proxy,) = [p for p in stack.status()["proxies"] if p["name"] == GW]
    assert proxy["infra"]["state"] == "running"


def test_the_access_logs_reach_the_sink_over_mtls(stack: Serve, sink: _Sink) -> None:
    # Envoy replaces an edge client's x-request-id, so the path marks the request.
    assert _get(stack, "/mtls-e2e-logged")[0] == 200

    def logged() -> dict[str, Any] | None:
        return next((x for x in sink.lines() if x.get("path") == "/mtls-e2e-logged"), None)

    entry = wait_until(logged, timeout=15, what="the request's access log line in the sink")
    assert entry["gateway"] == GW


def test_other_clients_get_nothing_from_the_same_server(stack: Serve, layout: Layout) -> None:
    async def main() -> None:
        port = stack.xds_port
        stolen = await ads_stream(port, client_credentials(layout, OTHER), cluster=GW, delta=True)
        assert stolen.responses == [] and stolen.code is grpc.StatusCode.PERMISSION_DENIED
        assert "client certificate names default/other" in stolen.details
        anonymous = await ads_stream(port, client_credentials(layout, None), cluster=GW, delta=True)
        plaintext = await ads_stream(port, None, cluster=GW, delta=True)
        for out in (anonymous, plaintext):
            assert out.responses == [] and out.code is grpc.StatusCode.UNAVAILABLE, out
        # The certificate's own Gateway (with no Envoy of its own) is served: the refusals
        # above are about identity, not a broken server.
        own = await ads_stream(port, client_credentials(layout, GW), cluster=GW, delta=True)
        assert len(own.responses) == 1 and own.code is None

    asyncio.run(asyncio.wait_for(main(), 60))
    assert "xDS stream from" in stack.log() and "refused" in stack.log()
