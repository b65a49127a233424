"""`egobs serve` end to end: files in, real Envoy routing real requests to echo backends out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, echo_servers, request
from prometheus_client.parser import text_string_to_metric_families
from testkit import pid_alive, wait_until
from testkit import unused_port as free_port

from egobs import ir
from egobs.echo import EchoServer

pytestmark = pytest.mark.envoy

HOST = "www.example.com"


def gateway(port: int = 80) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg, namespace: default}}
spec:
  gatewayClassName: egobs
  listeners:
    - {{name: http, protocol: HTTP, port: {port}}}
"""


def services(names: list[str]) -> str:
    return "---\n".join(
        f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 8080}}]
"""
        for name in names
    )


def endpoint_slices(ports: dict[str, int]) -> str:
    """One EndpointSlice per Service, in a file of their own (as a controller writes them)."""
    return "---\n".join(
        f"""\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""
        for name, port in ports.items()
    )


ROUTES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: eg}]
  hostnames: [www.example.com]
  rules:
    - matches: [{path: {type: Exact, value: /exact}}]
      backendRefs: [{name: a, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /prefix}}]
      backendRefs: [{name: b, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /hdr}, headers: [{name: x-pick, value: c}]}]
      backendRefs: [{name: c, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: pick, value: c}]}]
      backendRefs: [{name: c, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /m}, method: POST}]
      backendRefs: [{name: c, port: 8080}]
    - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
      backendRefs: [{name: c, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /split}}]
      backendRefs:
        - {name: a, port: 8080, weight: 70}
        - {name: b, port: 8080, weight: 30}
    - matches: [{path: {type: PathPrefix, value: /redir}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https, hostname: secure.example.com, statusCode: 302}
    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: URLRewrite
          urlRewrite:
            hostname: rewritten.example.com
            path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
      backendRefs: [{name: a, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /headers}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-set, value: from-gateway}]
            add: [{name: x-add, value: added}]
            remove: [x-drop]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{name: x-resp, value: egobs}]
      backendRefs: [{name: b, port: 8080}]
    - backendRefs: [{name: a, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-host, namespace: default}
spec:
  parentRefs: [{name: eg}]
  hostnames: [other.example.com]
  rules:
    - backendRefs: [{name: c, port: 8080}]
"""


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("a", "b", "c") as servers:
        yield servers


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`egobs sink` writing JSON lines, as a separate process like in production."""
    tmp = tmp_path_factory.mktemp("sink")
    port, metrics_port = free_port(), free_port()
    jsonl = tmp / "access.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "egobs.cli",
            "sink",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--jsonl",
            str(jsonl),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: request(f"http://127.0.0.1:{metrics_port}/readyz")[0] == 200, what="sink ready"
        )
        yield port, jsonl
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    echoes: dict[str, EchoServer],
    sink: tuple[int, Path],
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("serve")
    proxy_port = free_port()
    serve = Serve(tmp, port_map={80: proxy_port}, sink_port=sink[0])
    serve.proxy_port = proxy_port  # type: ignore[attr-defined]
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-gateway.yaml", gateway())
    serve.write("20-services.yaml", services(list(echoes)))
    serve.write("21-slices.yaml", endpoint_slices({n: s.port for n, s in echoes.items()}))
    serve.write("30-routes.yaml", ROUTES)
    serve.start()
    try:
        wait_until(
            lambda: backend_of(serve, "/exact") == "a", timeout=30, what="first route served"
        )
        yield serve
    finally:
        serve.stop()
        assert_no_envoy_left(tmp)


def assert_no_envoy_left(tmp: Path) -> None:
    out = subprocess.run(["pgrep", "-f", str(tmp)], capture_output=True, text=True).stdout.split()
    assert not [p for p in out if pid_alive(int(p))], "Envoy left running after egobs stopped"


def url(stack: Serve, path: str) -> str:
    return f"http://127.0.0.1:{stack.proxy_port}{path}"  # type: ignore[attr-defined]


