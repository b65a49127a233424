"""BackendTLSPolicy: which Service ports Envoy reaches over TLS, and how it checks them.

A policy targets Services (optionally one port, by ``sectionName``). For each targeted
port, the oldest policy wins (creation time, then namespace/name: GEP-713's conflict
rule); a policy naming the port wins over one naming the whole Service, so the two do
not conflict. A winning policy whose CA certificates all fail to resolve gives no
:class:`~egobs.ir.UpstreamTLS`: the backend stays unresolved and its share of traffic is
answered with a 500, as the spec requires (never plaintext, never unverified).

Statuses: a policy's ``status.ancestors`` has one entry per Gateway of ours whose routes
refer to a Service it targets, with ``Accepted`` (``Accepted``, ``Conflicted``,
``NoValidCACertificate``) and ``ResolvedRefs`` (``ResolvedRefs``,
``InvalidCACertificateRef``, ``InvalidKind``). A policy no route of ours leads to gets no
status from egobs: its ancestors, if any, belong to other controllers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from egobs import ir
from egobs.gatewayapi.certificates import ca_bundle_problem
from egobs.gatewayapi.status import ACCEPTED, RESOLVED_REFS, Conditions, oldest_first
from egobs.resources import BackendTLSPolicy, Resources
from egobs.resources.gatewayapi import LocalObjectReference

__all__ = ["BackendTLSPolicies", "PortPolicy"]

GATEWAY_GROUP = "gateway.networking.k8s.io"
CA_KEY = "ca.crt"

R_CONFLICTED = "Conflicted"
R_INVALID = "Invalid"
R_NO_VALID_CA = "NoValidCACertificate"
R_INVALID_CA_REF = "InvalidCACertificateRef"
R_INVALID_KIND = "InvalidKind"

_SAN_TYPES = {"Hostname": ir.SubjectAltNameType.DNS, "URI": ir.SubjectAltNameType.URI}


@dataclass(frozen=True, slots=True)
class PortPolicy:
    """The policy that decides one Service port: its ``ns/name`` and the TLS it asks for
    (None when none of its CA certificates resolved: the backend must not be used)."""

    policy: str
    tls: ir.UpstreamTLS | None


@dataclass(frozen=True, slots=True)
class _Checked:
    """One policy as resolved: its TLS (or None) and its own conditions' problems."""

    tls: ir.UpstreamTLS | None
    ref_problems: tuple[tuple[str, str], ...]  # (reason, message) per bad CA reference
    invalid: str | None = None  # why the policy itself cannot be applied (Accepted=Invalid)


