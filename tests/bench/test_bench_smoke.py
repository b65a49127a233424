"""The control-plane benchmarks still run, at a size that takes seconds (real Envoy).

Their figures are not asserted here (speed targets live in bench/, not in timed tests);
what is asserted is what each promises besides speed: the JSON line and its keys, and for
bench/endpoints.py that an EndpointSlice edit pushes ClusterLoadAssignments only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _envoys() -> set[int]:
    """Pids of the Envoy processes running now (this machine's, whoever started them)."""
    out = subprocess.run(["pgrep", "-f", "bin/envoy "], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _run(script: str, *args: str) -> dict[str, object]:
    before = _envoys()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    # A bench stops every process it starts: no Envoy of its may outlive it.
    left = _envoys() - before
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{script} left Envoys running: {sorted(left)}"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.usefixtures("envoy_bin")
def test_endpoints_bench_pushes_only_assignments() -> None:
    out = _run("endpoints.py", "--routes", "300", "--changes", "4", "--services", "2")
    assert out["routes"] == 300 and out["changes"] == 4
    assert out["types_pushed"] == ["ClusterLoadAssignment"]
    assert out["resources_pushed_per_change"] == 1
    for key in ("build_p50_ms", "p50_ms", "p99_ms"):
        assert isinstance(out[key], float) and out[key] > 0, key


@pytest.mark.usefixtures("envoy_bin")
def test_converge_bench_pushes_one_route_configuration() -> None:
    out = _run("converge.py", "--routes", "300", "--changes", "3")
    assert out["changes"] == 3
    assert out["resources_pushed_per_change"] == 1
    assert isinstance(out["p99_ms"], float) and out["p99_ms"] > 0


def test_eg_conditions_compares_listener_and_route_conditions(tmp_path: Path) -> None:
    """bench/eg_conditions.py on a case written here in Envoy Gateway's golden format (EG's
    own goldens are not shipped): one listener, one route parent, one condition that
    egobs reports differently (the route names a Service port that does not exist)."""
    (tmp_path / "one.in.yaml").write_text(
        """\
gateways:
- apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {namespace: envoy-gateway, name: gateway-1}
  spec:
    gatewayClassName: envoy-gateway-class
    listeners:
    - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}
httpRoutes:
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {namespace: default, name: httproute-1}
  spec:
    parentRefs: [{namespace: envoy-gateway, name: gateway-1}]
    rules:
    - backendRefs: [{name: service-1, port: 9999}]
"""
    )
    (tmp_path / "one.out.yaml").write_text(
        """\
gateways:
- metadata: {namespace: envoy-gateway, name: gateway-1}
  status:
    listeners:
    - name: http
      conditions:
      - {type: Programmed, status: 'True', reason: Programmed}
      - {type: Accepted, status: 'True', reason: Accepted}
httpRoutes:
- metadata: {namespace: default, name: httproute-1}
  status:
    parents:
    - parentRef: {namespace: envoy-gateway, name: gateway-1}
      conditions:
      - {type: Accepted, status: 'True', reason: Accepted}
      - {type: ResolvedRefs, status: 'False', reason: SomethingElse}
"""
    )
    out = _run("eg_conditions.py", str(tmp_path))
    assert out == {
        "cases": 1,
        "comparable_cases": 1,
        "comparisons": 4,
        "matched": 3,
        "match_ratio": 0.75,
    }


def test_translate_bench_reports_the_telemetry_overhead() -> None:
    out = _run("translate.py", "--routes", "200", "--instrumented", "both", "--changes", "2")
    assert out["routes"] == 200
    for key in (
        "translate_s",
        "build_off_s",
        "build_on_s",
        "route_change_off_ms",
        "route_change_on_ms",
        "endpoint_change_off_ms",
        "endpoint_change_on_ms",
        "scrape_first_ms",
        "scrape_ms",
    ):
        assert isinstance(out[key], float) and out[key] > 0, key
    for key in ("overhead_ratio", "route_change_overhead_ratio", "endpoint_change_overhead_ratio"):
        assert isinstance(out[key], float), key


@pytest.mark.usefixtures("envoy_bin")
def test_fanout_bench_counts_every_proxy() -> None:
    out = _run(
        "fanout.py", "--proxies", "20", "--routes", "100", "--changes", "2", "--pause", "0.1"
    )
    assert out["proxies"] == 21  # the clients and the Envoy the control plane runs
    for key in ("p50_s", "p99_s", "cp_rss_mib"):
        assert isinstance(out[key], float) and out[key] > 0, key


@pytest.mark.usefixtures("envoy_bin")
@pytest.mark.parametrize("extra", [(), ("--placement", "isolated", "--upstream")])
def test_telemetry_bench_loses_nothing(extra: tuple[str, ...]) -> None:
    out = _run("telemetry_overhead.py", "--seconds", "1", "--connections", "4", *extra)
    assert out["logs_lost"] == 0 and out["envoy_als_dropped"] == 0
    assert out["spans_lost"] == 0, out  # raw: a negative figure would be duplicates
    # Requests reset as wrk stops: at most one in flight per connection, in two phases.
    assert 0 <= out["traced_without_span"] <= 2 * 4, out
    assert out["spans_sent_100pct"] > 0 and out["logs_expected_100pct"] > 0
    for key in ("rps_off", "ratio_100pct", "ratio_1pct", "envoy_us_per_request_100pct"):
        assert isinstance(out[key], int | float) and out[key] > 0, key
