"""Default Gateways (GEP-3793) through a real Envoy: a route that names no Gateway but asks
for the default ones (``useDefaultGateways: All``) is served by the Gateway whose
``defaultScope`` is All, and stops being served when that Gateway stops being a default.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, echo_backends, echo_servers, request
from testkit import unused_port as free_port
from testkit import wait_until

pytestmark = pytest.mark.envoy


def _gateway(scope: str) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg, namespace: default}}
spec:
  gatewayClassName: egobs
  defaultScope: {scope}
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
"""


ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: defaulted, namespace: default}
spec:
  useDefaultGateways: All
  rules: [{backendRefs: [{name: app, port: 8080}]}]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with echo_servers("app") as echoes:
        tmp = tmp_path_factory.mktemp("default-gateways")
        port = free_port()
        serve = Serve(tmp, port_map={80: port})
        serve.proxy_port = port  # type: ignore[attr-defined]
        serve.write("00-gateway.yaml", GATEWAY_CLASS + "---\n" + _gateway("All"))
        serve.write("10-backends.yaml", echo_backends({"app": echoes["app"].port}))
        serve.write("20-route.yaml", ROUTE)
        serve.start()
        try:
            wait_until(lambda: _status(serve) == 200, timeout=30, what="the defaulted route")
            yield serve
        finally:
            serve.stop()


def _status(stack: Serve) -> int:
    status, _, _ = request(
        f"http://127.0.0.1:{stack.proxy_port}/",  # type: ignore[attr-defined]
        host="app.example.com",
    )
    return status


def test_a_defaulted_route_is_served_by_the_default_gateway(stack: Serve) -> None:
    assert _status(stack) == 200
    (route,) = [
        o["status"]
        for o in stack.status()["resources"]
        if (o["kind"], o["name"]) == ("HTTPRoute", "defaulted")
    ]
    (parent,) = route["parents"]
    assert parent["parentRef"]["name"] == "eg"
    assert {c["type"]: c["status"] for c in parent["conditions"]}["Accepted"] == "True"


def test_a_gateway_that_stops_being_a_default_drops_it(stack: Serve) -> None:
    stack.write("00-gateway.yaml", GATEWAY_CLASS + "---\n" + _gateway("None"))
    wait_until(lambda: _status(stack) == 404, timeout=15, what="route dropped")
    stack.write("00-gateway.yaml", GATEWAY_CLASS + "---\n" + _gateway("All"))
    wait_until(lambda: _status(stack) == 200, timeout=15, what="route back")
