"""GatewayClasses, Gateways and their Listeners: validation, conflicts, TLS material.

Route attachment (allowedRoutes, attachedRoutes) is decided by the route translators, which
record into :class:`ListenerState`; this module owns everything known before any route is
looked at, so every listener's ``programmed`` flag is final when routes are processed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from egobs import ir
from egobs.gatewayapi.backends import EG_GROUP, GATEWAY_GROUP
from egobs.gatewayapi.certificates import ca_bundle_problem, certificate_problem
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
    R_INVALID_CA_CERTIFICATE_KIND,
    R_INVALID_CA_CERTIFICATE_REF,
    R_INVALID_CERTIFICATE_REF,
    R_INVALID_CLIENT_CERTIFICATE_REF,
    R_INVALID_PARAMETERS,
    R_INVALID_ROUTE_KINDS,
    R_LISTENERS_NOT_VALID,
    R_NO_CONFLICTS,
    R_NO_VALID_CA_CERTIFICATE,
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
from egobs.resources import EnvoyProxy, Gateway, GatewayClass, ListenerSet
from egobs.resources.gatewayapi import (
    FrontendTLSValidation,
    LabelSelector,
    Listener,
    SecretObjectReference,
)

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
    owner: ListenerSetState | None = None  # the ListenerSet it comes from, None: the Gateway
    accepted_issue: Issue | None = None
    conflict: Issue | None = None
    cert_issues: list[Issue] = field(default_factory=list)  # one per unusable certificateRef
    kind_issue: Issue | None = None
    supported_kinds: tuple[str, ...] = ()
    certificates: tuple[ir.Certificate, ...] = ()
    # Client certificate validation its port asks for (Gateway spec.tls.frontend), and an
    # issue per CA certificate reference that cannot be used.
    client_validation: ir.ClientValidation | None = None
    client_ca_issues: list[Issue] = field(default_factory=list)
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

    @property
    def namespace(self) -> str:
        """The namespace of the object that declares it: ``Same`` means this one."""
        return self.owner.obj.namespace if self.owner is not None else self.gateway.obj.namespace

    def allows_namespace(self, namespace: str, index: Index) -> bool:
        hit = self._ns_allowed.get(namespace)
        if hit is None:
            hit = _namespace_allowed(self.spec, self.namespace, namespace, index)
            self._ns_allowed[namespace] = hit
        return hit


def _namespace_allowed(spec: Listener, gw_ns: str, namespace: str, index: Index) -> bool:
    rn = spec.allowed_routes.namespaces
    return _from_namespace(rn.from_, rn.selector, gw_ns, namespace, index)


def _from_namespace(
    from_: str, selector: LabelSelector | None, own: str, namespace: str, index: Index
) -> bool:
    """Whether ``namespace`` is allowed by a ``from`` (All, Same: ``own``, Selector: its
    labels match ``selector``; anything else: none), as allowedRoutes and allowedListeners
    both say it."""
    if from_ == "All":
        return True
    if from_ == "Same":
        return namespace == own
    if from_ == "Selector":
        return selector is not None and selector.matches(index.namespace_labels(namespace))
    return False


def _client_validation(gateway: Gateway, port: int) -> FrontendTLSValidation | None:
    """How the Gateway's ``spec.tls.frontend`` validates client certificates on ``port``
    (its per-port entry, else its default), or None."""
    tls = gateway.spec.tls
    frontend = tls.frontend if tls is not None else None
    if frontend is None:
        return None
    config = next((p.tls for p in frontend.per_port if p.port == port), frontend.default)
    return config.validation


def _client_cas(
    gw: Gateway, validation: FrontendTLSValidation, index: Index
) -> tuple[ir.ClientValidation | None, list[Issue]]:
    """The client validation a listener serves (None: no CA reference usable) and an issue
    per reference that cannot be used. ConfigMaps (``ca.crt``) only; another namespace's
    needs a ReferenceGrant from the Gateway."""
    bundle: list[str] = []
    issues: list[Issue] = []
    for ref in validation.ca_certificate_refs:
        ns = ref.namespace or gw.namespace
        where = f"{ref.kind} {ns}/{ref.name}"
        if ref.group != "" or ref.kind != "ConfigMap":
            shown = _group_kind(ref.group, ref.kind)
            issues.append(
                Issue(
                    R_INVALID_CA_CERTIFICATE_KIND,
                    f"caCertificateRef kind {shown} is not supported: use a ConfigMap",
                )
            )
            continue
        if ns != gw.namespace and not index.grants.allowed(
            GATEWAY_GROUP, "Gateway", gw.namespace, "", "ConfigMap", ns, ref.name
        ):
            issues.append(
                Issue(
                    R_REF_NOT_PERMITTED,
                    f"caCertificateRef to {where} is not permitted by any ReferenceGrant",
                )
            )
            continue
        config_map = index.config_maps.get((ns, ref.name))
        pem = config_map.data.get("ca.crt") if config_map is not None else None
        if config_map is None:
            problem: str | None = "not found"
        elif pem is None:
            problem = "has no key ca.crt"
        else:
            problem = ca_bundle_problem(pem)
        if problem is not None or pem is None:
            issues.append(Issue(R_INVALID_CA_CERTIFICATE_REF, f"{where}: {problem}"))
            continue
        bundle.append(pem if pem.endswith("\n") else pem + "\n")
    if not bundle:
        return None, issues
    fallback = validation.mode == "AllowInsecureFallback"
    return ir.ClientValidation("".join(bundle), insecure_fallback=fallback), issues


def _make_listener(
    gw: GatewayState,
    spec: Listener,
    index: Index,
    now: datetime,
    owner: ListenerSetState | None = None,
) -> ListenerState:
    raw = spec.protocol
    # Core protocol names are case-insensitive per the spec.
    protocol = raw.upper() if raw.upper() in DEFAULT_KINDS else None
    # A ListenerSet's listener names may repeat the Gateway's: its own prefix keeps the
    # Envoy names apart.
    ir_name = (
        f"{gw.name}/{spec.name}"
        if owner is None
        else f"{gw.name}/listenerset/{owner.obj.namespace}/{owner.obj.name}/{spec.name}"
    )
    state = ListenerState(gw, spec, protocol, ir_name, owner)
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
        validation = _client_validation(gw.obj, spec.port)
        if validation is not None:
            state.client_validation, state.client_ca_issues = _client_cas(gw.obj, validation, index)
            if state.client_validation is None:
                # Fail closed: served without the check it asks for, the listener would
                # let in every client the Gateway means to refuse.
                state.accepted_issue = Issue(
                    R_NO_VALID_CA_CERTIFICATE,
                    f"spec.tls.frontend validates client certificates on port {spec.port}, "
                    "but none of its CA certificate references can be used",
                )
                return state
        state.certificates, state.cert_issues = _certificates(state, spec, index, now)
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
    ls: ListenerState, spec: Listener, index: Index, now: datetime
) -> tuple[tuple[ir.Certificate, ...], list[Issue]]:
    """The usable certificates of a listener's certificateRefs, and an issue per other one.
    References are the declaring object's: its namespace by default, and ReferenceGrants
    from its kind (a Gateway's grants do not extend to its ListenerSets, nor back)."""
    assert spec.tls is not None
    certs: list[ir.Certificate] = []
    issues: list[Issue] = []
    from_kind = "Gateway" if ls.owner is None else "ListenerSet"
    for ref in spec.tls.certificate_refs:
        found = _tls_secret(
            ref, from_kind, ls.namespace, index, now, invalid=R_INVALID_CERTIFICATE_REF
        )
        if isinstance(found, Issue):
            issues.append(found)
        else:
            certs.append(found)
    return tuple(certs), issues


def _tls_secret(
    ref: SecretObjectReference,
    from_kind: str,
    from_namespace: str,
    index: Index,
    now: datetime,
    *,
    invalid: str,
) -> ir.Certificate | Issue:
    """The certificate and key a reference to a kubernetes.io/tls Secret names, or the
    issue (``invalid`` as its reason, or RefNotPermitted) why it cannot be used."""
    ns = ref.namespace or from_namespace
    where = f"{ns}/{ref.name}"
    if ref.group != "" or ref.kind != "Secret":
        shown = _group_kind(ref.group, ref.kind)
        return Issue(invalid, f"certificateRef {shown} {where} is not a core Secret")
    # Permission before existence, so a refused reference reveals nothing.
    if not index.grants.allowed(
        GATEWAY_GROUP, from_kind, from_namespace, "", "Secret", ns, ref.name
    ):
        return Issue(
            R_REF_NOT_PERMITTED,
            f"certificateRef to Secret {where} is not permitted by any ReferenceGrant",
        )
    secret = index.secrets.get((ns, ref.name))
    if secret is None:
        return Issue(invalid, f"Secret {where} not found")
    if secret.type != "kubernetes.io/tls":
        return Issue(invalid, f"Secret {where} has type {secret.type}, want kubernetes.io/tls")
    crt = secret.value("tls.crt")
    key = secret.value("tls.key")
    if not crt or _PEM_CERT not in crt:
        return Issue(invalid, f"Secret {where}: tls.crt holds no PEM certificate")
    if not key or not _PEM_KEY.search(key):
        return Issue(invalid, f"Secret {where}: tls.key holds no PEM private key")
    problem = certificate_problem(crt, key, now=now)
    if problem is not None:
        return Issue(invalid, f"Secret {where}: {problem}")
    return ir.Certificate(name=where, cert_pem=crt, key_pem=key)


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
    listener_sets: list[ListenerSetState] = field(default_factory=list)
    # spec.tls.backend: the certificate it presents when it originates TLS to backends, or
    # why the one it names cannot be used (ResolvedRefs=False; backends get none then).
    backend_certificate: ir.Certificate | None = None
    backend_certificate_issue: Issue | None = None

    @property
    def own_listeners(self) -> list[ListenerState]:
        """Its ``spec.listeners``, without those of ListenerSets (which come after)."""
        return [ls for ls in self.listeners if ls.owner is None]

    @property
    def valid_listeners(self) -> list[ListenerState]:
        # The Gateway's conditions reflect its own listeners only (GEP-1713).
        return [ls for ls in self.own_listeners if ls.valid]

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
    listener_sets: Sequence[ListenerSet] = (),
) -> GatewayState:
    """A Gateway's state; ``now`` is the translation's time, against which certificates'
    validity is checked (so a translation stays a function of its input).
    ``listener_sets`` are those whose parentRef names it, in precedence order (oldest
    first, then by namespace/name)."""
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
    backend_tls = gw.spec.tls.backend if gw.spec.tls is not None else None
    if backend_tls is not None and backend_tls.client_certificate_ref is not None:
        found = _tls_secret(
            backend_tls.client_certificate_ref,
            "Gateway",
            gw.namespace,
            index,
            now,
            invalid=R_INVALID_CLIENT_CERTIFICATE_REF,
        )
        if isinstance(found, Issue):
            state.backend_certificate_issue = found
        else:
            state.backend_certificate = found
    state.listeners = [_make_listener(state, spec, index, now) for spec in gw.spec.listeners]
    _mark_conflicts(state.listeners)
    if listener_sets:
        _attach_listener_sets(state, listener_sets, index, now)
    _mark_tls_overlaps(state.listeners)
    programmed = state.programmed
    for ls in state.listeners:
        ls.programmed = programmed and ls.valid
    return state


