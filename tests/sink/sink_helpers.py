"""Running `egobs sink` and a real Envoy whose access logs go to it, for the sink tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from testkit import unused_port as free_port
from testkit import wait_until

from egobs import ir
from egobs.gatewayapi import SinkAddress, sink_access_log
from egobs.xds.dump import static_bootstrap
from egobs.xds.translate import translate

GATEWAY = "default/gw"
DIRECT_ROUTE = "httproute/default/direct/rule/0/match/0"
ECHO_ROUTE = "httproute/default/echo/rule/0/match/0"
ECHO_CLUSTER = "service/default/echo/8080"


def http_get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return bytes(resp.read())


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


class SinkProc:
    """`egobs sink` in a subprocess on free ports."""

    def __init__(self, tmp: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.log_path = tmp / f"sink-{self.port}.log"
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
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._ready, timeout=30, what="egobs sink /readyz")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"egobs sink exited {self.proc.returncode}:\n{self.log()}")
        try:
            return http_get(self.url + "/readyz", timeout=1) == b"ready\n"
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def metrics(self) -> Samples:
        return parse_metrics(http_get(self.url + "/metrics").decode())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def gateway_ir(
    *, echo_port: int, http_port: int, tcp_port: int, sinks: tuple[SinkAddress, ...]
) -> ir.Gateway:
    """An HTTP listener (a direct response and a route to the echo backend) and a TCP
    listener to the same backend, logging to the ``egobs sink`` at each of ``sinks``
    (clusters ``telemetry/sink-<i>``)."""
    echo = ir.Cluster(
        ECHO_CLUSTER,
        ir.AppProtocol.HTTP1,
        ir.AddressType.IP,
    )
    dest = ir.RouteDestination("echo", (ir.DestinationSetting(echo, 1),))
    routes = (
        ir.HTTPRoute(
            DIRECT_ROUTE,
            "*",
            path_match=ir.PathMatch(ir.StringMatchType.PREFIX, "/direct"),
            direct_response=ir.DirectResponse(200, "ok"),
        ),
        ir.HTTPRoute(
            ECHO_ROUTE,
            "*",
            path_match=ir.PathMatch(ir.StringMatchType.PREFIX, "/"),
            destination=dest,
        ),
    )
    http = ir.HTTPListener(f"{GATEWAY}/http", "127.0.0.1", http_port, ("*",), routes)
    tcp = ir.TCPListener(
        f"{GATEWAY}/tcp", "127.0.0.1", tcp_port, (ir.TCPRoute("tcproute/default/tcp/rule/0", dest),)
    )
    logs = tuple(sink_access_log(s, name=f"sink-{i}") for i, s in enumerate(sinks))
    return ir.Gateway(
        GATEWAY,
        http=(http,),
        tcp=(tcp,),
        access_logs=logs,
        endpoints=(ir.ClusterEndpoints(echo.name, (ir.Endpoint("127.0.0.1", echo_port),)),),
    )


class EnvoyProc:
    """A real Envoy serving a translated Gateway from a static bootstrap."""

    def __init__(self, envoy_bin: str, tmp: Path, gateway: ir.Gateway) -> None:
        self.gateway = gateway
        bootstrap = static_bootstrap(
            translate(gateway), node_id="envoy-1", node_cluster=gateway.name
        )
        config = tmp / "envoy.json"
        config.write_text(json.dumps(bootstrap))
        self._admin_path = tmp / "admin.txt"
        self.log_path = tmp / "envoy.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                envoy_bin,
                "-c",
                str(config),
                "--disable-hot-restart",
                "--concurrency",
                "2",
                "--log-level",
                "warn",
                "--admin-address-path",
                str(self._admin_path),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.admin = wait_until(self._admin, timeout=30, what="Envoy admin")
        wait_until(
            lambda: self.stat("server.state") == 0 and self._listening(),
            timeout=30,
            what="Envoy listeners",
        )

    def _admin(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"envoy exited {self.proc.returncode}:\n{self.log()}")
        text = self._admin_path.read_text().strip() if self._admin_path.exists() else ""
        return f"http://{text}" if text else None

    def _listening(self) -> bool:
        return all(
            self.stat(f"listener.127.0.0.1_{lis.port}.downstream_cx_total") is not None
            for lis in (*self.gateway.http, *self.gateway.tcp)
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stats(self) -> dict[str, int]:
        doc = json.loads(http_get(self.admin + "/stats?format=json"))
        return {s["name"]: s["value"] for s in doc["stats"] if "value" in s}

    def stat(self, name: str) -> int | None:
        return self.stats().get(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def tcp_roundtrip(port: int, payload: bytes) -> bytes:
    """Send an HTTP/1.0 request through a TCP listener and read until the peer closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.parent.glob(path.name + ".*")) + ([path] if path.exists() else [])
    out = []
    for f in files:
        # Lines end in "\n" only: str.splitlines() would also split inside a value holding
        # U+2028 or U+0085, which JSON lines with non-ASCII kept may carry.
        for line in f.read_text().split("\n")[:-1]:
            out.append(json.loads(line))
    return out


# ----------------------------------------------------------------------------- in process


def sink_config(tmp: Path, **overrides: Any) -> Any:
    """A SinkConfig on free ports with JSON lines in ``tmp``; ``overrides`` by field path."""
    from egobs.sink import SinkConfig

    data: dict[str, Any] = {
        "port": 0,
        "metrics": {"port": 0},
        "jsonl": {"path": str(tmp / "access.jsonl")},
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            data.setdefault(section, {})[name] = value
        else:
            data[section] = value
    return SinkConfig.model_validate(data)


def als_call(channel: Any) -> Any:
    """StreamAccessLogs on a grpc.aio channel, sending raw bytes (valid or not)."""
    return channel.stream_unary(
        "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )


async def send_als(port: int, messages: list[bytes]) -> None:
    """One StreamAccessLogs stream carrying ``messages`` as raw bytes (valid or not)."""
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = als_call(channel)

        async def requests() -> Any:
            for m in messages:
                yield m

        await call(requests(), timeout=10)


async def async_metrics(url: str) -> Samples:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        return parse_metrics(await resp.text())


async def async_wait(cond: Callable[[], Any], *, timeout: float = 10.0, what: str = "") -> Any:
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if hasattr(value, "__await__"):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
