"""The endpoint path: an EndpointSlice change touches the endpoint table only.

Routes name clusters; endpoints are rows of each Gateway's table. When nothing but
EndpointSlices changed, the Translator hands back the last result with new rows for the
Gateways that use a changed cluster, compiles no route and names no status as changed. When
a slice change flips a cluster's address type (IP ↔ FQDN) or touches a Service a telemetry
sink copies endpoints from, it translates in full. Edit series mixing slice, route and
Service edits must equal a fresh ``translate()`` after every step.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from egobs import gatewayapi, ir
from egobs.resources import EndpointSlice, HTTPRoute, Resource, Resources, Source, load_text
from egobs.resources import parse_object as _parse_object

NOW = "2026-01-01T00:00:00Z"
SOURCE = Source("endpoints", 1, 1)

ENV = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec: {controllerName: gateway.egobs.dev/gatewayclass-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw1, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80}
    - {name: tcp, protocol: TCP, port: 9000}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw2, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: tcp, namespace: default}
spec:
  parentRefs: [{name: gw1, sectionName: tcp}]
  rules:
    - backendRefs: [{name: s2, port: 80}]
"""
SERVICES = ["s0", "s1", "s2", "s3"]


def _parse(data: dict[str, Any]) -> Resource:
    return _parse_object(data, SOURCE)


def _service(name: str, cluster_ip: str | None = None) -> Resource:
    spec: dict[str, Any] = {"ports": [{"name": "http", "port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return _parse(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


def _slice(service: str, suffix: str, addresses: list[str], **kw: Any) -> EndpointSlice:
    fqdn = kw.get("fqdn", False)
    data = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{suffix}",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "FQDN" if fqdn else "IPv4",
        "ports": [{"name": "http", "port": kw.get("port", 8080)}],
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": kw.get("ready", True)}} for a in addresses
        ],
    }
    es = _parse(data)
    assert isinstance(es, EndpointSlice)
    return es


def _backend(name: str, *endpoints: str, app: str | None = None) -> Resource:
    """An Envoy Gateway Backend; an endpoint with a dot-free first label is an IP."""
    eps: list[dict[str, Any]] = []
    for e in endpoints:
        if e[0].isdigit():
            eps.append({"ip": {"address": e, "port": 3000}})
        else:
            eps.append({"fqdn": {"hostname": e, "port": 3000}})
    spec: dict[str, Any] = {"endpoints": eps}
    if app:
        spec["appProtocols"] = [app]
    return _parse(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


def _route(name: str, gateway: str, backends: list[str], path: str = "/") -> HTTPRoute:
    route = _parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": gateway}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                        "backendRefs": [
                            {"name": b[3:], "group": "gateway.envoyproxy.io", "kind": "Backend"}
                            if b.startswith("be:")
                            else {"name": b, "port": 80}
                            for b in backends
                        ],
                    }
                ],
            },
        }
    )
    assert isinstance(route, HTTPRoute)
    return route


def _base() -> list[Resource]:
    objs: list[Resource] = list(load_text(ENV))
    objs.extend(_service(s) for s in SERVICES)
    objs.append(_service("cip", cluster_ip="10.96.0.9"))
    objs.extend(_slice(s, "a", [f"10.0.{i}.1"]) for i, s in enumerate(SERVICES))
    objs.append(_route("r1", "gw1", ["s0", "s1"]))
    objs.append(_route("r2", "gw2", ["s1"], "/two"))
    objs.append(_route("r3", "gw1", ["cip"], "/cip"))
    objs.append(_backend("ext", "10.8.0.1"))
    objs.append(_route("r4", "gw2", ["be:ext"], "/ext"))
    return objs


def _rows(result: gatewayapi.Result, gateway: str) -> dict[str, tuple[ir.Endpoint, ...]]:
    return {row.cluster: row.endpoints for row in result.gateways[gateway].endpoints}


def _replace_slice(objs: list[Resource], new: EndpointSlice) -> None:
    for i, o in enumerate(objs):
        if isinstance(o, EndpointSlice) and o.name == new.name:
            objs[i] = new
            return
    objs.append(new)


