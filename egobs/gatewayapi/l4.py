"""TCPRoute, UDPRoute and TLSRoute (passthrough) to IR routes.

These routes carry no matches, so a listener can only tell routes apart by SNI (TLS) or not
at all (TCP, UDP). Routes are therefore processed oldest first (creationTimestamp, then
``namespace/name``, as for HTTP precedence) and:

* a plain TCP or UDP listener serves the first route attached to it; later ones do not
  attach there;
* on a TLS passthrough listener each SNI hostname goes to the first route claiming it;
  a route whose hostnames are all taken does not attach there.

Either way Envoy never sees two filter chains with the same match, which it would reject.
"""

from __future__ import annotations

from dataclasses import dataclass

from egobs import ir
from egobs.gatewayapi.backends import TLS_ROUTE, UDP_ROUTE, Backends
from egobs.gatewayapi.parents import Parent
from egobs.gatewayapi.status import (
    R_NO_MATCHING_LISTENER_HOSTNAME,
    R_NOT_ALLOWED_BY_LISTENERS,
    R_UNSUPPORTED_VALUE,
    Issue,
)
from egobs.resources import TCPRoute, TLSRoute, UDPRoute

L4Route = TCPRoute | UDPRoute | TLSRoute

_PREFIX = {"TCPRoute": "tcproute", "UDPRoute": "udproute", "TLSRoute": "tlsroute"}


@dataclass(frozen=True, slots=True)
class CompiledL4Route:
    name: str
    destination: ir.RouteDestination | None  # None when the route is unusable
    invalid: Issue | None  # Accepted=False for every parent
    resolved_issues: tuple[Issue, ...]


def compile_l4(route: L4Route, backends: Backends) -> CompiledL4Route:
    kind = route.KIND
    name = f"{_PREFIX[kind]}/{route.namespace}/{route.name}/rule/0"
    rules = route.spec.rules
    if len(rules) != 1:
        # Without matches, several rules could not be told apart.
        issue = Issue(
            R_UNSUPPORTED_VALUE, f"a {kind} must have exactly one rule, this one has {len(rules)}"
        )
        return CompiledL4Route(name, None, issue, ())
    settings: list[ir.DestinationSetting] = []
    invalid = 0
    issues: list[Issue] = []
    for ref in rules[0].backend_refs:
        cluster, problem = backends.resolve(ref, kind, route.namespace)
        if problem is not None:
            issues.append(problem)
            invalid += ref.weight
        elif ref.weight:
            assert cluster is not None
            settings.append(ir.DestinationSetting(cluster, ref.weight))
    dest = ir.RouteDestination(name, tuple(settings), invalid)
    return CompiledL4Route(name, dest, None, tuple(issues))


def attach_l4(route: L4Route, compiled: CompiledL4Route, parent: Parent) -> Issue | None:
    """Attach to the parent's listeners, first come first served; None when attached."""
    assert compiled.destination is not None
    key = route.key
    ref = f"{route.KIND} {route.namespace}/{route.name}"
    attached = False
    taken_by: list[str] = []
    for ls, hosts in parent.listeners:
        if key in ls.attached:  # already attached through another parentRef
            attached = True
            continue
        if route.KIND == TLS_ROUTE:
            free = tuple(h for h in hosts if h not in ls.sni_claims)
            if not free:
                taken_by.append(f"{ls.name} ({ls.sni_claims[hosts[0]]})")
                continue
            for h in free:
                ls.sni_claims[h] = ref
            ls.attached.add(key)
            if ls.programmed:
                ls.tcp_routes.append(
                    ir.TCPRoute(compiled.name, compiled.destination, sni_hostnames=free)
                )
        else:
            if ls.l4_owner is not None:
                taken_by.append(f"{ls.name} ({ls.l4_owner})")
                continue
            ls.l4_owner = ref
            ls.attached.add(key)
            if ls.programmed:
                if route.KIND == UDP_ROUTE:
                    ls.udp_route = ir.UDPRoute(compiled.name, compiled.destination)
                else:
                    ls.tcp_routes.append(ir.TCPRoute(compiled.name, compiled.destination))
        attached = True
    if attached:
        return None
    if route.KIND == TLS_ROUTE:
        return Issue(
            R_NO_MATCHING_LISTENER_HOSTNAME,
            f"the route's hostnames are already served on listeners {', '.join(taken_by)}",
        )
    transport = "UDP" if route.KIND == UDP_ROUTE else "TCP"
    return Issue(
        R_NOT_ALLOWED_BY_LISTENERS,
        f"listeners {', '.join(taken_by)} already serve another route; "
        f"a {transport} listener serves one route",
    )
