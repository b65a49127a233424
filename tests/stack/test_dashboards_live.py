"""Every dashboard query on a live Prometheus.

Starts `egobs serve` (host infra, tracing on) with a real Envoy and its stats listener, the
egobs sink (`egobs sink` subprocess), an echo backend, an OTLP receiver for spans, and a
real Prometheus (Debian's 2.42; missing: the test FAILS with an install hint) scraping
egobs, Envoy and the sink every second (jobs ``egobs``, ``envoy`` with a ``gateway``
target label as in examples/compose/prometheus.yml, ``egobs-sink``). Drives bounded
traffic with 404s and 503s (a route to a Service without endpoints) and some config
trouble (a file that does not parse, a route to a missing backend), then runs every panel,
annotation and variable query through /api/v1/query with the variables substituted, and
fails on any query that errors or returns nothing, except the allow-list below, each
with its reason (an allow-listed query that does return data fails too: the list must
stay honest). It also reads every catalogued metric's ``# TYPE`` from the real
expositions (outlier-detection stats from a static Envoy that has outlier detection).
Every process is stopped by PID; everything binds 127.0.0.1.
"""

from __future__ import annotations

import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dataplane"))

from dataplane_helpers import (
    GATEWAY_CLASS,
    Serve,
    Stack,
    envoy_proxy,
    free_port,
    gateway,
    http_route,
    service,
    wait_until,
)
from receivers import GrpcTelemetryReceiver
from testkit import LoggedProcess, PrometheusServer, prometheus_binary

from egobs.dashboards import all_queries
from egobs.dashboards.catalog import COLLECTOR, METRICS
from egobs.echo import EchoServer, start_echo_in_thread

pytestmark = pytest.mark.envoy

TRAFFIC_S = 8.0  # bounded traffic: this long...
TRAFFIC_MAX = 4000  # ...and at most this many requests
RATE_INTERVAL = "1m"  # $__rate_interval: covers the whole run, start-up changes included

# (dashboard uid, panel, refId) -> why the query may return nothing in this run.
COLLECTOR_REASON = "no OpenTelemetry Collector runs here (the compose stack has one)"
ALLOWED_EMPTY: dict[tuple[str, str, str], str] = {
    ("egobs-control-plane", "ACKs vs NACKs", "B"): "no NACK in a healthy run",
    ("*", "annotation: NACKs", "-"): "no NACK in a healthy run",
    ("egobs-control-plane", "Envoy restarts", "A"): "no Envoy crashed, so the counter "
    "has no series (prometheus-client creates a labelled child on its first increment)",
    ("egobs-control-plane", "Errors", "B"): "no translator raised, so the counter has no "
    "series (rejected objects are the Resources loaded panel's B, which has data)",
    ("egobs-clusters", "Outlier ejections", "A"): "egobs configures no outlier detection, "
    "so Envoy has no outlier stats (names checked on a static Envoy with outlier detection)",
    ("egobs-clusters", "Outlier ejections", "B"): "as A",
    **{
        ("egobs-telemetry-pipeline", panel, ref): COLLECTOR_REASON
        for panel in ("Collector receivers", "Collector exporters")
        for ref in "ABCDEF"
    },
}
# Catalogued metrics a healthy run's expositions do not show at all.
ABSENT_FROM_LIVE = {
    "envoy_cluster_outlier_detection_ejections_active",
    "envoy_cluster_outlier_detection_ejections_enforced_total",
}


def allowed(dashboard: str, panel: str, ref: str) -> str | None:
    return ALLOWED_EMPTY.get((dashboard, panel, ref)) or ALLOWED_EMPTY.get(("*", panel, ref))


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def types_of(exposition: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE))


# --------------------------------------------------------------------------- processes


# --------------------------------------------------------------------------- the stack