# --------------------------------------------------------------------------- ListenerSet


@dataclass(eq=False)
class ListenerSetState:
    """A ListenerSet whose parentRef names a Gateway of ours: whether that Gateway takes
    it, and its listeners (also in the Gateway's list, after the Gateway's own)."""

    obj: ListenerSet
    gateway: GatewayState
    issue: Issue | None = None  # NotAllowed, ParentNotAccepted: none of it is attached
    listeners: list[ListenerState] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.obj.namespace, self.obj.name)

    @property
    def accepted(self) -> bool:
        return self.issue is None and any(ls.valid for ls in self.listeners)


R_NOT_ALLOWED = "NotAllowed"
R_PARENT_NOT_ACCEPTED = "ParentNotAccepted"
R_PARENT_NOT_PROGRAMMED = "ParentNotProgrammed"


def _allows_listener_sets(gw: Gateway, namespace: str, index: Index) -> bool:
    allowed = gw.spec.allowed_listeners
    if allowed is None:
        return False
    rn = allowed.namespaces
    if rn.from_ == "Selector" and rn.selector is not None and rn.selector.problem():
        return False  # a selector Kubernetes could not build selects nothing
    return _from_namespace(rn.from_, rn.selector, gw.namespace, namespace, index)


def _attach_listener_sets(
    gw: GatewayState, sets: Sequence[ListenerSet], index: Index, now: datetime
) -> None:
    """Each ListenerSet's state; the listeners of those the Gateway takes join its list.

    Merged as the spec says: the Gateway's own listeners first, then each set's in
    precedence order. Unlike conflicts among a Gateway's own listeners (all of them
    marked), a listener that conflicts with one earlier in that order loses alone: the
    earlier one keeps serving.
    """
    claims = _Claims()
    for ls in gw.listeners:
        claims.claim(ls)
    for obj in sets:
        state = ListenerSetState(obj, gw)
        gw.listener_sets.append(state)
        if not gw.accepted:
            state.issue = Issue(R_PARENT_NOT_ACCEPTED, f"Gateway {gw.name} is not accepted")
            continue
        if not _allows_listener_sets(gw.obj, obj.namespace, index):
            state.issue = Issue(
                R_NOT_ALLOWED,
                f"Gateway {gw.name} does not allow ListenerSets from namespace {obj.namespace} "
                "(spec.allowedListeners)",
            )
            continue
        state.listeners = [
            _make_listener(gw, spec, index, now, owner=state) for spec in obj.spec.listeners
        ]
        for ls in state.listeners:
            if ls.protocol is not None and ls.accepted_issue is None:
                ls.conflict = claims.conflict(ls)
        # What is left conflicts within the set as within a Gateway: no winner.
        _mark_conflicts([ls for ls in state.listeners if ls.conflict is None])
        for ls in state.listeners:
            claims.claim(ls)
        gw.listeners.extend(state.listeners)


