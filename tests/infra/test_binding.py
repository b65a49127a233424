"""HostBinding: redirect ports follow the port map, and listeners already bound are not
bound again (an endpoint change keeps the IR listeners, so the binding must keep its
result too, or the xDS translator's identity caches miss)."""

from __future__ import annotations

import dataclasses

from egobs import gatewayapi, ir
from egobs.infra.binding import HostBinding
from egobs.infra.ports import PortMap
from egobs.resources import Resources, load_text

_INPUT = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec: {controllerName: gateway.egobs.dev/gatewayclass-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
  - {name: web, protocol: HTTP, port: 80}
  - {name: other, protocol: HTTP, port: 81}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: moved, namespace: default}
spec:
  parentRefs: [{name: eg, sectionName: web}]
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301}
"""


def _gateway() -> ir.Gateway:
    result = gatewayapi.translate(Resources.of(list(load_text(_INPUT))))
    return result.gateways["default/eg"]


def _redirect(gw: ir.Gateway) -> ir.Redirect | None:
    (route,) = (r for lis in gw.http for r in lis.routes if r.redirect is not None)
    return route.redirect


def test_redirect_ports_follow_the_port_map() -> None:
    gw = _gateway()
    assert _redirect(gw) is not None and _redirect(gw).port is None  # type: ignore[union-attr]
    bound = HostBinding(port_map=PortMap(offset=10000)).gateway(gw)
    redirect = _redirect(bound)
    assert redirect is not None and redirect.port == 10443  # https's 443, offset
    assert sorted(lis.port for lis in bound.http) == [10080, 10081]


def test_listeners_bound_once_are_not_bound_again() -> None:
    binding = HostBinding(port_map=PortMap(offset=10000))
    gw = _gateway()
    first = binding.gateway(gw)
    again = binding.gateway(gw)
    assert all(a is b for a, b in zip(first.http, again.http, strict=True))
    # A Gateway that differs in endpoints only keeps its listener objects: so does the binding.
    endpoints_only = dataclasses.replace(gw, endpoints=())
    assert all(
        a is b for a, b in zip(first.http, binding.gateway(endpoints_only).http, strict=True)
    )
    # A new listener object (its routes changed) is bound afresh.
    fresh = dataclasses.replace(gw, http=tuple(dataclasses.replace(lis) for lis in gw.http))
    rebound = binding.gateway(fresh)
    assert _redirect(rebound) == _redirect(first)
    assert rebound.http[0] is not first.http[0]
    binding.forget("default/eg")
    assert binding.gateway(gw).http == first.http
