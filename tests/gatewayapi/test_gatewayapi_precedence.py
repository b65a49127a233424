"""Route precedence within a listener (the IR order is Envoy's first-match order), and a
few direct properties of :func:`egobs.gatewayapi.translate`."""

from __future__ import annotations

import re
from typing import Any

from egobs import ir
from egobs.gatewayapi import DEFAULT_CONTROLLER_NAME, translate
from egobs.gatewayapi.http import grpc_path, regex_problem
from egobs.resources import Resources, Source, parse_object
from egobs.resources.gatewayapi import GRPCMethodMatch

SRC = Source("test", 1, 1)


def _resources(*routes: dict[str, Any], controller: str = DEFAULT_CONTROLLER_NAME) -> Resources:
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "c"},
            "spec": {"controllerName": controller},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {
                "gatewayClassName": "c",
                "listeners": [
                    {
                        "name": "http",
                        "protocol": "HTTP",
                        "port": 80,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]},
        },
        *routes,
    ]
    return Resources.of(parse_object(o, SRC) for o in objs)


def _route(
    name: str, matches: list[dict[str, Any]], created: str | None = None, ns: str = "default"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "default"}],
            "rules": [
                {
                    "matches": matches,
                    "backendRefs": [{"name": "svc", "namespace": "default", "port": 80}],
                }
            ],
        },
    }


def _order(resources: Resources) -> list[str]:
    result = translate(resources, now="2026-01-01T00:00:00Z")
    (listener,) = result.gateways["default/gw"].http
    return [
        r.name.removeprefix("httproute/").removesuffix("/rule/0/match/0") for r in listener.routes
    ]


def test_path_type_then_length() -> None:
    res = _resources(
        _route("prefix-short", [{"path": {"type": "PathPrefix", "value": "/a"}}]),
        _route("prefix-long", [{"path": {"type": "PathPrefix", "value": "/a/b/c"}}]),
        _route("regex", [{"path": {"type": "RegularExpression", "value": "/a/.*/c/d/e/f"}}]),
        _route("exact-short", [{"path": {"type": "Exact", "value": "/z"}}]),
        _route("exact-long", [{"path": {"type": "Exact", "value": "/a/b/c/d"}}]),
    )
    assert _order(res) == [
        "default/exact-long",
        "default/exact-short",
        "default/regex",
        "default/prefix-long",
        "default/prefix-short",
    ]


def test_method_then_headers_then_query_params() -> None:
    p = {"type": "PathPrefix", "value": "/x"}
    res = _resources(
        _route("plain", [{"path": p}]),
        _route("query", [{"path": p, "queryParams": [{"name": "q", "value": "1"}]}]),
        _route(
            "two-headers",
            [{"path": p, "headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}],
        ),
        _route("one-header", [{"path": p, "headers": [{"name": "a", "value": "1"}]}]),
        _route(
            "one-regex-header",
            [{"path": p, "headers": [{"name": "a", "type": "RegularExpression", "value": "1.*"}]}],
        ),
        _route("method", [{"path": p, "method": "POST"}]),
    )
    assert _order(res) == [
        "default/method",
        "default/two-headers",
        "default/one-header",
        "default/one-regex-header",
        "default/query",
        "default/plain",
    ]


def test_ties_go_to_the_oldest_route_then_namespace_and_name() -> None:
    m = [{"path": {"type": "PathPrefix", "value": "/same"}}]
    res = _resources(
        _route("a", m, created="2025-01-02T00:00:00Z"),
        _route("z", m, created="2025-01-01T00:00:00Z"),
        _route("b", m, created="2025-01-02T00:00:00Z", ns="a-ns"),
        _route("c", m, created="2025-01-02T00:00:00Z"),
    )
    assert _order(res) == ["default/z", "a-ns/b", "default/a", "default/c"]


def test_within_a_route_rule_then_match_order() -> None:
    route = _route(
        "r",
        [
            {"path": {"type": "PathPrefix", "value": "/p"}},
            {"path": {"type": "PathPrefix", "value": "/q"}},
        ],
    )
    route["spec"]["rules"].insert(
        0, {"matches": [{"path": {"type": "PathPrefix", "value": "/z"}}], "backendRefs": []}
    )
    result = translate(_resources(route), now="2026-01-01T00:00:00Z")
    names = [r.name for r in result.gateways["default/gw"].http[0].routes]
    assert names == [
        "httproute/default/r/rule/0/match/0",
        "httproute/default/r/rule/1/match/0",
        "httproute/default/r/rule/1/match/1",
    ]


def test_grpc_method_matches_become_paths() -> None:
    def path(**kw: Any) -> tuple[str, str]:
        pm = grpc_path(GRPCMethodMatch(**kw))
        return pm.type.value, pm.value

    assert grpc_path(None) == ir.PathMatch(ir.StringMatchType.PREFIX, "/")
    assert path(service="pkg.Svc", method="Get") == ("Exact", "/pkg.Svc/Get")
    assert path(service="pkg.Svc") == ("PathPrefix", "/pkg.Svc")
    assert path(method="Get") == ("RegularExpression", "/[^/]+/Get")
    assert path(type="RegularExpression", service="pkg\\..*") == (
        "RegularExpression",
        "/pkg\\..*/[^/]+",
    )
    assert path(type="RegularExpression", method="A|B") == ("RegularExpression", "/[^/]+/(?:A|B)")
    # The regex really matches gRPC paths of the method only.
    assert re.fullmatch(path(method="Get")[1], "/pkg.Svc/Get")
    assert not re.fullmatch(path(method="Get")[1], "/pkg.Svc/GetAll")


def test_regexes_re2_would_refuse_are_detected() -> None:
    assert regex_problem("/v[0-9]+/.*") is None
    assert regex_problem("(unclosed") is not None
    assert regex_problem("(?=x)y") is not None
    assert regex_problem("(a)\\1") is not None


def test_default_now_is_rfc3339_utc_seconds() -> None:
    result = translate(_resources())
    cond = result.statuses[("GatewayClass", "", "c")]["conditions"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cond["lastTransitionTime"])


def test_controller_name_selects_the_classes_we_own() -> None:
    res = _resources(
        _route("r", [{"path": {"type": "PathPrefix", "value": "/"}}]),
        controller="example.com/other",
    )
    result = translate(res, now="2026-01-01T00:00:00Z")
    assert result.gateways == {} and result.proxies == {} and result.statuses == {}
    mine = translate(res, controller_name="example.com/other", now="2026-01-01T00:00:00Z")
    assert set(mine.gateways) == {"default/gw"}
    parent = mine.statuses[("HTTPRoute", "default", "r")]["parents"][0]
    assert parent["controllerName"] == "example.com/other"


def test_translation_is_pure() -> None:
    res = _resources(_route("r", [{"path": {"type": "PathPrefix", "value": "/"}}]))
    assert translate(res, now="2026-01-01T00:00:00Z") == translate(res, now="2026-01-01T00:00:00Z")
