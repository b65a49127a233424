"""A real Prometheus scrapes a proxy's stats listener: the target is up with no scrape error
(gzip on, as Prometheus asks for it), the route counter it stored equals the requests sent,
and ``rate()`` over it is positive.

Prometheus is Debian's package (2.42, ``/usr/bin/prometheus``; .ci/run installs it). Without
it the test fails: it is never skipped.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataplane_helpers import (
    Stack,
    envoy_proxy,
    gateway,
    http_route,
    service,
    wait_until,
)
from testkit import PrometheusServer

from egobs.echo import EchoServer, start_echo_in_thread

pytestmark = pytest.mark.envoy

LOAD_ROUTE = "httproute/default/load/rule/0"
TRAFFIC_S = 2.0  # bounded traffic: at most this long...
TRAFFIC_MAX = 3000  # ...and at most this many requests


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


@pytest.fixture
def prometheus(tmp_path: Path, stack: Stack) -> Iterator[PrometheusServer]:
    stats = urllib.parse.urlsplit(stack.stats_url())
    job = {
        "job_name": "envoy",
        "metrics_path": stats.path,
        "static_configs": [{"targets": [stats.netloc]}],
    }
    prom = PrometheusServer(tmp_path, [job])
    try:
        wait_until(prom.ready, timeout=30, what="Prometheus ready")
        yield prom
    finally:
        prom.stop()


def test_prometheus_scrapes_route_stats(stack: Stack, prometheus: PrometheusServer) -> None:
    def target() -> dict[str, Any] | None:
        targets = prometheus.targets()
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