def get(stack: Serve, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
    kw.setdefault("host", HOST)
    return request(url(stack, path), **kw)


def backend_of(stack: Serve, path: str, **kw: Any) -> str | None:
    status, _, body = get(stack, path, **kw)
    return body.get("backend") if status == 200 and isinstance(body, dict) else None


def test_matches_route_to_the_right_backend(stack: Serve) -> None:
    assert backend_of(stack, "/exact") == "a"
    assert backend_of(stack, "/exact/more") == "a"  # falls to the catch-all rule, which is a
    assert backend_of(stack, "/prefix/x") == "b"
    assert backend_of(stack, "/prefixed") == "a"  # PathPrefix is segment-aware
    assert backend_of(stack, "/hdr", headers={"x-pick": "c"}) == "c"
    assert backend_of(stack, "/hdr") == "a"
    assert backend_of(stack, "/q?pick=c") == "c"
    assert backend_of(stack, "/q?pick=d") == "a"
    assert backend_of(stack, "/m", method="POST") == "c"
    assert backend_of(stack, "/m") == "a"
    assert backend_of(stack, "/re/123") == "c"
    assert backend_of(stack, "/re/abc") == "a"
    assert backend_of(stack, "/", host="other.example.com") == "c"
    assert get(stack, "/", host="unknown.example.com")[0] == 404


def test_access_logs_reach_the_sink_with_route_names(stack: Serve, sink: tuple[int, Path]) -> None:
    import json

    # Envoy replaces an edge client's x-request-id, so the path marks the request.
    status, _, _ = get(stack, "/prefix/logged-e2e-als-1")
    assert status == 200

    def logged() -> dict[str, Any] | None:
        if not sink[1].exists():
            return None
        for line in sink[1].read_text().splitlines():
            if "e2e-als-1" in line:
                return json.loads(line)  # type: ignore[no-any-return]
        return None

    entry = wait_until(logged, timeout=10, what="access log line for the request")
    text = json.dumps(entry)
    assert "httproute/default/main/rule/1/match/0" in text
    assert "service/default/b/8080" in text
    assert "default/eg" in text


def test_weights_split_traffic_within_tolerance(stack: Serve) -> None:
    counts = Counter(backend_of(stack, "/split") for _ in range(400))
    assert set(counts) == {"a", "b"}
    share_a = counts["a"] / 400
    assert 0.6 <= share_a <= 0.8, counts


def test_redirect_rewrite_and_header_filters(stack: Serve) -> None:
    status, headers, _ = get(stack, "/redir/x")
    assert status == 302
    assert headers["location"] == "https://secure.example.com/redir/x"

    status, _, body = get(stack, "/old/path?k=v")
    assert status == 200 and body["backend"] == "a"
    assert body["path"] == "/new/path?k=v"
    assert body["host"] == "rewritten.example.com"

    status, headers, body = get(
        stack, "/headers", headers={"x-set": "client", "x-add": "client", "x-drop": "1"}
    )
    assert status == 200 and body["backend"] == "b"
    assert body["headers"]["x-set"] == "from-gateway"
    assert body["headers"]["x-add"] == "client,added"
    assert "x-drop" not in body["headers"]
    assert headers["x-resp"] == "egobs"


def test_invalid_regex_is_rejected_while_other_routes_keep_working(stack: Serve) -> None:
    bad = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-regex, namespace: default}
spec:
  parentRefs: [{name: eg}]
  hostnames: [www.example.com]
  rules:
    - matches: [{path: {type: RegularExpression, value: "/bad/(("}}]
      backendRefs: [{name: c, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /good-in-bad}}]
      backendRefs: [{name: c, port: 8080}]
