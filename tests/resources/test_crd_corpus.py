"""The loader against the Gateway API v1.6.1 CRDs, object by object (issue 11, item 2).

What the CRD schema or its CEL rules reject must be refused at load, with the object and the
field named; what they accept must not be refused. Each object of the corpus in
``testdata/crd_corpus/`` is judged twice: by ``crd_validation`` (the version's
openAPIV3Schema with jsonschema, then every ``x-kubernetes-validations`` rule with
cel-python: the API server's verdict) and by egobs's loader, alone. The two must agree.

Each corpus document starts with ``# <id> (accept|reject): <what it tests>``; the comment's
verdict is checked against the CRDs too, so a wrong oracle or a wrong corpus entry shows.
The CRDs are read from ``../shared/reference/gateway-api-v1.6.1/`` (unmodified upstream).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crd_validation as crdv
import pytest
import yaml

from egobs.resources import LoadError, load_text
from egobs.resources.loader import KINDS

CORPUS = Path(__file__).resolve().parent / "testdata" / "crd_corpus"
_HEADER = re.compile(r"^# ([a-z0-9][-a-z0-9]*) \((accept|reject)\): (.+)$", re.MULTILINE)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)

# Where the loader and the API server disagree today: corpus id -> who accepts, who
# refuses, and the CRD's rule. Each is an expected failure (strict: fixing the loader makes
# the case pass, and then it must leave this list).
_LA = "loader accepts, CRD refuses"
_LR = "loader refuses, CRD accepts"
_FIELD = "both refuse, but the loader names a parent of the field"
DISAGREEMENTS: dict[str, str] = {
    # null in an optional field: the API server prunes it (then defaults); the loader
    # refuses it as "Input should be a valid list/dictionary (got None)".
    "gateway-nulls-for-optional-fields": f"{_LR}: spec.addresses: null, "
    "spec.listeners[0].allowedRoutes: null (pruned, then defaulted)",
    "httproute-nulls-for-optional-fields": f"{_LR}: spec.hostnames, spec.rules[0].matches, "
    "spec.rules[0].filters, spec.rules[0].backendRefs[0].filters set to null (pruned)",
    "metadata-labels-null": f"{_LR}: metadata.labels/annotations: null (ObjectMeta zero value)",
    "metadata-creation-timestamp-yaml-timestamp": f"{_LR}: metadata.creationTimestamp "
    "unquoted is a YAML timestamp; the loader wants a str (kubectl sends the JSON string)",
    # Checks the loader has and the CRD does not.
    "gateway-https-tls-options-only": f"{_LR}: spec.listeners[0].tls with options and no "
    "certificateRefs; CRD rule: self.mode == 'Terminate' ? size(self.certificateRefs) > 0 "
    "|| size(self.options) > 0 : true",
    "gateway-selector-without-selector": f"{_LR}: allowedRoutes.namespaces from: Selector "
    "without selector; the CRD has no rule for it",
    "gatewayclass-namespace-ignored": f"{_LR}: metadata.namespace on a cluster-scoped kind; "
    "the API server clears it (egobs refuses it on purpose, see test_loader.py)",
    # Fields of v1.6.1 the loader does not model.
    "gateway-frontend-tls-per-port": f"{_LR}: spec.tls (Gateway-level frontend/backend TLS) "
    "is an unknown field to the loader",
    "httproute-use-default-gateways": f"{_LR}: spec.useDefaultGateways is an unknown field "
    "to the loader (every route kind and version of v1.6.1 has it)",
    # Served versions.
    "grpcroute-v1alpha2": f"{_LA}: apiVersion v1alpha2; GRPCRoute serves v1 only",
    "referencegrant-v1alpha2": f"{_LA}: apiVersion v1alpha2; ReferenceGrant serves v1, v1beta1",
    # Schema constraints the loader lacks.
    "gatewayclass-controller-name-without-domain": f"{_LA}: spec.controllerName pattern "
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9\\/\\-._~%!$&'()*+,;=:]+$",
    "gatewayclass-description-too-long": f"{_LA}: spec.description maxLength 64",
    "gateway-protocol-invalid": f"{_LA}: spec.listeners[0].protocol pattern "
    "^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|<domain>/<name>",
    "gateway-port-as-string": f'{_LA}: spec.listeners[0].port "80" (type integer; '
    "pydantic's lax mode turns the string into 80)",
    "gateway-ip-address-invalid": f"{_LA}: spec.addresses[0] type IPAddress needs value "
    "of format ipv4 or ipv6 (oneOf)",
    "gateway-certificate-ref-namespace-invalid": f"{_LA}: "
    "spec.listeners[0].tls.certificateRefs[0].namespace pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "gateway-allowed-routes-kind-invalid": f"{_LA}: "
    "spec.listeners[0].allowedRoutes.kinds[0].kind pattern ^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$",
    "httproute-parent-ref-namespace-invalid": f"{_LA}: spec.parentRefs[0].namespace pattern "
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "httproute-backend-kind-invalid": f"{_LA}: spec.rules[0].backendRefs[0].kind pattern "
    "^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$",
    "httproute-cors-allow-credentials-string": f"{_LA}: "
    'spec.rules[0].filters[0].cors.allowCredentials "true" (type boolean; lax mode)',
    "httproute-header-set-duplicate-name": f"{_LA}: "
    "spec.rules[0].filters[0].requestHeaderModifier.set[1] repeats name X-A "
    "(x-kubernetes-list-type: map, key name)",
    "httproute-header-match-duplicate-name": f"{_LA}: spec.rules[0].matches[0].headers[1] "
    "repeats name X-A (x-kubernetes-list-type: map, key name)",
    "referencegrant-from-namespace-invalid": f"{_LA}: spec.from[0].namespace pattern "
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "referencegrant-to-group-invalid": f"{_LA}: spec.to[0].group pattern "
    "^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    "metadata-label-value-invalid": f"{_LA}: metadata.labels value '-web-' (label values: "
    "at most 63 of [A-Za-z0-9._-], alphanumeric at both ends)",
    # CEL rules the loader lacks.
    "gateway-duplicate-port-protocol-hostname": f"{_LA}: spec.listeners; rule: "
    "self.all(l1, self.exists_one(l2, l1.port == l2.port && l1.protocol == l2.protocol && "
    "(has(l1.hostname) && has(l2.hostname) ? l1.hostname == l2.hostname : "
    "!has(l1.hostname) && !has(l2.hostname))))",
    "gateway-tls-listener-without-tls": f"{_LA}: spec.listeners; rule: self.all(l, "
    "(l.protocol == 'TLS' ? has(l.tls) && has(l.tls.mode) && l.tls.mode != '' : true))",
    "gateway-duplicate-addresses": f"{_LA}: spec.addresses; rule: self.all(a1, a1.type == "
    "'IPAddress' && has(a1.value) ? self.exists_one(a2, a2.type == a1.type && "
    "has(a2.value) && a2.value == a1.value) : true)",
    "gateway-infrastructure-label-key-invalid": f"{_LA}: spec.infrastructure.labels; rule: "
    "self.all(key, key.matches(<qualified name>))",
    "grpcroute-service-invalid-characters": f"{_LA}: spec.rules[0].matches[0].method; rule: "
    "(!has(self.type) || self.type == 'Exact') && has(self.service) ? "
    "self.service.matches(^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$) : true",
    "grpcroute-method-invalid-characters": f"{_LA}: spec.rules[0].matches[0].method; rule: "
    "(!has(self.type) || self.type == 'Exact') && has(self.method) ? "
    "self.method.matches(^[A-Za-z_][A-Za-z_0-9]*$) : true",
    "grpcroute-service-without-port": f"{_LA}: spec.rules[0].backendRefs[0]; rule: "
    "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true",
    "httproute-service-without-port": f"{_LA}: spec.rules[0].backendRefs[0]; rule: "
    "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true",
    "udproute-service-without-port": f"{_LA}: spec.rules[0].backendRefs[0]; rule: "
    "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true",
    "httproute-path-encoded-slash": f"{_LA}: spec.rules[0].matches[0].path; rule: "
    "(self.type in ['Exact','PathPrefix']) ? !self.value.contains('%2f') : true",
    "httproute-path-ends-with-dot-dot": f"{_LA}: spec.rules[0].matches[0].path; rule: "
    "(self.type in ['Exact','PathPrefix']) ? !self.value.endsWith('/..') : true",
    "httproute-path-invalid-character": f"{_LA}: spec.rules[0].matches[0].path; rule: "
    "(self.type in ['Exact','PathPrefix']) ? "
    "self.value.matches(^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) : true",
    "httproute-backend-request-longer-than-request": f"{_LA}: spec.rules[0].timeouts; rule: "
    "!(has(self.request) && has(self.backendRequest) && duration(self.request) != "
    "duration('0s') && duration(self.backendRequest) > duration(self.request))",
    "httproute-duplicate-parent-refs": f"{_LA}: spec.parentRefs; rule: sectionName or port "
    "must be unique when parentRefs includes 2 or more references to the same parent",
    "udproute-v1alpha2-duplicate-parent-refs": f"{_LA}: spec.parentRefs; rule: sectionName "
    "or port must be specified when parentRefs includes 2 or more references to the same parent",
    "httproute-duplicate-rule-names": f"{_LA}: spec.rules; rule: self.all(l1, !has(l1.name) "
    "|| self.exists_one(l2, has(l2.name) && l1.name == l2.name))",
    "httproute-too-many-matches-in-total": f"{_LA}: spec.rules; rule: the sum of "
    "self[i].matches.size() over the rules <= 128",
    "tlsroute-v1-ip-hostname": f"{_LA}: spec.hostnames; rule: self.all(h, !isIP(h))",
    # Refused by both; the loader's field path stops above the CRD's.
    "gateway-duplicate-listener-names": f"{_FIELD}: loader 'spec', CRD 'spec.listeners' "
    "(rule self.all(l1, self.exists_one(l2, l1.name == l2.name))) and 'spec.listeners[1]' "
    "(list-map key name)",
    "gateway-https-terminate-without-certificates": f"{_FIELD}: loader 'spec.listeners[0]', "
    "CRD 'spec.listeners[0].tls' (rule self.mode == 'Terminate' ? "
    "size(self.certificateRefs) > 0 || size(self.options) > 0 : true)",
    "httproute-redirect-and-rewrite": f"{_FIELD}: loader 'spec.rules[0]', CRD "
    "'spec.rules[0].filters' (rule !(self.exists(f, f.type == 'RequestRedirect') && "
    "self.exists(f, f.type == 'URLRewrite')))",
    "httproute-header-modifier-repeated": f"{_FIELD}: loader 'spec.rules[0]', CRD "
    "'spec.rules[0].filters' (rule self.filter(f, f.type == "
    "'RequestHeaderModifier').size() <= 1)",
    "httproute-cors-wildcard-with-others": f"{_FIELD}: loader "
    "'spec.rules[0].filters[0].cors', CRD 'spec.rules[0].filters[0].cors.allowOrigins' "
    "(rule !('*' in self && self.size() > 1))",
}

# CEL rules of the v1.6.1 CRDs that cel-python cannot evaluate by itself, with the reason
# and what this test does instead. A rule that appears in a new CRD and cel-python cannot
# evaluate fails test_cel_rules_cel_python_cannot_evaluate_are_listed until it is listed.
_FROM_K8S = "evaluated with the implementation in crd_validation.K8S_FUNCTIONS"
CEL_GAPS: dict[str, str] = {
    "self == oldSelf": (
        "transition rule (GatewayClass spec.controllerName is immutable): needs the old "
        "object, which a create does not have; skipped"
    ),
    "self.all(h, !isIP(h))": (
        f"isIP is a Kubernetes CEL library function (TLSRoute v1/v1alpha3 hostnames); {_FROM_K8S}"
    ),
    'self.all(key, key.split("/")[0].size() < 253)': (
        "split is from cel-go's strings extension (Gateway infrastructure labels and "
        f"annotations keys); {_FROM_K8S}"
    ),
    (
        "self.all(h, h.contains('*') ? (h.startsWith('*.') && "
        "h.substring(2).matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$')) "
        ": true)"
    ): (
        "substring is from cel-go's strings extension (TLSRoute v1/v1alpha3 wildcard "
        f"hostnames); {_FROM_K8S}"
    ),
}


@dataclass(frozen=True)
class Case:
    id: str
    expect: str  # "accept" or "reject"
    about: str
    text: str
    file: str


def _cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for chunk in _SEPARATOR.split(path.read_text()):
            header = _HEADER.search(chunk)
            if header is None:
                raise AssertionError(f"{path.name}: a document without a '# <id> (...)' line")
            cases.append(Case(header[1], header[2], header[3], chunk, path.name))
    return cases


CASES = _cases()


def _data(case: Case) -> dict[str, Any]:
    data = yaml.load(case.text, Loader=crdv.JSONLikeLoader)
    assert isinstance(data, dict), case.id
    return data


def _modelled(case: Case) -> bool:
    return _data(case).get("kind") in KINDS


def _require_reference() -> None:
    if not crdv.reference_present():
        pytest.fail(
            f"the Gateway API CRDs are absent at {crdv.REFERENCE}: this test checks the loader "
            "against them (../shared/reference/ holds the upstream CRDs)"
        )


@functools.cache
def _api_server(case_id: str) -> crdv.Verdict:
    (case,) = [c for c in CASES if c.id == case_id]
    return crdv.validate(_data(case))


def _explain(verdict: crdv.Verdict) -> str:
    if verdict.accepted:
        return "accepted"
    return "; ".join(
        f"{v.path or '<object>'}: {v.message}" + (f" [rule: {v.rule}]" if v.rule else "")
        for v in verdict.violations
    )


def _ref(data: dict[str, Any]) -> str:
    """``Kind/ns/name`` as the loader names the object (``Kind/name`` if cluster-scoped)."""
    kind, meta = data["kind"], data.get("metadata") or {}
    cls = KINDS.get(kind)
    if cls is not None and not cls.NAMESPACED:
        return f"{kind}/{meta['name']}"
    return f"{kind}/{meta.get('namespace') or 'default'}/{meta['name']}"


def _at_or_below(field: str, parent: str) -> bool:
    return field == parent or (
        field.startswith(parent) and field[len(parent)] in ".[" and bool(parent)
    )


def _params(modelled: bool) -> list[Any]:
    out = []
    for case in CASES:
        if _modelled(case) != modelled:
            continue
        marks = []
        if modelled and case.id in DISAGREEMENTS:
            marks.append(pytest.mark.xfail(strict=True, reason=DISAGREEMENTS[case.id]))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_well_formed() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(CASES) >= 60
    assert {c.expect for c in CASES} == {"accept", "reject"}
    unknown = set(DISAGREEMENTS) - set(ids)
    assert not unknown, f"DISAGREEMENTS names cases that are not in the corpus: {unknown}"
    kinds = {_data(c)["kind"] for c in CASES}
    assert {"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TCPRoute", "UDPRoute"} <= kinds
    assert {"TLSRoute", "ReferenceGrant", "BackendTLSPolicy"} <= kinds


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_crds_give_the_verdict_the_corpus_states(case: Case) -> None:
    """The oracle itself: each entry is accepted or refused by the CRDs as its comment says."""
    _require_reference()
    verdict = _api_server(case.id)
    got = "accept" if verdict.accepted else "reject"
    assert got == case.expect, f"{case.file} {case.id} ({case.about}): CRDs say {_explain(verdict)}"


# --------------------------------------------------------------------------- the loader


@pytest.mark.parametrize("case", _params(modelled=True))
def test_loader_agrees_with_the_crds(case: Case) -> None:
    _require_reference()
    verdict = _api_server(case.id)
    try:
        load_text(case.text, file=case.file)
    except LoadError as exc:
        errors = exc.errors
    else:
        errors = []
    loader = "\n".join(str(e) for e in errors) or "accepted"
    if verdict.accepted:
        assert not errors, f"the CRDs accept {case.id}; the loader refused it:\n{loader}"
        return
    assert errors, f"the CRDs refuse {case.id} ({_explain(verdict)}); the loader accepted it"
    ref = _ref(_data(case))
    paths = [v.path for v in verdict.violations]
    named = [
        e
        for e in errors
        if e.object_ref == ref and any(_at_or_below(e.field_path, p) for p in paths)
    ]
    assert named, (
        f"the loader refused {case.id} without naming {ref} and the field the CRDs name "
        f"({_explain(verdict)}):\n{loader}"
    )


@pytest.mark.parametrize("case", _params(modelled=False))
def test_loader_refuses_kinds_it_does_not_model_by_name(case: Case) -> None:
    """Kinds egobs does not model (BackendTLSPolicy, ListenerSet) are refused, valid or not,
    with the object and its ``kind`` named; the CRD verdict is checked above."""
    data = _data(case)
    with pytest.raises(LoadError) as info:
        load_text(case.text, file=case.file)
    (err,) = info.value.errors
    assert err.object_ref == f"{data['kind']}/{data['metadata']['name']}"
    assert err.field_path == "kind"
    assert f"unknown kind {data['kind']!r}" in err.message


# --------------------------------------------------------------------------- CEL coverage


def test_cel_rules_cel_python_cannot_evaluate_are_listed() -> None:
    _require_reference()
    gaps: dict[str, tuple[str, ...]] = {}
    for _kind, _version, _path, rule in crdv.all_rules():
        found = crdv.cel_gaps(rule["rule"])
        if found:
            gaps[rule["rule"]] = found
    unlisted = {rule: found for rule, found in gaps.items() if rule not in CEL_GAPS}
    assert not unlisted, f"CEL rules cel-python cannot evaluate, not in CEL_GAPS: {unlisted}"
    stale = set(CEL_GAPS) - set(gaps)
    assert not stale, f"CEL_GAPS lists rules the CRDs no longer have: {stale}"
    for rule, found in gaps.items():
        missing = [g for g in found if g != "oldSelf" and g not in crdv.K8S_FUNCTIONS]
        assert not missing, f"{rule!r} needs {missing}: implement them or skip the rule"


def test_every_rule_the_corpus_reaches_was_evaluated() -> None:
    """No rule is silently skipped: only the transition rule is, everywhere."""
    _require_reference()
    skipped = set()
    for case in CASES:
        skipped |= _api_server(case.id).skipped
    assert skipped <= {"self == oldSelf"}, skipped