class _Claims:
    """Which port, protocol family and hostname the listeners before in precedence hold."""

    def __init__(self) -> None:
        self.families: dict[tuple[int, str], str] = {}
        self.protocols: dict[tuple[int, str], set[str]] = {}
        self.hostnames: set[tuple[int, str, str]] = set()

    def claim(self, ls: ListenerState) -> None:
        if ls.protocol is None or ls.accepted_issue is not None:
            return
        transport = "UDP" if ls.protocol == "UDP" else "TCP"
        family = _FAMILY[ls.protocol]
        self.families.setdefault((ls.port, transport), family)
        self.protocols.setdefault((ls.port, transport), set()).add(ls.protocol)
        self.hostnames.add((ls.port, family, ls.hostname or ""))

    def conflict(self, ls: ListenerState) -> Issue | None:
        assert ls.protocol is not None
        transport = "UDP" if ls.protocol == "UDP" else "TCP"
        family = _FAMILY[ls.protocol]
        held = self.families.get((ls.port, transport))
        if held is None:
            return None
        # HTTPS and TLS share a port within a Gateway; a ListenerSet's listener does not
        # bring the other one to a port (the conformance tests want a ProtocolConflict).
        if held != family or ls.protocol not in self.protocols[(ls.port, transport)]:
            return Issue(
                R_PROTOCOL_CONFLICT,
                f"port {ls.port} is already used with another protocol by a listener "
                "that takes precedence",
            )
        if family in ("TCP", "UDP"):
            return Issue(
                R_PROTOCOL_CONFLICT,
                f"port {ls.port} already has a {family} listener that takes precedence",
            )
        if (ls.port, family, ls.hostname or "") in self.hostnames:
            shown = ls.hostname or "(any hostname)"
            return Issue(
                R_HOSTNAME_CONFLICT,
                f"hostname {shown} on port {ls.port} is already used by a listener that "
                "takes precedence",
            )
        return None