"""
    stack.write("40-bad.yaml", bad)
    try:
        wait_until(
            lambda: backend_of(stack, "/good-in-bad") == "c", what="valid rule of the route served"
        )

        def condition() -> dict[str, Any] | None:
            for obj in stack.status()["resources"]:
                if obj["name"] == "bad-regex":
                    conds = obj["status"]["parents"][0]["conditions"]
                    return next((c for c in conds if c["type"] == "PartiallyInvalid"), None)
            return None

        cond = wait_until(condition, what="PartiallyInvalid condition")
        assert cond["status"] == "True" and "regular expression" in cond["message"].lower()
        # Everything else is untouched.
        assert backend_of(stack, "/exact") == "a"
        assert backend_of(stack, "/prefix/x") == "b"
    finally:
        (stack.resources / "40-bad.yaml").unlink()
        wait_until(lambda: backend_of(stack, "/good-in-bad") == "a", what="bad route removed")


def test_editing_a_route_file_reroutes_without_restarting(stack: Serve) -> None:
    pid = stack.envoy_pid("default/eg")
    assert pid is not None
    stack.write(
        "30-routes.yaml",
        ROUTES.replace(
            "value: /prefix}}]\n      backendRefs: [{name: b",
            "value: /prefix}}]\n      backendRefs: [{name: c",
        ),
    )
    try:
        wait_until(lambda: backend_of(stack, "/prefix/x") == "c", what="edited route served")
        assert stack.envoy_pid("default/eg") == pid
    finally:
        stack.write("30-routes.yaml", ROUTES)
        wait_until(lambda: backend_of(stack, "/prefix/x") == "b", what="route restored")


def test_an_endpointslice_edit_pushes_only_that_assignment(
    stack: Serve, echoes: dict[str, EchoServer]
) -> None:
    """Service a's EndpointSlice moves to echo c's port: traffic for a's routes reaches c,
    Envoy is not restarted, and egobs pushed ClusterLoadAssignments only (no CDS, LDS, RDS,
    SDS), which its own metrics show."""
    pid = stack.envoy_pid("default/eg")
    before = stack.pushes()
    ports = {n: s.port for n, s in echoes.items()}
    stack.write("21-slices.yaml", endpoint_slices({**ports, "a": ports["c"]}))
    try:
        wait_until(lambda: backend_of(stack, "/exact") == "c", what="a's new endpoint served")
        assert backend_of(stack, "/prefix/x") == "b"
        after = stack.pushes()
        grew = {t for t in after if after[t] != before.get(t, 0.0)}
        assert grew == {"ClusterLoadAssignment"}, (before, after)
        assert stack.envoy_pid("default/eg") == pid
    finally:
        stack.write("21-slices.yaml", endpoint_slices(ports))
        wait_until(lambda: backend_of(stack, "/exact") == "a", what="a's endpoint restored")


CORS_ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors, namespace: default}
spec:
  parentRefs: [{name: eg}]
  hostnames: [cors.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /cors}}]
      filters:
        - type: CORS
          cors:
            allowOrigins: ["https://www.foo.com", "https://*.foobar.com"]
            allowMethods: [GET, POST]
            allowHeaders: [x-header-1]
            exposeHeaders: [x-header-3]
            allowCredentials: true
            maxAge: 3600
      backendRefs: [{name: b, port: 8080}]
"""


def test_cors_preflight_and_requests_follow_the_route_policy(stack: Serve) -> None:
    """The CORS filter through real Envoy: an allowed origin's preflight is answered by
    Envoy with the policy, a wildcard subdomain matches, and a foreign origin gets no CORS
    headers (its preflight goes to the backend like any OPTIONS request)."""
    host = "cors.example.com"
    stack.write("35-cors.yaml", CORS_ROUTE)
    try:
        wait_until(lambda: backend_of(stack, "/cors", host=host) == "b", what="CORS route served")
        preflight = {"Origin": "https://www.foo.com", "Access-Control-Request-Method": "POST"}
        status, headers, body = get(stack, "/cors", host=host, method="OPTIONS", headers=preflight)
        assert status == 200 and not isinstance(body, dict), body  # Envoy's, not the echo's
        assert headers["access-control-allow-origin"] == "https://www.foo.com"
        assert headers["access-control-allow-methods"] == "GET,POST"
        assert headers["access-control-allow-headers"] == "x-header-1"
        assert headers["access-control-max-age"] == "3600"
        assert headers["access-control-allow-credentials"] == "true"
        origin = {"Origin": "https://api.eu.foobar.com"}
        status, headers, body = get(stack, "/cors", host=host, headers=origin)
        assert status == 200 and body["backend"] == "b"
        assert headers["access-control-allow-origin"] == "https://api.eu.foobar.com"
        assert headers["access-control-expose-headers"] == "x-header-3"
        for foreign in ("https://evil.example.com", "https://foobar.com"):
            status, headers, _ = get(stack, "/cors", host=host, headers={"Origin": foreign})
            assert status == 200 and "access-control-allow-origin" not in headers, foreign
    finally:
        (stack.resources / "35-cors.yaml").unlink()
        wait_until(lambda: backend_of(stack, "/cors", host=host) is None, what="CORS route gone")


