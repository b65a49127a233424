"""A real Prometheus scrapes a proxy's stats listener: the target is up with no scrape error
(gzip on, as Prometheus asks for it), the route counter it stored equals the requests sent,
and ``rate()`` over it is positive.

Prometheus is Debian's package (2.42, ``/usr/bin/prometheus``; .ci/run installs it). Without
it the test fails: it is never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataplane_helpers import (
    Stack,
    envoy_proxy,
    free_port,
    gateway,
    http_route,
    service,
    wait_until,
)

from egobs.echo import EchoServer, start_echo_in_thread

pytestmark = pytest.mark.envoy

PROMETHEUS = os.environ.get("EGOBS_PROMETHEUS", "/usr/bin/prometheus")
LOAD_ROUTE = "httproute/default/load/rule/0"
TRAFFIC_S = 2.0  # bounded traffic: at most this long...
TRAFFIC_MAX = 3000  # ...and at most this many requests


def prometheus_binary() -> str:
    if not (os.path.isfile(PROMETHEUS) and os.access(PROMETHEUS, os.X_OK)):
        pytest.fail(
            f"Prometheus not found at {PROMETHEUS}: install Debian's 'prometheus' package "
            "(apt-get install prometheus; .ci/run does) or set EGOBS_PROMETHEUS"
        )
    return PROMETHEUS


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = start_echo_in_thread(name="echo")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoServer, envoy_bin: str
) -> Iterator[Stack]:
    telemetry = {
        "metrics": {"prometheus": {"compression": {"type": "Gzip"}}, "enableRouteStats": True}
    }
    resources = {
        "10-gateway.yaml": gateway(),
        "11-envoyproxy.yaml": envoy_proxy(telemetry),
        "20-echo.yaml": service("echo", echo.port),
        "30-echo.yaml": http_route("echo", "echo"),
        "31-load.yaml": http_route("load", "echo", prefix="/load"),
    }
    s = Stack.start(tmp_path_factory.mktemp("scrape"), resources=resources)
    try:
        yield s
    finally:
        s.stop()


class Prometheus:
    """Prometheus on a free 127.0.0.1 port with a temp config and TSDB, stopped by PID."""

    def __init__(self, tmp: Path, target: str, metrics_path: str) -> None:
        binary = prometheus_binary()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "envoy",
                            "metrics_path": metrics_path,
                            "static_configs": [{"targets": [target]}],
                        }
                    ],
                }
            )
        )
        self.log_path = tmp / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def api(self, path: str, **params: str) -> Any:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=5) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        return doc["data"]

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
        with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
            return resp.status == 200

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", data
        return data["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def prometheus(tmp_path: Path, stack: Stack) -> Iterator[Prometheus]:
    stats = urllib.parse.urlsplit(stack.stats_url())
    prom = Prometheus(tmp_path, stats.netloc, stats.path)
    try:
        wait_until(prom.ready, timeout=30, what="Prometheus ready")
        yield prom
    finally:
        prom.stop()


def test_prometheus_scrapes_route_stats(stack: Stack, prometheus: Prometheus) -> None:
    def target() -> dict[str, Any] | None:
        targets = prometheus.api("/api/v1/targets")["activeTargets"]
        assert len(targets) <= 1, targets
        if not targets:  # service discovery has not reported yet
            return None
        t = targets[0]
        return t if t["health"] == "up" and t["lastScrape"] != "0001-01-01T00:00:00Z" else None

    up = wait_until(target, timeout=20, what="the stats listener target up")
    assert up["lastError"] == ""
    assert up["scrapeUrl"] == stack.stats_url()

    sent = 0
    deadline = time.monotonic() + TRAFFIC_S
    while time.monotonic() < deadline and sent < TRAFFIC_MAX:
        assert stack.get(f"/load/{sent}")[0] == 200
        sent += 1
    assert sent > 0

    selector = f'envoy_vhost_route_upstream_rq_total{{envoy_route="{LOAD_ROUTE}"}}'

    def scraped_total() -> float | None:
        result = prometheus.query(selector)
        return float(result[0]["value"][1]) if result else None

    wait_until(lambda: scraped_total() == sent, timeout=15, what=f"Prometheus to store {sent}")
    (series,) = prometheus.query(selector)
    assert series["metric"]["job"] == "envoy"
    assert series["metric"]["envoy_virtual_host"] == "default/eg/http/www_example_com"

    rate = prometheus.query(f"sum(rate({selector}[10s]))")
    assert len(rate) == 1, rate
    assert float(rate[0]["value"][1]) > 0, rate

    final = wait_until(target, timeout=5, what="the target still up")
    assert final["health"] == "up" and final["lastError"] == "", final
    (up_series,) = prometheus.query('up{job="envoy"}')
    assert up_series["value"][1] == "1"
