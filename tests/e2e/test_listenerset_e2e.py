"""ListenerSets through a real Envoy: listeners a Gateway takes from ListenerSets serve
their routes beside the Gateway's own, and nothing else does.

One `egobs serve` with a host-mode Envoy; echo backends answer with their name. Gateway
default/eg allows ListenerSets from its own namespace. Shown: a route whose parent is a
ListenerSet is served on that set's hostname; a set's listener that repeats the Gateway's
hostname loses alone (the Gateway's own route keeps serving that host); a route whose
parent is the Gateway is not served on a set's hostname; a set from a namespace the
Gateway does not allow serves nothing; editing a set's hostname and deleting a set take
effect on the same Envoy; every status says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, echo_backends, echo_servers, request
from testkit import unused_port as free_port
from testkit import wait_until

from egobs.echo import EchoServer

pytestmark = pytest.mark.envoy

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  allowedListeners: {namespaces: {from: Same}}
  listeners: [{name: http, protocol: HTTP, port: 80, hostname: gw.example.com}]
"""


def _team_a(hostname: str) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {{name: team-a, namespace: default}}
spec:
  parentRef: {{name: eg}}
  listeners:
    - {{name: a, protocol: HTTP, port: 80, hostname: {hostname}}}
    - {{name: same-as-gw, protocol: HTTP, port: 80, hostname: gw.example.com}}
"""


TEAM_B = """\
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: team-b, namespace: other}
spec:
  parentRef: {name: eg, namespace: default}
  listeners: [{name: b, protocol: HTTP, port: 80, hostname: b.example.com}]
"""

ROUTES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-set, namespace: default}
spec:
  parentRefs: [{kind: ListenerSet, name: team-a}]
  rules: [{backendRefs: [{name: a, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-gateway, namespace: default}
spec:
  parentRefs: [{name: eg}]
  rules: [{backendRefs: [{name: gw, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-b, namespace: other}
spec:
  parentRefs: [{kind: ListenerSet, name: team-b}]
  rules: [{backendRefs: [{name: gw, namespace: default, port: 8080}]}]
"""


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("a", "gw") as servers:
        yield servers


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, echoes: dict[str, EchoServer]
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("listenerset")
    port = free_port()
    serve = Serve(tmp, port_map={80: port})
    serve.proxy_port = port  # type: ignore[attr-defined]
    serve.write("00-gateway.yaml", GATEWAY_CLASS + "---\n" + GATEWAY)
    serve.write("10-backends.yaml", echo_backends({n: e.port for n, e in echoes.items()}))
    serve.write("20-team-a.yaml", _team_a("a.example.com"))
    serve.write("21-team-b.yaml", TEAM_B)
    serve.write("30-routes.yaml", ROUTES)
    serve.start()
    try:
        wait_until(lambda: _backend(serve, "a.example.com") == "a", timeout=30, what="a served")
        yield serve
    finally:
        serve.stop()


def _backend(stack: Serve, host: str) -> str | int:
    """The echo backend that answered for ``host``, or the status when none did."""
    status, _, body = request(
        f"http://127.0.0.1:{stack.proxy_port}/x",  # type: ignore[attr-defined]
        host=host,
    )
    if status == 200 and isinstance(body, dict):
        return str(body.get("backend"))
    return status


def _status(stack: Serve, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    for obj in stack.status()["resources"]:
        if (obj["kind"], obj["namespace"], obj["name"]) == (kind, namespace, name):
            return obj["status"]  # type: ignore[no-any-return]
    return None


def _conditions(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


def test_a_listenerset_serves_its_routes_beside_the_gateways(stack: Serve) -> None:
    assert _backend(stack, "a.example.com") == "a"
    # The set's listener repeating the Gateway's hostname lost: the Gateway's route serves.
    assert _backend(stack, "gw.example.com") == "gw"
    status = _status(stack, "ListenerSet", "default", "team-a")
    assert status is not None
    assert _conditions(status["conditions"])["Accepted"][0] == "True"
    listeners = {ls["name"]: ls for ls in status["listeners"]}
    assert listeners["a"]["attachedRoutes"] == 1
    assert _conditions(listeners["same-as-gw"]["conditions"])["Conflicted"] == (
        "True",
        "HostnameConflict",
    )
    gateway = _status(stack, "Gateway", "default", "eg")
    assert gateway is not None
    assert gateway["attachedListenerSets"] == 1
    assert [ls["name"] for ls in gateway["listeners"]] == ["http"]


def test_a_gateway_parent_is_not_served_on_a_sets_hostname(stack: Serve) -> None:
    # via-gateway attaches to the Gateway's own listener (gw.example.com) only.
    status = _status(stack, "HTTPRoute", "default", "via-gateway")
    assert status is not None
    (parent,) = status["parents"]
    assert parent["parentRef"]["kind"] == "Gateway"
    assert _backend(stack, "a.example.com") == "a"


def test_a_set_from_a_namespace_not_allowed_serves_nothing(stack: Serve) -> None:
    assert _backend(stack, "b.example.com") == 404
    status = _status(stack, "ListenerSet", "other", "team-b")
    assert status is not None
    assert _conditions(status["conditions"]) == {
        "Accepted": ("False", "NotAllowed"),
        "Programmed": ("False", "NotAllowed"),
    }
    route = _status(stack, "HTTPRoute", "other", "via-b")
    assert route is not None
    assert _conditions(route["parents"][0]["conditions"])["Accepted"] == (
        "False",
        "NoMatchingParent",
    )


def test_editing_and_deleting_a_set_take_effect_in_place(stack: Serve) -> None:
    pid = stack.envoy_pid("default/eg")
    stack.write("20-team-a.yaml", _team_a("a2.example.com"))
    wait_until(lambda: _backend(stack, "a2.example.com") == "a", timeout=15, what="a2 served")
    assert _backend(stack, "a.example.com") == 404
    (stack.resources / "20-team-a.yaml").unlink()
    wait_until(lambda: _backend(stack, "a2.example.com") == 404, timeout=15, what="set gone")
    assert _backend(stack, "gw.example.com") == "gw"
    assert stack.envoy_pid("default/eg") == pid
    gateway = _status(stack, "Gateway", "default", "eg")
    assert gateway is not None and gateway["attachedListenerSets"] == 0
