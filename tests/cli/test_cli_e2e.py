"""`egobs status` and `egobs version` against a running `egobs serve` with a real Envoy."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import GATEWAY_CLASS, Serve
from testkit import unused_port, wait_until

from egobs.cli import main

pytestmark = pytest.mark.envoy

RESOURCES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-1, namespace: default, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: http, port: 9}]
endpoints: [{addresses: [127.0.0.1]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: eg}]
  rules:
    - backendRefs: [{name: a, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: team-b}
spec:
  parentRefs: [{name: eg, namespace: default}]
  rules:
    - backendRefs: [{name: a, port: 8080}]
"""


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("cli"), port_map={80: unused_port()})
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-resources.yaml", RESOURCES)
    serve.start()
    try:

        def synced() -> bool:
            import urllib.request

            with urllib.request.urlopen(serve.admin + "/debug/syncz", timeout=5) as resp:
                proxies = json.load(resp)["proxies"]
            return bool(proxies) and all(p["synced"] and p["envoyAdmin"] for p in proxies)

        wait_until(synced, timeout=30, what="the Envoy to ACK every type")
        yield serve
    finally:
        serve.stop()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def test_status_of_routes_in_a_namespace(serve: Serve) -> None:
    hostport = f"127.0.0.1:{serve.admin_port}"
    for admin in (hostport, f"http://{hostport}"):
        out = run("status", "httproute", "-n", "default", "--admin", admin).stdout
        lines = out.splitlines()
        assert lines[0].split()[:3] == ["KIND", "NAMESPACE", "NAME"]
        body = [line.split() for line in lines[1:]]
        assert {(r[0], r[1], r[2]) for r in body} == {("HTTPRoute", "default", "main")}
        accepted = next(r for r in body if r[5] == "Accepted")
        assert accepted[6] == "True"
    # All namespaces by default.
    out = run("status", "httproutes", env={"EGOBS_ADMIN": hostport}).stdout
    assert "team-b" in out and "elsewhere" in out


def test_status_of_one_gateway_as_json(serve: Serve) -> None:
    out = run("status", "gateway", "eg", "-o", "json", "-c", str(serve.config)).stdout
    doc = json.loads(out)
    ((gw),) = doc["resources"]
    assert (gw["kind"], gw["namespace"], gw["name"]) == ("Gateway", "default", "eg")
    programmed = next(c for c in gw["status"]["conditions"] if c["type"] == "Programmed")
    assert programmed["status"] == "True"
    ((proxy),) = doc["proxies"]
    assert proxy["name"] == "default/eg" and proxy["infra"]["state"] == "running"
    # One key style (Kubernetes camelCase) and RFC 3339 times, in every part of the document.
    keys: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            keys.update(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc)
    assert not [k for k in keys if "_" in k], sorted(keys)
    started = proxy["infra"]["startedAt"]
    assert datetime.fromisoformat(started.replace("Z", "+00:00")).tzinfo is not None


def test_status_of_proxies_shows_versions_acks_and_envoy_admin(serve: Serve) -> None:
    out = run("status", "--proxies", "--admin", f"http://127.0.0.1:{serve.admin_port}").stdout
    summary, detail = out.strip().split("\n\n")
    head, row = summary.splitlines()
    assert re.split(r"\s{2,}", head)[-3:] == ["SNAPSHOT", "ENVOY ADMIN", "CONNECTED"]
    cells = re.split(r"\s{2,}", row)
    assert cells[1] == "default/eg" and cells[3] == "SYNCED"  # CDS
    envoy_admin = cells[-2]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", envoy_admin)
    # It is the Envoy's own admin: it answers /server_info.
    import urllib.request

    with urllib.request.urlopen(f"http://{envoy_admin}/server_info", timeout=5) as resp:
        assert json.load(resp)["state"] == "LIVE"
    dlines = [re.split(r"\s{2,}", line) for line in detail.splitlines()]
    assert dlines[0] == ["NODE", "TYPE", "STATE", "SENT", "ACKED", "LAST ACK", "LAST NACK"]
    by_type = {r[1]: r for r in dlines[1:]}
    assert {"CDS", "EDS", "LDS", "RDS"} <= set(by_type)
    for r in by_type.values():
        assert r[2] == "SYNCED" and r[3] == r[4] and len(r[3]) <= 8, r
        assert re.fullmatch(r"\d+[smhd]", r[5]), r
        assert r[6] == "-"


def test_unreachable_admin_points_elsewhere(serve: Serve) -> None:
    result = CliRunner().invoke(main, ["status", "--admin", f"127.0.0.1:{unused_port()}"])
    assert result.exit_code == 1 and "EGOBS_ADMIN" in result.stderr


def test_version_shows_the_envoy_egobs_runs(envoy_bin: str) -> None:
    out = run("version").stdout
    assert re.search(r"^envoy:\s+1\.40\.\d+ \(", out, re.M), out
    doc = json.loads(run("version", "-o", "json").stdout)
    assert doc["envoy"]["version"].startswith("1.40.") and doc["envoy"]["path"] == envoy_bin
    assert doc["python"] == ".".join(map(str, sys.version_info[:3]))