def listener_set_status(state: ListenerSetState, conds: Conditions) -> dict[str, Any]:
    gen = state.obj.metadata.generation
    gw = state.gateway
    if state.issue is not None:
        programmed_reason = (
            R_NOT_ALLOWED if state.issue.reason == R_NOT_ALLOWED else R_PARENT_NOT_PROGRAMMED
        )
        return {
            "conditions": [
                conds.make(ACCEPTED, False, state.issue.reason, state.issue.message, gen),
                conds.make(PROGRAMMED, False, programmed_reason, state.issue.message, gen),
            ],
            "listeners": [],
        }
    invalid = [ls.name for ls in state.listeners if not ls.valid]
    if len(invalid) == len(state.listeners):
        msg = "ListenerSet has no valid listeners"
        accepted = conds.make(ACCEPTED, False, R_LISTENERS_NOT_VALID, msg, gen)
        programmed = conds.make(PROGRAMMED, False, R_LISTENERS_NOT_VALID, msg, gen)
    else:
        accepted = _accepted_with(invalid, "ListenerSet", conds, gen)
        if gw.programmed:
            programmed = conds.make(
                PROGRAMMED, True, R_PROGRAMMED, "ListenerSet is programmed", gen
            )
        else:
            programmed = conds.make(
                PROGRAMMED,
                False,
                R_PARENT_NOT_PROGRAMMED,
                f"Gateway {gw.name} is not programmed",
                gen,
            )
    return {
        "conditions": [accepted, programmed],
        "listeners": [_listener_status(ls, gw, conds, gen) for ls in state.listeners],
    }


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
    invalid = [ls for ls in state.own_listeners if not ls.valid]
    issue = state.accepted_issue or state.parameters_issue
    if issue is not None:
        accepted = conds.make(ACCEPTED, False, issue.reason, issue.message, gen)
    elif not state.valid_listeners:
        accepted = conds.make(
            ACCEPTED, False, R_LISTENERS_NOT_VALID, "Gateway has no valid listeners", gen
        )
    else:
        accepted = _accepted_with([ls.name for ls in invalid], "Gateway", conds, gen)
    if state.programmed:
        programmed = conds.make(PROGRAMMED, True, R_PROGRAMMED, "Gateway is programmed", gen)
    elif state.accepted and state.address_issue is not None:
        programmed = conds.make(
            PROGRAMMED, False, state.address_issue.reason, state.address_issue.message, gen
        )
    else:
        programmed = conds.make(PROGRAMMED, False, R_INVALID, "Gateway is not accepted", gen)
    conditions = [accepted, programmed]
    backend_tls = state.obj.spec.tls.backend if state.obj.spec.tls is not None else None
    if backend_tls is not None and backend_tls.client_certificate_ref is not None:
        # Written only for what it is about: the client certificate towards backends.
        problem = state.backend_certificate_issue
        conditions.append(
            conds.make(RESOLVED_REFS, True, R_RESOLVED_REFS, "References are resolved", gen)
            if problem is None
            else conds.make(RESOLVED_REFS, False, problem.reason, problem.message, gen)
        )
    return {
        "addresses": [{"type": "IPAddress", "value": BIND_ADDRESS}],
        "conditions": conditions,
        "listeners": [_listener_status(ls, state, conds, gen) for ls in state.own_listeners],
        **_attached_listener_sets(state),
    }