def test_a_slice_edit_changes_only_the_rows_of_its_clusters() -> None:
    objs = _base()
    t = gatewayapi.Translator()
    first = t.translate(Resources.of(objs), now=NOW)
    assert _rows(first, "default/gw1")["service/default/s0/80"] == (ir.Endpoint("10.0.0.1", 8080),)
    assert _rows(first, "default/gw1")["service/default/cip/80"] == (ir.Endpoint("10.96.0.9", 80),)
    assert "service/default/s0/80" not in _rows(first, "default/gw2")  # per Gateway

    _replace_slice(objs, _slice("s0", "a", ["10.0.0.1", "10.0.0.2"], port=9090))
    res = Resources.of(objs)
    second = t.translate(res, now=NOW)

    assert t.endpoint_update_last == frozenset({"service/default/s0/80"})
    assert t.compiled_last == 0
    assert second.changed == frozenset()
    assert second.statuses is first.statuses
    assert second.gateways["default/gw2"] is first.gateways["default/gw2"]  # s0 not used there
    gw_before, gw_after = first.gateways["default/gw1"], second.gateways["default/gw1"]
    assert gw_after.http is gw_before.http  # the very same listeners and routes
    changed = [
        (a, b) for a, b in zip(gw_before.endpoints, gw_after.endpoints, strict=True) if a is not b
    ]
    assert [b.cluster for _, b in changed] == ["service/default/s0/80"]
    assert _rows(second, "default/gw1")["service/default/s0/80"] == (
        ir.Endpoint("10.0.0.1", 9090),
        ir.Endpoint("10.0.0.2", 9090),
    )
    assert second == gatewayapi.translate(res, now=NOW)


def test_a_slice_of_a_service_no_route_uses_changes_no_gateway() -> None:
    objs = _base()
    t = gatewayapi.Translator()
    first = t.translate(Resources.of(objs), now=NOW)
    _replace_slice(objs, _slice("s3", "a", ["10.9.9.9"]))
    second = t.translate(Resources.of(objs), now=NOW)
    assert t.endpoint_update_last == frozenset()
    assert second.gateways == first.gateways
    assert all(second.gateways[k] is first.gateways[k] for k in first.gateways)


def _replace_backend(objs: list[Resource], new: Resource) -> None:
    i = next(k for k, o in enumerate(objs) if o.KIND == "Backend" and o.name == new.name)
    objs[i] = new


def test_a_backend_endpoint_edit_takes_the_endpoint_path() -> None:
    objs = _base()
    t = gatewayapi.Translator()
    first = t.translate(Resources.of(objs), now=NOW)
    _replace_backend(objs, _backend("ext", "10.8.0.2", "10.8.0.3"))
    res = Resources.of(objs)
    second = t.translate(res, now=NOW)
    assert t.endpoint_update_last == frozenset({"backend/default/ext"})
    assert t.compiled_last == 0
    assert second.statuses is first.statuses
    assert second.gateways["default/gw1"] is first.gateways["default/gw1"]
    assert _rows(second, "default/gw2")["backend/default/ext"] == (
        ir.Endpoint("10.8.0.2", 3000),
        ir.Endpoint("10.8.0.3", 3000),
    )
    assert second == gatewayapi.translate(res, now=NOW)
    # A route edit after it patches from the adopted Backend, not the old one.
    objs.append(_route("r5", "gw2", ["be:ext"], "/five"))
    res = Resources.of(objs)
    assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)


@pytest.mark.parametrize(
    "edited",
    [
        pytest.param(("ext", "backend.example.net"), id="address-type-flip"),
        pytest.param(("ext", "10.8.0.1", "h2c"), id="app-protocol"),
    ],
)
def test_a_backend_edit_beyond_its_endpoints_translates_in_full(edited: tuple[str, ...]) -> None:
    objs = _base()
    t = gatewayapi.Translator()
    t.translate(Resources.of(objs), now=NOW)
    name, endpoint, *app = edited
    _replace_backend(
        objs, _backend(name, endpoint, app="gateway.envoyproxy.io/h2c" if app else None)
    )
    res = Resources.of(objs)
    got = t.translate(res, now=NOW)
    assert t.endpoint_update_last is None
    assert got == gatewayapi.translate(res, now=NOW)


def test_an_address_type_flip_translates_in_full() -> None:
    """IP → FQDN makes the cluster a DNS cluster, which every route naming it carries."""
    objs = [o for o in _base() if not (isinstance(o, EndpointSlice) and o.name == "s1-a")]
    objs.append(_slice("s1", "a", ["10.0.1.1"]))
    t = gatewayapi.Translator()
    t.translate(Resources.of(objs), now=NOW)
    _replace_slice(objs, _slice("s1", "a", ["backend.example.net"], fqdn=True))
    res = Resources.of(objs)
    got = t.translate(res, now=NOW)
    assert t.endpoint_update_last is None
    assert got == gatewayapi.translate(res, now=NOW)
    clusters = {
        s.cluster.name: s.cluster.address_type
        for lis in got.gateways["default/gw2"].http
        for r in lis.routes
        for s in (r.destination.settings if r.destination else ())
    }
    assert clusters["service/default/s1/80"] is ir.AddressType.FQDN


