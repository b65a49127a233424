"""Route attachment: which listeners a parentRef selects and allows, and the parent status.

Attachment follows the spec: it depends only on the parentRef (sectionName, port), the
listener's allowedRoutes (kinds, namespaces) and hostname intersection, never on whether the
listener or Gateway is valid; a route attached to an unprogrammed listener is counted in
``attachedRoutes`` but produces no configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from egobs.gatewayapi.backends import GATEWAY_GROUP
from egobs.gatewayapi.gateways import GatewayState, ListenerSetState, ListenerState
from egobs.gatewayapi.hostnames import intersect
from egobs.gatewayapi.index import Index
from egobs.gatewayapi.status import (
    ACCEPTED,
    PARTIALLY_INVALID,
    R_ACCEPTED,
    R_NO_MATCHING_LISTENER_HOSTNAME,
    R_NO_MATCHING_PARENT,
    R_NOT_ALLOWED_BY_LISTENERS,
    R_RESOLVED_REFS,
    R_UNSUPPORTED_VALUE,
    RESOLVED_REFS,
    Conditions,
    Issue,
)
from egobs.resources import Route
from egobs.resources.gatewayapi import ParentReference


@dataclass(eq=False)
class Parent:
    """One parentRef of a route that names a Gateway we own."""

    ref: ParentReference
    gateway: GatewayState
    # Listeners the route may attach to, with the hostnames it gets on each.
    listeners: list[tuple[ListenerState, tuple[str, ...]]] = field(default_factory=list)
    issue: Issue | None = None  # why it does not attach (Accepted=False)


def resolve_parents(
    route: Route,
    kind: str,
    hostnames: tuple[str, ...] | None,
    gateways: dict[tuple[str, str], GatewayState],
    index: Index,
    *,
    listener_sets: Mapping[tuple[str, str], ListenerSetState],
) -> list[Parent]:
    """The route's parentRefs to our Gateways and ListenerSets, each with the listeners
    that accept it.

    ``hostnames`` is None for kinds without hostnames (TCPRoute, UDPRoute). A Gateway
    parent offers its own listeners only, a ListenerSet parent its own (GEP-1713).
    ParentRefs to other kinds, to objects of other controllers or to objects that do not
    exist get no entry: the spec leaves those to whoever can see them.
    """
    out: list[Parent] = []
    for pref in _parent_refs(route, gateways):
        if pref.group != GATEWAY_GROUP:
            continue
        key = (pref.namespace or route.namespace, pref.name)
        if pref.kind == "Gateway":
            gw = gateways.get(key)
            if gw is None:
                continue
            parent = Parent(pref, gw)
            out.append(parent)
            selected = gw.own_listeners
            what = f"Gateway {gw.name}"
        elif pref.kind == "ListenerSet":
            lset = listener_sets.get(key)
            if lset is None:
                continue
            parent = Parent(pref, lset.gateway)
            out.append(parent)
            if lset.issue is not None:
                parent.issue = Issue(
                    R_NO_MATCHING_PARENT,
                    f"ListenerSet {key[0]}/{key[1]} is not attached: {lset.issue.message}",
                )
                continue
            selected = lset.listeners
            what = f"ListenerSet {key[0]}/{key[1]}"
        else:
            continue
        if pref.section_name is not None:
            selected = [ls for ls in selected if ls.name == pref.section_name]
        if pref.port is not None:
            selected = [ls for ls in selected if ls.port == pref.port]
        if not selected:
            parent.issue = Issue(R_NO_MATCHING_PARENT, _no_listener_message(pref, what))
            continue
        by_kind = [ls for ls in selected if kind in ls.supported_kinds]
        allowed = [ls for ls in by_kind if ls.allows_namespace(route.namespace, index)]
        if not allowed:
            if not by_kind:
                msg = f"no selected listener of {what} allows {kind}"
            else:
                msg = (
                    f"no selected listener of {what} allows routes from namespace {route.namespace}"
                )
            parent.issue = Issue(R_NOT_ALLOWED_BY_LISTENERS, msg)
            continue
        if hostnames is None:
            parent.listeners = [(ls, ()) for ls in allowed]
            continue
        for ls in allowed:
            hosts = intersect(ls.hostname, hostnames)
            if hosts:
                parent.listeners.append((ls, hosts))
        if not parent.listeners:
            parent.issue = Issue(
                R_NO_MATCHING_LISTENER_HOSTNAME,
                f"no hostname of the route matches a selected listener of {what}",
            )
    return out


def _parent_refs(
    route: Route, gateways: Mapping[tuple[str, str], GatewayState]
) -> list[ParentReference]:
    """The route's parentRefs, then, with ``useDefaultGateways: All``, one for each default
    Gateway of ours (``defaultScope: All``) it does not name already: GEP-3793 binds it to
    every such Gateway, which its status shows and its spec does not."""
    refs = list(route.spec.parent_refs)
    if route.spec.use_default_gateways != "All":
        return refs
    named = {
        (p.namespace or route.namespace, p.name)
        for p in refs
        if p.group == GATEWAY_GROUP and p.kind == "Gateway"
    }
    for key in sorted(gateways):
        gw = gateways[key]
        if gw.obj.spec.default_scope == "All" and key not in named:
            refs.append(ParentReference(namespace=key[0], name=key[1]))
    return refs


def _no_listener_message(pref: ParentReference, what: str) -> str:
    want = []
    if pref.section_name is not None:
        want.append(f"name {pref.section_name}")
    if pref.port is not None:
        want.append(f"port {pref.port}")
    return f"{what} has no listener with {' and '.join(want)}"


def parent_status(
    parent: Parent,
    route: Route,
    controller_name: str,
    accepted: Issue | None,
    resolved: list[Issue],
    dropped: list[tuple[int, str]],
    conds: Conditions,
) -> dict[str, Any]:
    """One entry of ``status.parents``: the parentRef echoed with its defaults filled in."""
    pref = parent.ref
    gen = route.metadata.generation
    ref: dict[str, Any] = {
        "group": pref.group,
        "kind": pref.kind,
        "namespace": pref.namespace or route.namespace,
        "name": pref.name,
    }
    if pref.section_name is not None:
        ref["sectionName"] = pref.section_name
    if pref.port is not None:
        ref["port"] = pref.port
    if accepted is None:
        conditions = [conds.make(ACCEPTED, True, R_ACCEPTED, "Route is accepted", gen)]
    else:
        conditions = [conds.make(ACCEPTED, False, accepted.reason, accepted.message, gen)]
    conditions.append(
        conds.from_issues(
            RESOLVED_REFS, resolved, R_RESOLVED_REFS, "All references are resolved", gen
        )
    )
    if accepted is None and dropped:
        # The spec's "Drop Rule(s)" approach: message must start with "Dropped Rule".
        rules = ", ".join(str(i) for i, _ in dropped)
        msg = f"Dropped Rule {rules}: {describe_dropped(dropped)}"
        conditions.append(conds.make(PARTIALLY_INVALID, True, R_UNSUPPORTED_VALUE, msg, gen))
    return {"parentRef": ref, "controllerName": controller_name, "conditions": conditions}


def describe_dropped(dropped: list[tuple[int, str]] | tuple[tuple[int, str], ...]) -> str:
    return "; ".join(f"rule {i}: {why}" for i, why in dropped)