def _accepted_with(invalid: list[str], kind: str, conds: Conditions, gen: int) -> dict[str, Any]:
    """Accepted=True of a Gateway or ListenerSet with some valid listeners: the reason
    says whether others are not (ListenersNotValid, naming them)."""
    if not invalid:
        return conds.make(ACCEPTED, True, R_ACCEPTED, f"{kind} is accepted", gen)
    message = f"{kind} is accepted; invalid listeners: {', '.join(invalid)}"
    return conds.make(ACCEPTED, True, R_LISTENERS_NOT_VALID, message, gen)


def _attached_listener_sets(state: GatewayState) -> dict[str, int]:
    """``attachedListenerSets``: the accepted ones; written when the Gateway allows
    ListenerSets or some name it, so a Gateway without any keeps its status shape."""
    if state.obj.spec.allowed_listeners is None and not state.listener_sets:
        return {}
    return {"attachedListenerSets": sum(1 for ls in state.listener_sets if ls.accepted)}


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
    elif ls.owner is not None and ls.conflict is not None:
        # What the ListenerSet conformance tests want: the conflict's reason here too.
        programmed = conds.make(PROGRAMMED, False, ls.conflict.reason, ls.conflict.message, gen)
    else:
        why = _listener_problem(ls) or "Gateway is not programmed"
        programmed = conds.make(
            PROGRAMMED, False, R_INVALID, f"Listener is not programmed: {why}", gen
        )
    ref_issues = [issue for issue in (_certificate_issue(ls), ls.kind_issue) if issue]
    ref_issues += ls.client_ca_issues
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
            tls=(
                ir.TLSConfig(certificates=ls.certificates, client_validation=ls.client_validation)
                if ls.protocol == "HTTPS"
                else None
            ),
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