EMPTY_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  ports: [{name: http, port: 8080}]
"""


class Live:
    """Everything the test runs, and what it measured."""

    def __init__(self, tmp: Path, echo: EchoServer, rx: GrpcTelemetryReceiver) -> None:
        self.procs: list[LoggedProcess] = []
        self.stack: Stack | None = None
        sink_dir = tmp / "sink"
        sink_dir.mkdir()
        self.sink_port, self.sink_metrics = free_port(), free_port()
        self.sink = LoggedProcess(
            [
                sys.executable,
                "-m",
                "egobs.cli",
                "sink",
                "--port",
                str(self.sink_port),
                "--metrics-port",
                str(self.sink_metrics),
                "--jsonl",
                str(sink_dir / "access.jsonl"),
            ],
            sink_dir / "sink.log",
        )
        self.procs.append(self.sink)
        self.sink_url = f"http://127.0.0.1:{self.sink_metrics}/metrics"
        wait_until(
            lambda: self.sink.alive() and self._answers(self.sink_url), timeout=20, what="sink"
        )
        self.stack = self._serve(tmp / "serve", echo, rx)
        stats = urllib.parse.urlsplit(self.stack.stats_url())
        self.prometheus = PrometheusServer(
            tmp / "prom",
            [
                {
                    "job_name": "egobs",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.stack.serve.admin_port}"]}],
                },
                {
                    "job_name": "envoy",
                    "metrics_path": stats.path,
                    "static_configs": [
                        {"targets": [stats.netloc], "labels": {"gateway": "default/eg"}}
                    ],
                },
                {
                    "job_name": "egobs-sink",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.sink_metrics}"]}],
                },
            ],
        )
        self.procs.append(self.prometheus)
        self.proxy_instance = stats.netloc

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return bool(fetch(url, 1))
        except OSError:
            return False

    def _serve(self, tmp: Path, echo: EchoServer, rx: GrpcTelemetryReceiver) -> Stack:
        tmp.mkdir()
        proxy_port = free_port()
        serve = Serve(tmp, port_map={80: proxy_port}, sink_port=self.sink_port)
        cfg = yaml.safe_load(serve.config.read_text())
        cfg["infra"]["host"]["statsFlushIntervalS"] = 1
        cfg["telemetry"] = {
            "tracing": {"enabled": True, "endpoint": f"127.0.0.1:{rx.port}", "protocol": "grpc"}
        }
        serve.config.write_text(yaml.safe_dump(cfg))
        telemetry = {
            "metrics": {"prometheus": {}, "enableRouteStats": True},
            "tracing": {"samplingRate": 100, "provider": {"host": "127.0.0.1", "port": rx.port}},
        }
        resources = {
            "00-class.yaml": GATEWAY_CLASS,
            "10-gateway.yaml": gateway(),
            "11-envoyproxy.yaml": envoy_proxy(telemetry),
            "20-echo.yaml": service("echo", echo.port),
            "21-empty.yaml": EMPTY_SERVICE,
            "30-echo.yaml": http_route("echo", "echo", prefix="/echo"),
            "31-empty.yaml": http_route("empty", "empty", prefix="/empty"),
        }
        for name, text in resources.items():
            serve.write(name, text)
        stack = Stack(serve, proxy_port)
        serve.start()
        try:
            wait_until(lambda: stack.get("/echo/ready")[0] == 200, timeout=30, what="first route")
        except BaseException:
            stack.stop()
            raise
        return stack

    def change_config(self) -> None:
        """A config change, a file that fails to load, a route to a missing backend."""
        assert self.stack is not None
        serve = self.stack.serve
        serve.write("32-more.yaml", http_route("more", "echo", prefix="/more"))
        serve.write("40-broken.yaml", "kind: HTTPRoute\nmetadata: {name: [unclosed\n")
        serve.write("41-missing.yaml", http_route("missing", "nowhere", prefix="/missing"))

    def traffic(self) -> dict[int, int]:
        assert self.stack is not None
        counts: dict[int, int] = {}
        paths = ("/echo/a", "/echo/b", "/empty/x", "/nothing/here", "/more/x")
        sent, deadline = 0, time.monotonic() + TRAFFIC_S
        while time.monotonic() < deadline and sent < TRAFFIC_MAX:
            status = self.stack.get(paths[sent % len(paths)])[0]
            counts[status] = counts.get(status, 0) + 1
            sent += 1
        return counts

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, envoy_bin: str) -> Iterator[Live]:
    prometheus_binary()  # fail before starting anything when it is missing
    tmp = tmp_path_factory.mktemp("dashboards")
    echo = start_echo_in_thread(name="echo")
    rx = GrpcTelemetryReceiver().start()
    stack: Live | None = None
    try:
        stack = Live(tmp, echo, rx)
        wait_until(stack.prometheus.ready, timeout=30, what="Prometheus ready")
        wait_until(
            lambda: [t["health"] for t in stack.prometheus.targets()] == ["up"] * 3,
            timeout=20,
            what="all three targets up",
        )
        stack.change_config()
        counts = stack.traffic()
        assert counts.get(200) and counts.get(404) and counts.get(503), counts
        time.sleep(2.5)  # two more scrapes after the last request (Envoy flushes every 1 s)
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        rx.stop()
        echo.stop()


# --------------------------------------------------------------------------- the checks


def substitute(expr: str, live: Live) -> str:
    if expr.startswith("label_values("):  # label_values(selector, label)
        selector, label = expr[len("label_values(") : -1].rsplit(",", 1)
        expr = f"count by ({label.strip()}) ({selector})"
    for var, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$__interval", "15s"),
        ("$gateway", "default/eg"),
        (
            "$proxy",
            re.escape(live.proxy_instance).replace("\\", "\\\\"),
        ),  # as Grafana formats a regex variable
        ("$cluster", ".*"),
        ("$route", ".*"),
    ):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_every_dashboard_query_returns_data(live: Live) -> None:
    started = time.monotonic()
    errors: list[str] = []
    empty: list[str] = []
    unexpected: list[str] = []
    results: dict[str, list[dict[str, Any]]] = {}
    for q in all_queries():
        expr = substitute(q.expr, live)
        doc = live.prometheus.api("/api/v1/query", query=expr)
        where = f"{q.dashboard} / {q.panel} / {q.ref}: {expr}"
        if doc.get("status") != "success":
            errors.append(f"{where}\n    -> {doc.get('errorType')}: {doc.get('error')}")
            continue
        result = doc["data"]["result"]
        results[f"{q.dashboard}/{q.panel}/{q.ref}"] = result
        reason = allowed(q.dashboard, q.panel, q.ref)
        if not result and reason is None:
            empty.append(where)
        elif result and reason is not None:
            unexpected.append(f"{where}\n    allow-listed ({reason}) but returned data")
    assert not errors, "queries that error:\n" + "\n".join(errors)
    assert not empty, "queries that return no data:\n" + "\n".join(empty)
    assert not unexpected, "stale allow-list entries:\n" + "\n".join(unexpected)
    assert time.monotonic() - started < 20

    # The config-change annotation carries the change's trace, which reached the receiver.
    changes = results["egobs-control-plane/annotation: Config changes/-"]
    trace_ids = {s["metric"].get("trace_id", "") for s in changes}
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids), changes
    # 503s and 404s reached the route dashboard's error panels.
    classes = {s["metric"]["code_class"] for s in results["egobs-routes/Responses by class/A"]}
    assert {"2xx", "4xx", "5xx"} <= classes, classes


def test_every_catalogued_metric_has_its_type_in_a_real_exposition(
    live: Live, envoy_bin: str, tmp_path: Path
) -> None:
    assert live.stack is not None
    exposed = {
        **types_of(fetch(live.stack.serve.admin + "/metrics")),
        **types_of(fetch(live.sink_url)),
        **types_of(fetch(live.stack.stats_url())),
        **outlier_types(envoy_bin, tmp_path),
    }
    wrong = {
        name: (kind, exposed.get(name))
        for name, kind in METRICS.items()
        if name not in COLLECTOR and exposed.get(name) != kind
    }
    assert not wrong, f"catalogue vs real expositions (name: (catalogue, exposed)): {wrong}"
    live_only = {**types_of(fetch(live.stack.stats_url()))}
    assert not ABSENT_FROM_LIVE & set(live_only), "outlier stats appeared: update the allow-list"


OUTLIER_BOOTSTRAP = """\
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  clusters:
  - name: outlier
    connect_timeout: 1s
    type: STATIC
    outlier_detection: {consecutive_5xx: 5}
    load_assignment:
      cluster_name: outlier
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]
"""


def outlier_types(envoy_bin: str, tmp: Path) -> dict[str, str]:
    """``# TYPE`` of the outlier-detection stats of a static Envoy 1.40 that has them."""
    (tmp / "outlier.yaml").write_text(OUTLIER_BOOTSTRAP)
    address = tmp / "admin-address"
    envoy = LoggedProcess(
        [
            envoy_bin,
            "-c",
            str(tmp / "outlier.yaml"),
            "--disable-hot-restart",
            "--admin-address-path",
            str(address),
            "-l",
            "error",
        ],
        tmp / "envoy.log",
    )
    try:
        wait_until(lambda: envoy.alive() and address.exists() and address.read_text(), timeout=15)
        text = fetch(f"http://{address.read_text().strip()}/stats/prometheus")
    finally:
        envoy.stop()
    return {k: v for k, v in types_of(text).items() if "outlier_detection" in k}


def test_allow_list_names_real_queries() -> None:
    keys = {(q.dashboard, q.panel, q.ref) for q in all_queries()}
    for dashboard, panel, ref in ALLOWED_EMPTY:
        assert any((dashboard in ("*", d)) and panel == p and ref == r for d, p, r in keys), (
            dashboard,
            panel,
            ref,
        )
