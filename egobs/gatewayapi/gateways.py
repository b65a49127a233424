"""GatewayClasses, Gateways and their Listeners: validation, conflicts, TLS material.

Route attachment (allowedRoutes, attachedRoutes) is decided by the route translators, which
record into :class:`ListenerState`; this module owns everything known before any route is
looked at, so every listener's ``programmed`` flag is final when routes are processed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from egobs import ir
from egobs.gatewayapi.backends import EG_GROUP, GATEWAY_GROUP
from egobs.gatewayapi.certificates import certificate_problem
from egobs.gatewayapi.entries import RouteEntry, SortKey
from egobs.gatewayapi.hostnames import intersect_one
from egobs.gatewayapi.index import Index
from egobs.gatewayapi.status import (
    ACCEPTED,
    CONFLICTED,
    OVERLAPPING_TLS_CONFIG,
    PROGRAMMED,
    R_ACCEPTED,
    R_ADDRESS_NOT_USABLE,
    R_HOSTNAME_CONFLICT,
    R_INVALID,
    R_INVALID_CERTIFICATE_REF,
    R_INVALID_PARAMETERS,
    R_INVALID_ROUTE_KINDS,
    R_LISTENERS_NOT_VALID,
    R_NO_CONFLICTS,
    R_OVERLAPPING_HOSTNAMES,
    R_PARTIALLY_INVALID_CERTIFICATE_REF,
    R_PROGRAMMED,
    R_PROTOCOL_CONFLICT,
    R_REF_NOT_PERMITTED,
    R_RESOLVED_REFS,
    R_UNSUPPORTED_ADDRESS,
    R_UNSUPPORTED_PROTOCOL,
    R_UNSUPPORTED_VALUE,
    RESOLVED_REFS,
    Conditions,
    Issue,
    join_messages,
)
from egobs.gatewayapi.telemetry import Compiled, CompiledTelemetry
from egobs.resources import EnvoyProxy, Gateway, GatewayClass
from egobs.resources.gatewayapi import LabelSelector, Listener

# Every listener binds all interfaces; port remapping for unprivileged runs happens later.
BIND_ADDRESS = "0.0.0.0"

DEFAULT_KINDS: dict[str, tuple[str, ...]] = {
    "HTTP": ("HTTPRoute", "GRPCRoute"),
    "HTTPS": ("HTTPRoute", "GRPCRoute"),
    "TLS": ("TLSRoute",),
    "TCP": ("TCPRoute",),
    "UDP": ("UDPRoute",),
}

# Listeners on one port must agree on this; HTTPS and TLS both select by SNI, so they mix.
_FAMILY = {"HTTP": "HTTP", "HTTPS": "TLS", "TLS": "TLS", "TCP": "TCP", "UDP": "UDP"}

_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_PEM_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")


def _group_kind(group: str, kind: str) -> str:
    return f"{group}/{kind}" if group else kind


# --------------------------------------------------------------------------- GatewayClass


# Compiles an EnvoyProxy's telemetry (None: the defaults alone); see gatewayapi.telemetry.
CompileTelemetry = Callable[[EnvoyProxy | None], Compiled]


@dataclass(eq=False)
class ClassState:
    obj: GatewayClass
    issue: Issue | None  # why it is not accepted
    config: str | None  # "<ns>/<name>" of its EnvoyProxy
    telemetry: CompiledTelemetry | None = None  # what its Gateways serve, when accepted
    # Its EnvoyProxy cannot be translated, but had telemetry that could, which is served:
    # reported as not accepted without rejecting anything.
    parameters_issue: Issue | None = None

    @property
    def accepted(self) -> bool:
        return self.issue is None


def process_class(
    cls: GatewayClass, index: Index, compile_telemetry: CompileTelemetry
) -> ClassState:
    ref = cls.spec.parameters_ref
    if ref is None:
        return _with_telemetry(ClassState(cls, None, None), None, compile_telemetry)
    if ref.group != EG_GROUP or ref.kind != "EnvoyProxy":
        return ClassState(
            cls,
            Issue(
                R_INVALID_PARAMETERS,
                f"parametersRef must point to a {EG_GROUP} EnvoyProxy, "
                f"not {_group_kind(ref.group, ref.kind)}",
            ),
            None,
        )
    if not ref.namespace:
        return ClassState(
            cls,
            Issue(R_INVALID_PARAMETERS, "parametersRef to an EnvoyProxy must set namespace"),
            None,
        )
    proxy = index.envoy_proxies.get((ref.namespace, ref.name))
    if proxy is None:
        return ClassState(
            cls,
            Issue(R_INVALID_PARAMETERS, f"EnvoyProxy {ref.namespace}/{ref.name} not found"),
            None,
        )
    state = ClassState(cls, None, f"{ref.namespace}/{ref.name}")
    return _with_telemetry(state, proxy, compile_telemetry)


def _with_telemetry(
    state: ClassState, proxy: EnvoyProxy | None, compile_telemetry: CompileTelemetry
) -> ClassState:
    compiled = compile_telemetry(proxy)
    state.telemetry = compiled.telemetry
    if compiled.telemetry is None:
        state.issue = compiled.issue
    else:
        state.parameters_issue = compiled.issue
    return state


def class_status(state: ClassState, conds: Conditions) -> dict[str, Any]:
    gen = state.obj.metadata.generation
    issue = state.issue or state.parameters_issue
    if issue is None:
        cond = conds.make(ACCEPTED, True, R_ACCEPTED, "GatewayClass is accepted", gen)
    else:
        cond = conds.make(ACCEPTED, False, issue.reason, issue.message, gen)
    return {"conditions": [cond]}


# --------------------------------------------------------------------------- Listener


@dataclass(eq=False)
class ListenerState:
    """One Gateway listener: its validity, and what routes attached to it."""

    gateway: GatewayState
    spec: Listener
    protocol: str | None  # upper-case core protocol, None when unsupported
    ir_name: str
    accepted_issue: Issue | None = None
    conflict: Issue | None = None
    cert_issues: list[Issue] = field(default_factory=list)  # one per unusable certificateRef
    kind_issue: Issue | None = None
    supported_kinds: tuple[str, ...] = ()
    certificates: tuple[ir.Certificate, ...] = ()
    programmed: bool = False
    # Listeners on the same port whose hostnames overlap this one's (OverlappingTLSConfig).
    tls_overlaps: list[ListenerState] = field(default_factory=list)
    # Filled while routes are processed.
    attached: set[tuple[str, str, str]] = field(default_factory=set)
    http_entries: list[RouteEntry] = field(default_factory=list)
    http_sorted: bool = False  # http_entries already in final order
    tcp_routes: list[ir.TCPRoute] = field(default_factory=list)
    udp_route: ir.UDPRoute | None = None
    l4_owner: str | None = None  # the one route a plain TCP/UDP listener serves
    sni_claims: dict[str, str] = field(default_factory=dict)  # TLS passthrough: SNI -> route
    _ns_allowed: dict[str, bool] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def hostname(self) -> str | None:
        return self.spec.hostname

    @property
    def certificates_usable(self) -> bool:
        """No bad certificateRef, or some good ones to serve (a partly invalid list)."""
        return not self.cert_issues or bool(self.certificates)

    @property
    def valid(self) -> bool:
        """Configurable on its own: accepted, distinct, certificates usable, some route kind."""
        return (
            self.accepted_issue is None
            and self.conflict is None
            and self.certificates_usable
            and bool(self.supported_kinds)
        )

    def allows_namespace(self, namespace: str, index: Index) -> bool:
        hit = self._ns_allowed.get(namespace)
        if hit is None:
            hit = _namespace_allowed(self.spec, self.gateway.obj.namespace, namespace, index)
            self._ns_allowed[namespace] = hit
        return hit


def _namespace_allowed(spec: Listener, gw_ns: str, namespace: str, index: Index) -> bool:
    rn = spec.allowed_routes.namespaces
    if rn.from_ == "All":
        return True
    if rn.from_ == "Same":
        return namespace == gw_ns
    selector: LabelSelector | None = rn.selector
    return selector is not None and selector.matches(index.namespace_labels(namespace))


def _client_validation(gateway: Gateway, port: int) -> bool:
    """Whether the Gateway's ``spec.tls.frontend`` validates client certificates on ``port``
    (its per-port entry, else its default)."""
    tls = gateway.spec.tls
    frontend = tls.frontend if tls is not None else None
    if frontend is None:
        return False
    config = next((p.tls for p in frontend.per_port if p.port == port), frontend.default)
    return config.validation is not None


def _make_listener(gw: GatewayState, spec: Listener, index: Index, now: datetime) -> ListenerState:
    raw = spec.protocol
    # Core protocol names are case-insensitive per the spec.
    protocol = raw.upper() if raw.upper() in DEFAULT_KINDS else None
    state = ListenerState(gw, spec, protocol, f"{gw.name}/{spec.name}")
    if protocol is None:
        state.accepted_issue = Issue(
            R_UNSUPPORTED_PROTOCOL,
            f"protocol {raw} is not supported; use HTTP, HTTPS, TLS, TCP or UDP",
        )
        return state
    tls = spec.tls
    if protocol == "HTTPS":
        if tls is None or tls.mode != "Terminate" or not tls.certificate_refs:
            state.accepted_issue = Issue(
                R_UNSUPPORTED_VALUE,
                "an HTTPS listener needs tls.mode Terminate and certificateRefs",
            )
            return state
        if _client_validation(gw.obj, spec.port):
            # Fail closed: serving it without the client-certificate check it asks for
            # would let in every client the Gateway means to refuse.
            state.accepted_issue = Issue(
                R_UNSUPPORTED_VALUE,
                f"spec.tls.frontend asks for client certificate validation on port "
                f"{spec.port}, which egobs does not implement; the listener is not served "
                "rather than served without it",
            )
            return state
        state.certificates, state.cert_issues = _certificates(gw.obj, spec, index, now)
    elif protocol == "TLS":
        if tls is None or tls.mode != "Passthrough":
            state.accepted_issue = Issue(
                R_UNSUPPORTED_VALUE,
                "TLS listeners support only tls.mode Passthrough; "
                "use an HTTPS listener to terminate TLS",
            )
            return state
        # certificateRefs are ignored in Passthrough mode, as the spec says.
    elif tls is not None:
        state.accepted_issue = Issue(
            R_UNSUPPORTED_VALUE, f"tls must not be set on a {protocol} listener"
        )
        return state
    elif protocol in ("TCP", "UDP") and spec.hostname is not None:
        state.accepted_issue = Issue(
            R_UNSUPPORTED_VALUE, f"hostname must not be set on a {protocol} listener"
        )
        return state
    namespaces = spec.allowed_routes.namespaces
    if namespaces.from_ == "Selector":
        if namespaces.selector is None:
            problem: str | None = "allowedRoutes.namespaces: from Selector needs a selector"
        else:
            problem = namespaces.selector.problem()
            if problem is not None:
                problem = f"allowedRoutes.namespaces.selector: {problem}"
        if problem is not None:
            state.accepted_issue = Issue(R_UNSUPPORTED_VALUE, problem)
            return state
    state.supported_kinds, state.kind_issue = _supported_kinds(spec, protocol)
    return state


def _supported_kinds(spec: Listener, protocol: str) -> tuple[tuple[str, ...], Issue | None]:
    defaults = DEFAULT_KINDS[protocol]
    if not spec.allowed_routes.kinds:
        return defaults, None
    kinds: list[str] = []
    bad: list[str] = []
    for rgk in spec.allowed_routes.kinds:
        if rgk.group == GATEWAY_GROUP and rgk.kind in defaults:
            if rgk.kind not in kinds:
                kinds.append(rgk.kind)
        else:
            bad.append(rgk.kind if rgk.group == GATEWAY_GROUP else _group_kind(rgk.group, rgk.kind))
    issue = None
    if bad:
        issue = Issue(
            R_INVALID_ROUTE_KINDS,
            f"route kinds {', '.join(bad)} are not supported here: "
            f"{protocol} listeners accept {', '.join(defaults)}",
        )
    return tuple(kinds), issue


def _certificates(
    gw: Gateway, spec: Listener, index: Index, now: datetime
) -> tuple[tuple[ir.Certificate, ...], list[Issue]]:
    assert spec.tls is not None
    certs: list[ir.Certificate] = []
    issues: list[Issue] = []
    for ref in spec.tls.certificate_refs:
        ns = ref.namespace or gw.namespace
        where = f"{ns}/{ref.name}"
        if ref.group != "" or ref.kind != "Secret":
            shown = _group_kind(ref.group, ref.kind)
            issues.append(
                Issue(
                    R_INVALID_CERTIFICATE_REF,
                    f"certificateRef {shown} {where} is not a core Secret",
                )
            )
            continue
        # Permission before existence, so a refused reference reveals nothing.
        if not index.grants.allowed(
            GATEWAY_GROUP, "Gateway", gw.namespace, "", "Secret", ns, ref.name
        ):
            issues.append(
                Issue(
                    R_REF_NOT_PERMITTED,
                    f"certificateRef to Secret {where} is not permitted by any ReferenceGrant",
                )
            )
            continue
        secret = index.secrets.get((ns, ref.name))
        if secret is None:
            issues.append(Issue(R_INVALID_CERTIFICATE_REF, f"Secret {where} not found"))
            continue
        if secret.type != "kubernetes.io/tls":
            issues.append(
                Issue(
                    R_INVALID_CERTIFICATE_REF,
                    f"Secret {where} has type {secret.type}, want kubernetes.io/tls",
                )
            )
            continue
        crt = secret.value("tls.crt")
        key = secret.value("tls.key")
        if not crt or _PEM_CERT not in crt:
            issues.append(
                Issue(
                    R_INVALID_CERTIFICATE_REF, f"Secret {where}: tls.crt holds no PEM certificate"
                )
            )
            continue
        if not key or not _PEM_KEY.search(key):
            issues.append(
                Issue(
                    R_INVALID_CERTIFICATE_REF, f"Secret {where}: tls.key holds no PEM private key"
                )
            )
            continue
        problem = certificate_problem(crt, key, now=now)
        if problem is not None:
            issues.append(Issue(R_INVALID_CERTIFICATE_REF, f"Secret {where}: {problem}"))
            continue
        certs.append(ir.Certificate(name=where, cert_pem=crt, key_pem=key))
    return tuple(certs), issues


def _certificate_issue(ls: ListenerState) -> Issue | None:
    """What is wrong with a listener's certificateRefs, as one ResolvedRefs issue.

    A listener serves the usable references even when others are not (Envoy Gateway does
    the same), so ResolvedRefs=False alone no longer means "not served": the reason tells
    apart PartiallyInvalidCertificateRef (served with the rest) from InvalidCertificateRef
    (nothing to serve, not programmed). RefNotPermitted wins over both because the spec
    makes it a MUST whenever a ReferenceGrant does not allow a reference.
    """
    issues = ls.cert_issues
    if not issues:
        return None
    message = join_messages(issues)
    if ls.certificates:
        total = len(issues) + len(ls.certificates)  # one of the two per reference
        message = (
            f"{len(issues)} of {total} certificateRefs cannot be used and are not served; "
            f"the listener serves the others: {message}"
        )
    if any(issue.reason == R_REF_NOT_PERMITTED for issue in issues):
        reason = R_REF_NOT_PERMITTED
    elif ls.certificates:
        reason = R_PARTIALLY_INVALID_CERTIFICATE_REF
    else:
        reason = R_INVALID_CERTIFICATE_REF
    return Issue(reason, message)


def _mark_conflicts(listeners: list[ListenerState]) -> None:
    """Conflicted listeners per the spec's distinctness rules.

    The spec forbids picking a winner among indistinct listeners: every listener of a
    conflicting set is marked, not just the later ones.
    """
    by_port: dict[tuple[int, str], list[ListenerState]] = {}
    for ls in listeners:
        if ls.protocol is None or ls.accepted_issue is not None:
            continue
        # TCP and UDP are different sockets, so they never clash with each other.
        transport = "UDP" if ls.protocol == "UDP" else "TCP"
        by_port.setdefault((ls.port, transport), []).append(ls)
    for (port, _), group in by_port.items():
        if len(group) < 2:
            continue
        families = {_FAMILY[ls.protocol] for ls in group if ls.protocol}
        if len(families) > 1:
            names = ", ".join(f"{ls.name} ({ls.protocol})" for ls in group)
            issue = Issue(
                R_PROTOCOL_CONFLICT,
                f"port {port} is shared by listeners of incompatible protocols: {names}",
            )
            for ls in group:
                ls.conflict = issue
            continue
        family = families.pop()
        if family in ("TCP", "UDP"):
            names = ", ".join(ls.name for ls in group)
            issue = Issue(
                R_PROTOCOL_CONFLICT, f"only one {family} listener may use port {port}: {names}"
            )
            for ls in group:
                ls.conflict = issue
            continue
        by_host: dict[str, list[ListenerState]] = {}
        for ls in group:
            by_host.setdefault(ls.hostname or "", []).append(ls)
        for host, same in by_host.items():
            if len(same) > 1:
                names = ", ".join(ls.name for ls in same)
                shown = host or "(any hostname)"
                issue = Issue(
                    R_HOSTNAME_CONFLICT, f"listeners {names} on port {port} share hostname {shown}"
                )
                for ls in same:
                    ls.conflict = issue


def _mark_tls_overlaps(listeners: list[ListenerState]) -> None:
    """Record, per HTTPS/TLS listener, the same-port ones whose hostnames overlap it.

    The spec's OverlappingTLSConfig: an HTTP/2 client may reuse a TLS connection made for
    one hostname for another the presented certificate also covers, so a request can
    reach the listener its SNI chose rather than the one its Host names. TLS passthrough
    listeners count too: the backend's certificate coalesces connections the same way, and
    an HTTPS listener's certificate can draw a passthrough hostname's requests. Conflicted
    listeners are included, as the spec wants the condition on every overlapping listener;
    listeners not accepted have no usable TLS settings and are left out.
    """
    by_port: dict[int, list[ListenerState]] = {}
    for ls in listeners:
        if ls.protocol in ("HTTPS", "TLS") and ls.accepted_issue is None:
            by_port.setdefault(ls.port, []).append(ls)
    for group in by_port.values():
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                if _hostnames_overlap(first.hostname, second.hostname):
                    first.tls_overlaps.append(second)
                    second.tls_overlaps.append(first)


def _hostnames_overlap(a: str | None, b: str | None) -> bool:
    """Some SNI both match; an unset hostname matches every one."""
    return a is None or b is None or intersect_one(a, b) is not None


# --------------------------------------------------------------------------- Gateway


@dataclass(eq=False)
class GatewayState:
    obj: Gateway
    cls: ClassState
    name: str  # "<ns>/<name>"
    listeners: list[ListenerState] = field(default_factory=list)
    accepted_issue: Issue | None = None  # rejects the whole Gateway
    address_issue: Issue | None = None
    config: str | None = None
    telemetry: CompiledTelemetry | None = None  # set when the Gateway is accepted
    # Its (or its class's) EnvoyProxy cannot be translated but its last good telemetry is
    # served: Accepted says so, nothing is rejected (see ClassState.parameters_issue).
    parameters_issue: Issue | None = None

    @property
    def valid_listeners(self) -> list[ListenerState]:
        return [ls for ls in self.listeners if ls.valid]

    @property
    def accepted(self) -> bool:
        return self.accepted_issue is None and bool(self.valid_listeners)

    @property
    def programmed(self) -> bool:
        return self.accepted and self.address_issue is None


def process_gateway(
    gw: Gateway,
    cls: ClassState,
    index: Index,
    compile_telemetry: CompileTelemetry,
    *,
    now: datetime,
) -> GatewayState:
    """A Gateway's state; ``now`` is the translation's time, against which certificates'
    validity is checked (so a translation stays a function of its input)."""
    state = GatewayState(
        gw,
        cls,
        f"{gw.namespace}/{gw.name}",
        config=cls.config,
        telemetry=cls.telemetry,
        parameters_issue=cls.parameters_issue,
    )
    if cls.issue is not None:
        state.accepted_issue = Issue(
            R_INVALID_PARAMETERS,
            f"GatewayClass {cls.obj.name} is not accepted: {cls.issue.message}",
        )
    infra = gw.spec.infrastructure
    if infra is not None and infra.parameters_ref is not None and state.accepted_issue is None:
        ref = infra.parameters_ref
        if ref.group != EG_GROUP or ref.kind != "EnvoyProxy":
            state.accepted_issue = Issue(
                R_INVALID_PARAMETERS,
                f"infrastructure.parametersRef must point to a {EG_GROUP} EnvoyProxy, "
                f"not {_group_kind(ref.group, ref.kind)}",
            )
        elif (proxy := index.envoy_proxies.get((gw.namespace, ref.name))) is None:
            state.accepted_issue = Issue(
                R_INVALID_PARAMETERS, f"EnvoyProxy {gw.namespace}/{ref.name} not found"
            )
        else:
            # The Gateway's own parameters replace the class's (the spec leaves merging open).
            state.config = f"{gw.namespace}/{ref.name}"
            compiled = compile_telemetry(proxy)
            state.telemetry = compiled.telemetry
            state.parameters_issue = None
            if compiled.telemetry is None:
                state.accepted_issue = compiled.issue
            else:
                state.parameters_issue = compiled.issue
    for addr in gw.spec.addresses:
        if addr.type != "IPAddress":
            if state.accepted_issue is None:
                state.accepted_issue = Issue(
                    R_UNSUPPORTED_ADDRESS,
                    f"address type {addr.type} is not supported; only IPAddress is",
                )
        elif addr.value is not None and addr.value != BIND_ADDRESS and state.address_issue is None:
            # No value asks the implementation to assign one: the address egobs binds.
            state.address_issue = Issue(
                R_ADDRESS_NOT_USABLE,
                f"address {addr.value} cannot be used: egobs binds listeners to {BIND_ADDRESS}",
            )
    state.listeners = [_make_listener(state, spec, index, now) for spec in gw.spec.listeners]
    _mark_conflicts(state.listeners)
    _mark_tls_overlaps(state.listeners)
    programmed = state.programmed
    for ls in state.listeners:
        ls.programmed = programmed and ls.valid
    return state


def _listener_problem(ls: ListenerState) -> str:
    if ls.accepted_issue is not None:
        return ls.accepted_issue.message
    if ls.conflict is not None:
        return ls.conflict.message
    if not ls.certificates_usable:
        return join_messages(ls.cert_issues)
    if not ls.supported_kinds:
        return "no supported route kinds"
    return ""


def gateway_status(state: GatewayState, conds: Conditions) -> dict[str, Any]:
    gen = state.obj.metadata.generation
    invalid = [ls for ls in state.listeners if not ls.valid]
    issue = state.accepted_issue or state.parameters_issue
    if issue is not None:
        accepted = conds.make(ACCEPTED, False, issue.reason, issue.message, gen)
    elif not state.valid_listeners:
        accepted = conds.make(
            ACCEPTED, False, R_LISTENERS_NOT_VALID, "Gateway has no valid listeners", gen
        )
    elif invalid:
        names = ", ".join(ls.name for ls in invalid)
        accepted = conds.make(
            ACCEPTED,
            True,
            R_LISTENERS_NOT_VALID,
            f"Gateway is accepted; invalid listeners: {names}",
            gen,
        )
    else:
        accepted = conds.make(ACCEPTED, True, R_ACCEPTED, "Gateway is accepted", gen)
    if state.programmed:
        programmed = conds.make(PROGRAMMED, True, R_PROGRAMMED, "Gateway is programmed", gen)
    elif state.accepted and state.address_issue is not None:
        programmed = conds.make(
            PROGRAMMED, False, state.address_issue.reason, state.address_issue.message, gen
        )
    else:
        programmed = conds.make(PROGRAMMED, False, R_INVALID, "Gateway is not accepted", gen)
    return {
        "addresses": [{"type": "IPAddress", "value": BIND_ADDRESS}],
        "conditions": [accepted, programmed],
        "listeners": [_listener_status(ls, state, conds, gen) for ls in state.listeners],
    }


def _listener_status(
    ls: ListenerState, gw: GatewayState, conds: Conditions, gen: int
) -> dict[str, Any]:
    if ls.accepted_issue is not None:
        accepted = conds.make(
            ACCEPTED, False, ls.accepted_issue.reason, ls.accepted_issue.message, gen
        )
    elif ls.conflict is not None:
        accepted = conds.make(ACCEPTED, False, ls.conflict.reason, ls.conflict.message, gen)
    else:
        accepted = conds.make(ACCEPTED, True, R_ACCEPTED, "Listener is accepted", gen)
    if ls.programmed:
        programmed = conds.make(PROGRAMMED, True, R_PROGRAMMED, "Listener is programmed", gen)
    else:
        why = _listener_problem(ls) or "Gateway is not programmed"
        programmed = conds.make(
            PROGRAMMED, False, R_INVALID, f"Listener is not programmed: {why}", gen
        )
    ref_issues = [issue for issue in (_certificate_issue(ls), ls.kind_issue) if issue]
    resolved = conds.from_issues(
        RESOLVED_REFS, ref_issues, R_RESOLVED_REFS, "Listener references are resolved", gen
    )
    if ls.conflict is not None:
        conflicted = conds.make(CONFLICTED, True, ls.conflict.reason, ls.conflict.message, gen)
    else:
        conflicted = conds.make(CONFLICTED, False, R_NO_CONFLICTS, "Listener has no conflicts", gen)
    conditions = [accepted, programmed, resolved, conflicted]
    # Negative polarity: the spec forbids writing it as False, so it is left out instead.
    if ls.tls_overlaps:
        conditions.append(
            conds.make(
                OVERLAPPING_TLS_CONFIG, True, R_OVERLAPPING_HOSTNAMES, _overlap_message(ls), gen
            )
        )
    return {
        "name": ls.name,
        "supportedKinds": [{"group": GATEWAY_GROUP, "kind": k} for k in ls.supported_kinds],
        "attachedRoutes": len(ls.attached),
        "conditions": conditions,
    }


def _overlap_message(ls: ListenerState) -> str:
    own = f"hostname {ls.hostname}" if ls.hostname else "an unset hostname (any)"
    others = ", ".join(f"{peer.name} ({peer.hostname or 'any'})" for peer in ls.tls_overlaps)
    return (
        f"{own} overlaps those of listeners on port {ls.port}: {others}; "
        "a client may reuse one listener's TLS connection for another's hostnames "
        "(HTTP/2 connection coalescing)"
    )


def listener_ir(ls: ListenerState) -> ir.HTTPListener | ir.TCPListener | ir.UDPListener:
    """The xDS IR of a programmed listener, routes in final Envoy order."""
    if ls.protocol in ("HTTP", "HTTPS"):
        if not ls.http_sorted:
            ls.http_entries.sort(key=_entry_key)
        return ir.HTTPListener(
            name=ls.ir_name,
            address=BIND_ADDRESS,
            port=ls.port,
            hostnames=(ls.hostname or "*",),
            routes=tuple(map(_entry_route, ls.http_entries)),
            tls=ir.TLSConfig(certificates=ls.certificates) if ls.protocol == "HTTPS" else None,
        )
    if ls.protocol in ("TCP", "TLS"):
        return ir.TCPListener(
            name=ls.ir_name,
            address=BIND_ADDRESS,
            port=ls.port,
            routes=tuple(ls.tcp_routes),
            tls_passthrough=ls.protocol == "TLS",
        )
    return ir.UDPListener(name=ls.ir_name, address=BIND_ADDRESS, port=ls.port, route=ls.udp_route)


def _entry_key(entry: RouteEntry) -> SortKey:
    return entry.key


# A C-level getter: this runs once per route of every listener on every translation.
_entry_route: Callable[[RouteEntry], ir.HTTPRoute] = itemgetter(1)
