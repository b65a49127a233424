"""Route tables split by hostname (scoped routes), through real Envoy, delta and SotW.

The threshold is 0 here (``xds.hostnameScopesMinRoutes``), so the Gateway's table of exact
hostnames is split however small it is. What must hold: every request goes where the
single table would send it, a route edit ships only its hostname's RouteConfiguration, a
new or removed hostname ships a scope and its table without touching the listener, and a
wildcard hostname turns the split off (and removing it turns it back on) with traffic
served throughout by the same Envoy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import GATEWAY_CLASS, ONE_HTTP_GATEWAY, Serve, echo_backends, echo_servers, request
from testkit import unused_port as free_port
from testkit import wait_until

from egobs.echo import EchoServer

pytestmark = pytest.mark.envoy


def route(name: str, hostname: str, backend: str, path: str = "/") -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: ["{hostname}"]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
      backendRefs: [{{name: {backend}, port: 8080}}]
"""


def rule(path: str, backend: str) -> str:
    return f"""\
    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
      backendRefs: [{{name: {backend}, port: 8080}}]
"""


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("a", "b", "c") as servers:
        yield servers


@pytest.fixture(scope="module", params=["delta", "sotw"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    echoes: dict[str, EchoServer],
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp(f"scopes-{request.param}")
    proxy_port = free_port()
    serve = Serve(
        tmp,
        port_map={80: proxy_port},
        mode=request.param,
        xds_options={"hostnameScopesMinRoutes": 0},
    )
    serve.proxy_port = proxy_port  # type: ignore[attr-defined]
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-gateway.yaml", ONE_HTTP_GATEWAY)
    serve.write("20-backends.yaml", echo_backends({n: s.port for n, s in echoes.items()}))
    # Every backend in use from the start, so that the edits below change no cluster.
    serve.write("30-a.yaml", route("a", "a.example.com", "a") + rule("/x", "b"))
    serve.write("31-b.yaml", route("b", "b.example.com", "b") + rule("/c", "c"))
    serve.start()
    try:
        wait_until(lambda: backend(serve, "a.example.com") == "a", timeout=30, what="a served")
        yield serve
    finally:
        serve.stop()


def get(stack: Serve, host: str, path: str = "/") -> tuple[int, Any]:
    port = stack.proxy_port  # type: ignore[attr-defined]
    status, _, body = request(f"http://127.0.0.1:{port}{path}", host=host)
    return status, body


def backend(stack: Serve, host: str, path: str = "/") -> str | None:
    status, body = get(stack, host, path)
    return body.get("backend") if status == 200 and isinstance(body, dict) else None


def pushed_since(stack: Serve, before: dict[str, float]) -> set[str]:
    after = stack.pushes()
    return {t for t, v in after.items() if v != before.get(t, 0.0)}


def no_rejections(stack: Serve) -> None:
    assert stack.status()["xdsRejections"] == [], stack.status()["xdsRejections"]


def test_requests_go_where_the_hostname_sends_them(stack: Serve) -> None:
    port = stack.proxy_port  # type: ignore[attr-defined]
    assert backend(stack, "a.example.com") == "a"
    assert backend(stack, "b.example.com") == "b"
    assert backend(stack, "b.example.com", "/c") == "c"
    # The scope key is the host without its port.
    assert backend(stack, f"a.example.com:{port}") == "a"
    assert get(stack, "unknown.example.com")[0] == 404
    # Scope keys match exactly: a host in other letter case finds no scope. This is the
    # documented price of splitting (a single table matches hosts case-insensitively).
    assert get(stack, "A.EXAMPLE.COM")[0] == 404
    no_rejections(stack)


def test_a_route_edit_ships_only_its_hostnames_table(stack: Serve) -> None:
    pid = stack.envoy_pid("default/eg")
    before = stack.pushes()
    stack.write("30-a.yaml", route("a", "a.example.com", "a") + rule("/x", "c"))
    try:
        wait_until(lambda: backend(stack, "a.example.com", "/x") == "c", what="a's edit served")
        assert backend(stack, "a.example.com") == "a"
        assert backend(stack, "b.example.com") == "b"
        assert pushed_since(stack, before) == {"RouteConfiguration"}
        assert stack.envoy_pid("default/eg") == pid
        no_rejections(stack)
    finally:
        stack.write("30-a.yaml", route("a", "a.example.com", "a") + rule("/x", "b"))
        wait_until(lambda: backend(stack, "a.example.com", "/x") == "b", what="a restored")


def test_a_new_hostname_ships_a_scope_not_a_listener(stack: Serve) -> None:
    before = stack.pushes()
    stack.write("32-c.yaml", route("c", "c.example.com", "c"))
    wait_until(lambda: backend(stack, "c.example.com") == "c", what="c served")
    assert pushed_since(stack, before) == {"ScopedRouteConfiguration", "RouteConfiguration"}
    no_rejections(stack)

    before = stack.pushes()
    (stack.resources / "32-c.yaml").unlink()
    wait_until(lambda: get(stack, "c.example.com")[0] == 404, what="c gone")
    assert backend(stack, "a.example.com") == "a"
    # A removed scope is pushed as a removal (delta) or a smaller set (SotW); its table
    # may linger as an unreferenced RDS resource until Envoy unsubscribes.
    assert "Listener" not in pushed_since(stack, before)
    no_rejections(stack)


def test_a_wildcard_hostname_turns_the_split_off_and_back_on(stack: Serve) -> None:
    pid = stack.envoy_pid("default/eg")
    stack.write("33-wild.yaml", route("wild", "*.wild.example.com", "c"))
    try:
        wait_until(lambda: backend(stack, "x.wild.example.com") == "c", what="wildcard served")
        # The single table matches hosts case-insensitively again.
        assert backend(stack, "A.EXAMPLE.COM") == "a"
        assert backend(stack, "b.example.com") == "b"
        no_rejections(stack)
    finally:
        (stack.resources / "33-wild.yaml").unlink()
    wait_until(lambda: get(stack, "x.wild.example.com")[0] == 404, what="wildcard gone")
    wait_until(lambda: get(stack, "A.EXAMPLE.COM")[0] == 404, what="split again")
    assert backend(stack, "a.example.com") == "a"
    assert backend(stack, "b.example.com") == "b"
    assert stack.envoy_pid("default/eg") == pid
    no_rejections(stack)