def _failing_sources(stack: Serve) -> float:
    with urllib.request.urlopen(stack.admin + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "egobs_provider_failing_sources":
            for sample in family.samples:
                if sample.labels.get("kind") == "file":
                    return sample.value
    return 0.0


def test_broken_file_keeps_serving_last_good_config(stack: Serve) -> None:
    """The refused route keeps its last good version under traffic; the error shows in
    status and as the failing-sources gauge, and both clear once the file is fixed."""
    stack.write(
        "30-routes.yaml", ROUTES.replace("backendRefs: [{name: b", "backendRefz: [{name: b", 1)
    )
    try:
        errors = wait_until(
            lambda: stack.status()["providerErrors"], what="provider error reported"
        )
        assert "backendRefz: unknown field" in errors[0]["errors"][0]
        assert backend_of(stack, "/prefix/x") == "b"
        assert backend_of(stack, "/exact") == "a"
        assert _failing_sources(stack) == 1
    finally:
        stack.write("30-routes.yaml", ROUTES)
        wait_until(lambda: not stack.status()["providerErrors"], what="error cleared")
        wait_until(lambda: _failing_sources(stack) == 0, what="failing gauge back to 0")


def test_killed_envoy_is_restarted_and_serves_again(stack: Serve) -> None:
    pid = stack.envoy_pid("default/eg")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    new_pid = wait_until(
        lambda: (p := stack.envoy_pid("default/eg")) and p != pid and p,
        timeout=30,
        what="Envoy restarted",
    )
    assert not pid_alive(pid) and pid_alive(new_pid)
    wait_until(
        lambda: backend_of(stack, "/prefix/x") == "b", timeout=20, what="restarted Envoy serving"
    )
    proxy = stack.proxy("default/eg")
    assert proxy is not None and proxy["infra"]["restarts"] >= 1


def test_deleting_the_gateway_stops_its_envoy(stack: Serve) -> None:
    pid = stack.envoy_pid("default/eg")
    assert pid is not None
    (stack.resources / "10-gateway.yaml").unlink()
    wait_until(lambda: stack.proxy("default/eg") is None, what="proxy gone from status")
    wait_until(lambda: not pid_alive(pid), what="Envoy process exited")
    # Putting it back brings a fresh Envoy that serves the same routes.
    stack.write("10-gateway.yaml", gateway())
    wait_until(lambda: backend_of(stack, "/exact") == "a", timeout=30, what="Gateway back")


def test_external_mode_proxy_keeps_serving_across_control_plane_restart(
    tmp_path: Path, echoes: dict[str, EchoServer], envoy_bin: str
) -> None:
    """Envoy run by someone else survives `egobs serve` restarting, then resyncs."""
    import json

    from egobs.infra.bootstrap import bootstrap

    proxy_port = free_port()
    serve = Serve(tmp_path, infra="External", port_map={80: proxy_port})
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-gateway.yaml", gateway())
    serve.write("20-services.yaml", services(list(echoes)))
    serve.write("21-slices.yaml", endpoint_slices({n: s.port for n, s in echoes.items()}))
    serve.write("30-routes.yaml", ROUTES)
    admin_port = free_port()
    boot = tmp_path / "envoy.json"
    boot.write_text(
        json.dumps(
            bootstrap(
                ir.Proxy("default/eg", "egobs", ()),
                node_id="external-1",
                xds_host="127.0.0.1",
                xds_port=serve.xds_port,
                admin_port=admin_port,
                delta=True,
            )
        )
    )
    envoy = subprocess.Popen(
        [envoy_bin, "-c", str(boot), "--disable-hot-restart", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{proxy_port}"
    try:
        serve.start()
        wait_until(lambda: request(base + "/exact", host=HOST)[0] == 200, timeout=30, what="served")

        def connected() -> int:
            status, _, body = request(
                f"http://127.0.0.1:{admin_port}/stats?filter=control_plane.connected_state"
            )
            return int(str(body).strip().rsplit(" ", 1)[-1]) if status == 200 else -1

        assert connected() == 1
        serve.stop()
        wait_until(lambda: connected() == 0, what="Envoy sees the control plane gone")
        failures = sum(request(base + "/exact", host=HOST)[0] != 200 for _ in range(50))
        assert failures == 0, "Envoy stopped serving while the control plane was down"
        serve.start()
        wait_until(lambda: connected() == 1, timeout=30, what="Envoy reconnected")
        failures = sum(request(base + "/prefix/x", host=HOST)[0] != 200 for _ in range(50))
        assert failures == 0
    finally:
        serve.stop()
        envoy.terminate()
        try:
            envoy.wait(10)
        except subprocess.TimeoutExpired:
            envoy.kill()
            envoy.wait(5)
    assert envoy.returncode is not None
    time.sleep(0)
