"""The Gateway API translator: typed resources in, xDS IR + infra IR + statuses out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from egobs import ir
from egobs.gatewayapi.backends import GRPC_ROUTE, HTTP_ROUTE, Backends
from egobs.gatewayapi.gateways import (
    ClassState,
    GatewayState,
    class_status,
    gateway_status,
    listener_ir,
    process_class,
    process_gateway,
)
from egobs.gatewayapi.http import CompiledHTTPRoute, compile_grpc, compile_http, stamp
from egobs.gatewayapi.index import Index
from egobs.gatewayapi.l4 import L4Route, attach_l4, compile_l4, precedence
from egobs.gatewayapi.parents import describe_dropped, parent_status, resolve_parents
from egobs.gatewayapi.status import R_UNSUPPORTED_VALUE, Conditions, Issue, rfc3339_now
from egobs.resources import GRPCRoute, HTTPRoute, Resources, TLSRoute

DEFAULT_CONTROLLER_NAME = "gateway.egobs.dev/gatewayclass-controller"

StatusKey = tuple[str, str, str]


@dataclass(frozen=True)
class Result:
    """What one translation produces.

    ``gateways`` and ``proxies`` hold the programmed Gateways of accepted classes, by
    ``<ns>/<name>``. ``statuses`` maps ``(kind, namespace, name)`` (namespace ``""`` for
    GatewayClasses) to the object's ``status``, for every GatewayClass and Gateway we own
    and every route with a parentRef to one of our Gateways.
    """

    gateways: dict[str, ir.Gateway]
    proxies: dict[str, ir.Proxy]
    statuses: dict[StatusKey, dict[str, Any]]


def translate(
    resources: Resources,
    *,
    controller_name: str = DEFAULT_CONTROLLER_NAME,
    now: str | None = None,
) -> Result:
    """Translate one consistent set of resources. Pure: same input, same output."""
    return _Translation(resources, controller_name, now or rfc3339_now(), None).run()


# What compiling an HTTPRoute/GRPCRoute reads besides the route itself: backend resolution
# looks at these kinds (GRPCRoutes because any gRPC reference makes a cluster HTTP/2).
_BACKEND_INPUTS = (
    "services",
    "endpoint_slices",
    "backends",
    "reference_grants",
    "namespaces",
    "grpc_routes",
)


class Translator:
    """:func:`translate` that remembers compiled routes between runs.

    A route is recompiled only when its object changed (the file provider keeps the very same
    objects for files it did not reload) or when anything backend resolution reads changed.
    Output equals :func:`translate`'s for the same input.
    """

    def __init__(self, *, controller_name: str = DEFAULT_CONTROLLER_NAME) -> None:
        self.controller_name = controller_name
        self._inputs: tuple[list[Any], ...] = ()
        self._compiled: dict[StatusKey, tuple[object, CompiledHTTPRoute]] = {}
        self.compiled_last = 0  # routes compiled by the last run, for tests and metrics

    def translate(self, resources: Resources, *, now: str | None = None) -> Result:
        inputs = tuple(list(getattr(resources, attr)) for attr in _BACKEND_INPUTS)
        if not _same_objects(inputs, self._inputs):
            self._compiled = {}
            self._inputs = inputs
        run = _Translation(resources, self.controller_name, now or rfc3339_now(), self)
        result = run.run()
        live = run.seen_routes
        self._compiled = {k: v for k, v in self._compiled.items() if k in live}
        self.compiled_last = run.compiled
        return result

    def _lookup(self, route: object, key: StatusKey) -> CompiledHTTPRoute | None:
        hit = self._compiled.get(key)
        return hit[1] if hit is not None and hit[0] is route else None

    def _store(self, route: object, key: StatusKey, compiled: CompiledHTTPRoute) -> None:
        self._compiled[key] = (route, compiled)


def _same_objects(a: tuple[list[Any], ...], b: tuple[list[Any], ...]) -> bool:
    if len(a) != len(b):
        return False
    for xs, ys in zip(a, b, strict=True):
        if len(xs) != len(ys) or any(x is not y for x, y in zip(xs, ys, strict=True)):
            return False
    return True


class _Translation:
    def __init__(
        self, resources: Resources, controller_name: str, now: str, memo: Translator | None
    ) -> None:
        self.memo = memo
        self.seen_routes: set[StatusKey] = set()
        self.compiled = 0
        self.resources = resources
        self.controller = controller_name
        self.conds = Conditions(now)
        self.index = Index(resources)
        self.backends = Backends(self.index, resources)
        self.statuses: dict[StatusKey, dict[str, Any]] = {}
        self.classes: dict[str, ClassState] = {}
        self.gateways: dict[tuple[str, str], GatewayState] = {}

    def run(self) -> Result:
        for cls in self.resources.gateway_classes:
            if cls.spec.controller_name == self.controller:
                state = process_class(cls, self.index)
                self.classes[cls.name] = state
                self.statuses[("GatewayClass", "", cls.name)] = class_status(state, self.conds)
        for gw in self.resources.gateways:
            cls_state = self.classes.get(gw.spec.gateway_class_name)
            if cls_state is not None:
                self.gateways[(gw.namespace, gw.name)] = process_gateway(gw, cls_state, self.index)
        if self.gateways:
            self._http_routes(HTTP_ROUTE, self.resources.http_routes)
            self._http_routes(GRPC_ROUTE, self.resources.grpc_routes)
            for routes in (
                self.resources.tls_routes,
                self.resources.tcp_routes,
                self.resources.udp_routes,
            ):
                self._l4_routes(routes)
        return self._result()

    # ------------------------------------------------------------------ routes

    def _http_routes(self, kind: str, routes: list[HTTPRoute] | list[GRPCRoute]) -> None:
        for route in routes:
            parents = resolve_parents(
                route, kind, tuple(route.spec.hostnames), self.gateways, self.index
            )
            if not parents:
                continue
            key = route.key
            self.seen_routes.add(key)
            compiled = self.memo._lookup(route, key) if self.memo is not None else None
            if compiled is None:
                compiled = (
                    compile_http(route, self.backends)
                    if isinstance(route, HTTPRoute)
                    else compile_grpc(route, self.backends)
                )
                self.compiled += 1
                if self.memo is not None:
                    self.memo._store(route, key, compiled)
            invalid = None
            if compiled.all_dropped:
                invalid = Issue(
                    R_UNSUPPORTED_VALUE,
                    "every rule is invalid: " + describe_dropped(compiled.dropped),
                )
            entries = []
            for parent in parents:
                issue = invalid or parent.issue
                if issue is None:
                    for ls, hosts in parent.listeners:
                        if key in ls.attached:
                            continue
                        ls.attached.add(key)
                        if ls.programmed:
                            for host in hosts:
                                ls.http_entries.extend(stamp(compiled.entries, host))
                entries.append(
                    parent_status(
                        parent,
                        route,
                        self.controller,
                        issue,
                        list(compiled.resolved_issues),
                        list(compiled.dropped),
                        self.conds,
                    )
                )
            self.statuses[key] = {"parents": entries}

    def _l4_routes(self, routes: Sequence[L4Route]) -> None:
        for route in sorted(routes, key=precedence):
            hostnames = tuple(route.spec.hostnames) if isinstance(route, TLSRoute) else None
            parents = resolve_parents(route, route.KIND, hostnames, self.gateways, self.index)
            if not parents:
                continue
            compiled = compile_l4(route, self.backends)
            entries = []
            for parent in parents:
                issue = compiled.invalid or parent.issue
                if issue is None:
                    issue = attach_l4(route, compiled, parent)
                entries.append(
                    parent_status(
                        parent,
                        route,
                        self.controller,
                        issue,
                        list(compiled.resolved_issues),
                        [],
                        self.conds,
                    )
                )
            self.statuses[route.key] = {"parents": entries}

    # ------------------------------------------------------------------ output

    def _result(self) -> Result:
        gateways: dict[str, ir.Gateway] = {}
        proxies: dict[str, ir.Proxy] = {}
        for gw in self.gateways.values():
            self.statuses[("Gateway", gw.obj.namespace, gw.obj.name)] = gateway_status(
                gw, self.conds
            )
            if not gw.programmed:
                continue
            http: list[ir.HTTPListener] = []
            tcp: list[ir.TCPListener] = []
            udp: list[ir.UDPListener] = []
            proxy_listeners: list[ir.ProxyListener] = []
            for ls in gw.listeners:
                if not ls.programmed:
                    continue
                assert ls.protocol is not None
                lir = listener_ir(ls)
                if isinstance(lir, ir.HTTPListener):
                    http.append(lir)
                elif isinstance(lir, ir.TCPListener):
                    tcp.append(lir)
                else:
                    udp.append(lir)
                proxy_listeners.append(
                    ir.ProxyListener(ls.ir_name, ir.Protocol(ls.protocol), ls.port)
                )
            gateways[gw.name] = ir.Gateway(
                name=gw.name, http=tuple(http), tcp=tuple(tcp), udp=tuple(udp)
            )
            proxies[gw.name] = ir.Proxy(
                name=gw.name,
                gateway_class=gw.cls.obj.name,
                listeners=tuple(proxy_listeners),
                config=gw.config,
            )
        return Result(gateways=gateways, proxies=proxies, statuses=self.statuses)