TELEMETRY = """
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata: {name: proxy, namespace: default}
spec:
  telemetry:
    accessLog:
      settings:
        - sinks:
            - type: OpenTelemetry
              openTelemetry:
                backendRefs: [{name: s3, port: 80}]
"""


def test_a_slice_of_a_telemetry_sink_service_translates_in_full() -> None:
    """The sink's endpoints are copied into the access-log cluster: the row path would
    leave them stale."""
    objs = _base()
    objs.extend(load_text(TELEMETRY))
    for i, o in enumerate(objs):
        if o.KIND == "GatewayClass":
            objs[i] = _parse(
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "GatewayClass",
                    "metadata": {"name": "egobs"},
                    "spec": {
                        "controllerName": "gateway.egobs.dev/gatewayclass-controller",
                        "parametersRef": {
                            "group": "gateway.envoyproxy.io",
                            "kind": "EnvoyProxy",
                            "name": "proxy",
                            "namespace": "default",
                        },
                    },
                }
            )
    t = gatewayapi.Translator()
    first = t.translate(Resources.of(objs), now=NOW)
    assert first.gateways["default/gw1"].access_logs
    _replace_slice(objs, _slice("s3", "a", ["10.3.3.3"]))
    res = Resources.of(objs)
    got = t.translate(res, now=NOW)
    assert t.endpoint_update_last is None
    assert got == gatewayapi.translate(res, now=NOW)
    sink = next(
        s
        for log in got.gateways["default/gw1"].access_logs
        for s in log.sinks
        if isinstance(s, ir.OpenTelemetryAccessLog)
    )
    assert sink.cluster.endpoints == (ir.Endpoint("10.3.3.3", 8080),)


def _step(rng: random.Random, objs: list[Resource]) -> str:
    op = rng.randrange(10)
    service = rng.choice(SERVICES)
    if op <= 4:  # the common case: a rollout step
        n = rng.randrange(0, 4)
        addrs = [f"10.{rng.randrange(3)}.{rng.randrange(3)}.{k}" for k in range(n)]
        _replace_slice(
            objs,
            _slice(service, rng.choice("ab"), addrs, ready=rng.random() > 0.2, port=8080),
        )
        return "slice"
    if op == 5:  # a slice goes away
        slices = [i for i, o in enumerate(objs) if isinstance(o, EndpointSlice)]
        if slices:
            del objs[rng.choice(slices)]
        return "slice"
    if op == 6:  # FQDN: the address type may flip
        _replace_slice(objs, _slice(service, "a", ["svc.example.net"], fqdn=True))
        return "slice"
    if op == 7:  # a route edit in the same step as a slice edit
        _replace_slice(objs, _slice(service, "a", [f"10.7.7.{rng.randrange(9)}"]))
        for i, o in enumerate(objs):
            if isinstance(o, HTTPRoute) and o.name == "r1":
                objs[i] = _route("r1", "gw1", rng.sample(SERVICES, 2), rng.choice(["/", "/x"]))
        return "mixed"
    if op == 8 and rng.random() < 0.5:  # a Backend's endpoints (sometimes a DNS name)
        addrs = [f"10.8.{rng.randrange(3)}.{k}" for k in range(rng.randrange(1, 3))]
        if rng.random() < 0.2:
            addrs = ["backend.example.net"]
        _replace_backend(objs, _backend("ext", *addrs))
        return "backend"
    if op == 8:  # a new route naming another Service
        objs.append(_route(f"n{rng.randrange(100)}", rng.choice(["gw1", "gw2"]), [service]))
        seen: set[tuple[str, str, str]] = set()
        objs[:] = [
            o
            for o in objs
            if not isinstance(o, HTTPRoute) or (o.key not in seen and not seen.add(o.key))
        ]
        return "route"
    # a Service edit: routes recompile
    for i, o in enumerate(objs):
        if o.KIND == "Service" and o.name == service:
            objs[i] = o.model_copy(deep=True)
    return "service"


@pytest.mark.parametrize("seed", range(16))
def test_edit_series_with_endpoint_edits_equal_full_translation(seed: int) -> None:
    rng = random.Random(seed)
    objs = _base()
    t = gatewayapi.Translator()
    t.translate(Resources.of(objs), now=NOW)
    took_endpoint_path = 0
    for _ in range(30):
        kind = _step(rng, objs)
        res = Resources.of(objs)
        got = t.translate(res, now=NOW)
        assert got == gatewayapi.translate(res, now=NOW), kind
        if t.endpoint_update_last is not None:
            took_endpoint_path += 1
            assert kind in ("slice", "backend")
            assert t.compiled_last == 0
    assert took_endpoint_path > 0