class BackendTLSPolicies:
    """The BackendTLSPolicies of one input, resolved: per Service port, the policy that
    applies; per policy, what is wrong with it. Built once per translation."""

    def __init__(self, resources: Resources) -> None:
        self._policies = sorted(resources.backend_tls_policies, key=oldest_first)
        config_maps = {(c.namespace, c.name): c.data for c in resources.config_maps}
        self._checked: dict[str, _Checked] = {}
        # (ns, service) -> sectionName (None: every port) -> winning policy
        self._targets: dict[tuple[str, str], dict[str | None, str]] = {}
        self._conflicted: dict[str, list[str]] = {}
        for policy in self._policies:
            name = f"{policy.namespace}/{policy.name}"
            self._checked[name] = _check(policy, config_maps)
            for target in policy.spec.target_refs:
                if target.group != "" or target.kind != "Service":
                    continue  # no route leads to it: no ancestor, no status
                ports = self._targets.setdefault((policy.namespace, target.name), {})
                winner = ports.setdefault(target.section_name, name)
                if winner != name:
                    self._conflicted.setdefault(name, []).append(
                        f"Service {target.name}"
                        + (f" port {target.section_name}" if target.section_name else "")
                        + f" is already targeted by the older BackendTLSPolicy {winner}"
                    )

    def __bool__(self) -> bool:
        return bool(self._policies)

    def for_port(self, namespace: str, service: str, port_name: str | None) -> PortPolicy | None:
        """The policy deciding ``service``'s port ``port_name`` (a policy naming the port
        wins over one naming the whole Service), or None: plaintext."""
        targets = self._targets.get((namespace, service))
        if not targets:
            return None
        policy = (targets.get(port_name) if port_name else None) or targets.get(None)
        if policy is None:
            return None
        return PortPolicy(policy, self._checked[policy].tls)

    def statuses(
        self,
        resources: Resources,
        route_statuses: Mapping[tuple[str, str, str], Mapping[str, Any]],
        *,
        controller_name: str,
        conds: Conditions,
        listener_set_gateways: Mapping[tuple[str, str], tuple[str, str]],
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Each policy's status: an ancestor entry per Gateway of ours that accepted a
        route (directly, or through one of its ListenerSets) referring to a Service the
        policy targets. ``listener_set_gateways``: the Gateway of each ListenerSet."""
        targeted = self._targets.keys()
        ancestors: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for route in _routes(resources):
            refs = {
                (ref.namespace or route.namespace, ref.name)
                for ref in _service_refs(route)
                if (ref.namespace or route.namespace, ref.name) in targeted
            }
            if not refs:
                continue
            status = route_statuses.get(route.key)
            if status is None:
                continue
            parents: set[tuple[str, str]] = set()
            for p in status.get("parents", ()):
                if p.get("controllerName") != controller_name or not _accepted(p):
                    continue
                ref = p["parentRef"]
                key = (ref.get("namespace", route.namespace), ref["name"])
                if ref.get("kind", "Gateway") == "Gateway":
                    parents.add(key)
                elif ref.get("kind") == "ListenerSet" and key in listener_set_gateways:
                    parents.add(listener_set_gateways[key])
            for ref in refs:
                ancestors.setdefault(ref, set()).update(parents)
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        for policy in self._policies:
            name = f"{policy.namespace}/{policy.name}"
            gateways: set[tuple[str, str]] = set()
            for target in policy.spec.target_refs:
                if target.group == "" and target.kind == "Service":
                    gateways |= ancestors.get((policy.namespace, target.name), set())
            if not gateways:
                continue
            conditions = self._conditions(policy, name, conds)
            out[("BackendTLSPolicy", policy.namespace, policy.name)] = {
                "ancestors": [
                    {
                        "ancestorRef": {
                            "group": GATEWAY_GROUP,
                            "kind": "Gateway",
                            "namespace": ns,
                            "name": gw,
                        },
                        "controllerName": controller_name,
                        "conditions": conditions,
                    }
                    for ns, gw in sorted(gateways)
                ]
            }
        return out

    def _conditions(
        self, policy: BackendTLSPolicy, name: str, conds: Conditions
    ) -> list[dict[str, Any]]:
        gen = policy.metadata.generation
        checked = self._checked[name]
        if name in self._conflicted:
            accepted = conds.make(
                ACCEPTED, False, R_CONFLICTED, "; ".join(self._conflicted[name]), gen
            )
        elif checked.invalid is not None:
            accepted = conds.make(ACCEPTED, False, R_INVALID, checked.invalid, gen)
        elif checked.tls is None:
            accepted = conds.make(
                ACCEPTED, False, R_NO_VALID_CA, "no CA certificate reference resolved", gen
            )
        else:
            accepted = conds.make(ACCEPTED, True, "Accepted", "Policy accepted", gen)
        if checked.ref_problems:
            reason = checked.ref_problems[0][0]
            message = "; ".join(m for _, m in checked.ref_problems)
            resolved = conds.make(RESOLVED_REFS, False, reason, message, gen)
        else:
            resolved = conds.make(
                RESOLVED_REFS, True, "ResolvedRefs", "All references are resolved", gen
            )
        return [accepted, resolved]


def _check(
    policy: BackendTLSPolicy,
    config_maps: Mapping[tuple[str, str], Mapping[str, str]],
) -> _Checked:
    validation = policy.spec.validation
    problems: list[tuple[str, str]] = []
    bundle: list[str] = []
    for ref in validation.ca_certificate_refs:
        pem, problem = _ca_ref(policy.namespace, ref, config_maps)
        if problem is not None:
            problems.append(problem)
        elif pem is not None:
            bundle.append(pem)
    sans = tuple(
        ir.SubjectAltName(_SAN_TYPES[s.type], (s.hostname if s.type == "Hostname" else s.uri) or "")
        for s in validation.subject_alt_names
    )
    name = f"{policy.namespace}/{policy.name}"
    if validation.well_known_ca_certificates is not None:
        if validation.well_known_ca_certificates != "System":
            why = (
                f"wellKnownCACertificates {validation.well_known_ca_certificates} is not "
                "supported (only System)"
            )
            return _Checked(None, tuple(problems), invalid=why)
        tls = ir.UpstreamTLS(validation.hostname, None, sans, name)
        return _Checked(tls, tuple(problems))
    if not bundle:
        return _Checked(None, tuple(problems))
    ca = "".join(p if p.endswith("\n") else p + "\n" for p in bundle)
    return _Checked(ir.UpstreamTLS(validation.hostname, ca, sans, name), tuple(problems))


def _ca_ref(
    namespace: str,
    ref: LocalObjectReference,
    config_maps: Mapping[tuple[str, str], Mapping[str, str]],
) -> tuple[str | None, tuple[str, str] | None]:
    """The PEM bundle a CA reference names, or the (reason, message) why it cannot be used.
    ConfigMap is the core kind and the only one egobs reads (a Secret's rotation would
    otherwise have to recompile every route)."""
    shown = f"{ref.kind} {namespace}/{ref.name}"
    if ref.group != "" or ref.kind != "ConfigMap":
        kind = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
        return None, (
            R_INVALID_KIND,
            f"caCertificateRef kind {kind} is not supported: use a ConfigMap with {CA_KEY}",
        )
    data = config_maps.get((namespace, ref.name))
    if data is None:
        return None, (R_INVALID_CA_REF, f"{shown} not found")
    pem = data.get(CA_KEY)
    if pem is None:
        return None, (R_INVALID_CA_REF, f"{shown} has no key {CA_KEY}")
    problem = ca_bundle_problem(pem)
    if problem is not None:
        return None, (R_INVALID_CA_REF, f"{shown}: {problem}")
    return pem, None


def _routes(resources: Resources) -> Iterable[Any]:
    """The routes a policy applies to (HTTP ones: L4 routes forward the client's stream)."""
    yield from resources.http_routes
    yield from resources.grpc_routes


def _accepted(parent: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == ACCEPTED and c.get("status") == "True"
        for c in parent.get("conditions", ())
    )


def _service_refs(route: Any) -> Iterable[Any]:
    for rule in route.spec.rules:
        for ref in rule.backend_refs:
            if ref.group == "" and ref.kind == "Service":
                yield ref
